"""The API while its store is down or stalled: a JSON 503 with Retry-After within the store
timeout (never a hang, never a plain-text 500), /readyz failing fast and ready again by itself
once the store answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from services.adapters.sqlite.hooks import SqliteHooks
from services.adapters.sqlite.keys import SqliteKeyStore
from services.adapters.sqlite.publishers import SqlitePublishers
from services.api.app import init_app
from services.api.errors import RETRY_AFTER
from services.bootstrap import api_context, make_call_archive, make_checks
from services.core.keys import Role
from services.keyring import create_key
from services.settings import Settings
from tests.unit.pipeline_kit import Kit, pipeline_kit

PEERJ = "10.7717/peerj.4375"
TIMEOUT = 0.3  # the store timeout these tests give the API


class Outage:
    """The real store (or key store), unless the outage is on: then every call hangs (a paused
    Cassandra) or raises (a stopped one). A key store's outage follows its store's."""

    def __init__(self, store: Any, of: Outage | None = None) -> None:
        self.store = store
        self.of = of
        self._mode: str | None = None  # None | "hang" | "down" | "slow" | "bug"

    @property
    def mode(self) -> str | None:
        return self.of.mode if self.of is not None else self._mode

    @mode.setter
    def mode(self, mode: str | None) -> None:
        self._mode = mode

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.mode == "hang":
                await asyncio.sleep(3600)
            if self.mode == "down":
                raise NoHostAvailable("Unable to connect to any servers", {})
            if self.mode == "slow":
                raise OperationTimedOut("Client request timeout")
            if self.mode == "bug":
                raise RuntimeError("a bug")
            return await attr(*args, **kwargs)

        return call


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        await k.register([PEERJ])
        yield k


@pytest.fixture
async def outage(kit: Kit) -> Outage:
    return Outage(kit.store)


@pytest.fixture
async def client(kit: Kit, outage: Outage, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(data_dir=tmp_path, status_cache_seconds=0, api_store_timeout=TIMEOUT)
    keys = Outage(SqliteKeyStore(kit.store), of=outage)
    hooks = SqliteHooks(kit.store)  # webhooks are not what these tests take down
    publishers = SqlitePublishers(outage)  # type: ignore[arg-type]
    app = init_app(
        api_context(
            settings,
            store=outage,  # type: ignore[arg-type]
            bus=kit.bus,
            keys=keys,  # type: ignore[arg-type]
            hooks=hooks,
            publishers=publishers,
            calls=make_call_archive(kit.store),
            alerts=make_checks(settings, kit.store),
        )
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def answer(client: TestClient[Any, Any], path: str) -> tuple[int, Any, float, str]:
    started = time.monotonic()
    resp = await client.get(path)
    body = await resp.json()  # JSON whatever the status (raises on plain text)
    return resp.status, body, time.monotonic() - started, resp.headers.get("Retry-After", "")


@pytest.mark.parametrize(
    "path",
    [
        "/readyz",
        f"/api/v1/works/{PEERJ}",
        "/api/v1/works",
        "/api/v1/works?publisher_id=340",
        "/api/v1/sources",
        "/api/v5/articles",
        "/api/v5/articles?publisher=PLOS",
    ],
)
@pytest.mark.parametrize("mode", ["hang", "down", "slow"])
async def test_a_store_that_is_down_or_stalled_gets_a_quick_json_503(
    client: TestClient[Any, Any], outage: Outage, path: str, mode: str
) -> None:
    """Paused (every call hangs), stopped (no host) or timing out: each request answers a JSON
    503 with Retry-After, within the API's deadline. Before, the request hung for the driver's
    20 s and got aiohttp's plain-text 500."""
    outage.mode = mode
    query = f"?ids={PEERJ}" if path.endswith("articles") else ""
    status, body, took, retry_after = await answer(client, path + query)
    assert status == 503 and body["status"] == 503, body
    assert retry_after == str(RETRY_AFTER)
    assert took < 3 * TIMEOUT + 1.0


async def test_readyz_fails_within_the_store_timeout_and_recovers_by_itself(
    client: TestClient[Any, Any], outage: Outage
) -> None:
    """/readyz tells the truth: 200 while the store answers, 503 within one store timeout while
    it hangs, 200 again as soon as it answers, with nothing restarted."""
    assert (await answer(client, "/readyz"))[0] == 200
    outage.mode = "hang"
    status, _, took, _ = await answer(client, "/readyz")
    assert status == 503 and took < TIMEOUT + 0.5
    outage.mode = None
    status, body, _, _ = await answer(client, "/readyz")
    assert (status, body) == (200, {"status": "ready"})


async def test_an_unexpected_error_is_a_json_500(
    client: TestClient[Any, Any], outage: Outage
) -> None:
    """A failure that is not the store being unavailable is a JSON 500, not a 503."""
    outage.mode = "bug"
    status, body, _, retry_after = await answer(client, f"/api/v1/works/{PEERJ}")
    assert (status, body) == (500, {"error": "internal error (RuntimeError)", "status": 500})
    assert retry_after == ""


@pytest.mark.parametrize("mode", ["hang", "down"])
async def test_a_key_that_cannot_be_read_is_a_503_not_a_401(
    client: TestClient[Any, Any], kit: Kit, outage: Outage, mode: str
) -> None:
    """Keys live in the store: while it is down, a request with a key (a read, or an admin
    write) gets the same JSON 503 with Retry-After, within the deadline; never a 401 that would
    tell a client its good key is wrong. Once the store answers the key works again."""
    _, key = await create_key(SqliteKeyStore(kit.store), "ops", Role.ADMIN, kit.clock())
    headers = {"Authorization": f"Bearer {key}"}
    outage.mode = mode
    for method, path in (("GET", f"/api/v1/works/{PEERJ}"), ("POST", "/api/v1/works")):
        started = time.monotonic()
        sent = [PEERJ] if method == "POST" else None
        resp = await client.request(method, path, headers=headers, json=sent)
        body = await resp.json()
        assert (resp.status, body["status"]) == (503, 503), body
        assert resp.headers["Retry-After"] == str(RETRY_AFTER)
        assert time.monotonic() - started < 3 * TIMEOUT + 1.0
    outage.mode = None
    resp = await client.post("/api/v1/works", headers=headers, json=[PEERJ])
    assert resp.status == 200, await resp.text()


def test_the_store_timeout_comes_from_the_environment() -> None:
    assert Settings.from_env({}).api_store_timeout == 3.0
    assert Settings.from_env({"ALM_API_STORE_TIMEOUT": "1.5"}).api_store_timeout == 1.5
    with pytest.raises(ValueError, match="ALM_API_STORE_TIMEOUT"):
        Settings.from_env({"ALM_API_STORE_TIMEOUT": "0"})
