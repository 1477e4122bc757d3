"""Access control of the API over the embedded store: where a key is read from, what each route
needs, the 401/403/429 answers and their headers, quotas per key and per client address,
sign-up, and revocation seen by another API instance sharing the store."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.api.access import (
    CALLER,
    GUARD,
    NEEDS_KEY,
    REVOKED_KEY,
    WRONG_KEY,
    Access,
    Guard,
    access_control,
    quota_headers,
    require_owner,
)
from services.api.app import init_app
from services.api.errors import json_errors
from services.api.keycache import KeyCache
from services.api.routes import ACCESS
from services.api.state import STORE_TIMEOUT
from services.bootstrap import api_context
from services.core.keys import Role
from services.core.quota import Rate
from services.keyring import create_key
from services.settings import PLOS_GUEST_KEY, AccessSettings, Settings

WORKS = "/api/v1/works"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
UNKNOWN = "alm_000000000000_" + "A" * 43


@dataclass
class Api:
    """A test client of the API and its key store."""

    client: TestClient[Any, Any]
    keys: SqliteKeyStore
    store: SqliteStore

    async def key(self, role: Role = Role.READER, rate: int | None = None) -> str:
        """A new key of `role` (with its own rate)."""
        _, secret = await create_key(self.keys, "test", role, NOW, rate_per_minute=rate)
        return secret


@asynccontextmanager
async def api(tmp: Path, store: SqliteStore | None = None, **access: Any) -> AsyncIterator[Api]:
    """The API app over a migrated SQLite store, with these access settings."""
    own = store is None
    if store is None:
        await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
        store = SqliteStore(tmp / "alm.sqlite")
        await store.migrate()
    settings = Settings(data_dir=tmp, status_cache_seconds=0, access=AccessSettings(**access))
    app = init_app(api_context(settings, store=store, bus=MemoryBus()))
    try:
        async with TestClient(TestServer(app)) as client:
            yield Api(client, SqliteKeyStore(store), store)
    finally:
        if own:
            await store.close()


@pytest.fixture
async def open_api(tmp_path: Path) -> AsyncIterator[Api]:
    async with api(tmp_path) as a:
        yield a


async def _error(resp: aiohttp.ClientResponse, status: int) -> str:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["status"] == status and set(body) == {"error", "status"}
    message: str = body["error"]
    return message


def test_every_route_declares_what_it_needs(tmp_path: Path) -> None:
    """The access table names every route of the app (HEAD follows GET) and nothing else, so
    no route falls back to the admin-only default by omission."""
    app = init_app(api_context(Settings(data_dir=tmp_path, api_public_metrics=True)))
    routed = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert routed == set(ACCESS)


@pytest.mark.parametrize(
    ("method", "path", "need"),
    [
        ("POST", WORKS, Access.ADMIN),
        ("POST", "/api/v1/sources/{name}/{action}", Access.ADMIN),
        ("POST", "/api/v1/keys", Access.ADMIN),
        ("GET", "/api/v1/keys", Access.ADMIN),
        ("POST", "/api/v1/keys/{id}/revoke", Access.ADMIN),
        ("GET", WORKS, Access.READ),
        ("GET", "/api/v5/articles", Access.READ),
        ("POST", "/api/v1/signup", Access.OPEN),
        ("GET", "/healthz", Access.PUBLIC),
    ],
)
def test_writes_and_admin_routes_need_an_admin(method: str, path: str, need: Access) -> None:
    """Registering works, pausing sources and every keys route are admin-only."""
    assert ACCESS[(method, path)] is need


async def test_reads_are_open_and_counted(open_api: Api) -> None:
    """A read without a key is answered, with the per-address quota's headers."""
    resp = await open_api.client.get(WORKS)
    assert resp.status == 200
    assert resp.headers["X-RateLimit-Limit"] == "120"
    assert int(resp.headers["X-RateLimit-Remaining"]) == 119
    assert int(resp.headers["X-RateLimit-Reset"]) >= 0


@pytest.mark.parametrize("carrier", ["bearer", "header", "query", "form"])
async def test_a_key_is_read_where_alm_clients_send_it(open_api: Api, carrier: str) -> None:
    """An admin key as Bearer, X-API-Key, api_key= or an api_key form field opens an admin
    route; the same places with an unknown key get ALM's 401 `wrong API key.`."""
    admin = await open_api.key(Role.ADMIN)
    for key, status in ((admin, 201), (UNKNOWN, 401)):
        kwargs: dict[str, Any] = {"json": {"name": "site"}}
        if carrier == "bearer":
            kwargs["headers"] = {"Authorization": f"Bearer {key}"}
        elif carrier == "header":
            kwargs["headers"] = {"X-API-Key": key}
        elif carrier == "query":
            kwargs["params"] = {"api_key": key}
        else:
            kwargs = {"data": {"name": "site", "api_key": key}}
        resp = await open_api.client.post("/api/v1/keys", **kwargs)
        if status == 401:
            assert await _error(resp, 401) == WRONG_KEY
            assert resp.headers["WWW-Authenticate"] == 'Bearer realm="alm", error="invalid_token"'
        else:
            assert resp.status == 201, await resp.text()


async def test_a_multipart_form_carries_a_key_too(open_api: Api) -> None:
    """The OJS plugin posts multipart/form-data: its api_key field is read."""
    form = aiohttp.FormData({"name": "ojs", "api_key": await open_api.key(Role.ADMIN)})
    form.add_field("role", "reader", content_type="text/plain")
    resp = await open_api.client.post("/api/v1/keys", data=form)
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize(
    "key",
    [UNKNOWN, "not-a-key", "alm_" + "0" * 12 + "_short", "x" * 5000],
    ids=["unknown", "garbage", "short", "long"],
)
async def test_a_wrong_key_on_a_read_is_a_401_even_when_reads_are_open(
    open_api: Api, key: str
) -> None:
    """ALM's answer to a wrong api_key, for v1 and v5 reads alike."""
    for path in (WORKS, "/api/v5/articles", "/api/v1/openapi.json"):
        resp = await open_api.client.get(path, params={"api_key": key})
        assert await _error(resp, 401) == WRONG_KEY


async def test_a_right_secret_of_another_id_is_wrong(open_api: Api) -> None:
    """A key is checked whole: a real key's secret under another key's id is refused."""
    one, other = await open_api.key(), await open_api.key()
    forged = f"alm_{other.split('_')[1]}_{one.split('_', 2)[2]}"
    resp = await open_api.client.get(WORKS, headers={"X-API-Key": forged})
    assert await _error(resp, 401) == WRONG_KEY


async def test_the_plos_guest_key_counts_as_no_key(tmp_path: Path) -> None:
    """rOpenSci alm 0.3 always sends PLOS's guest key: reads work while they are open, and
    the guest key never replaces a key where one is needed."""
    async with api(tmp_path) as a:
        resp = await a.client.get(WORKS, params={"api_key": PLOS_GUEST_KEY})
        assert resp.status == 200
        resp = await a.client.post(WORKS, params={"api_key": PLOS_GUEST_KEY}, json=["10.1/x"])
        await _error(resp, 401)
    async with api(tmp_path / "closed", require_key=True) as a:
        resp = await a.client.get(WORKS, params={"api_key": PLOS_GUEST_KEY})
        assert await _error(resp, 401) == NEEDS_KEY


async def test_reads_can_be_closed(tmp_path: Path) -> None:
    """ALM_API_REQUIRE_KEY: a read without a key is a 401 with a Bearer challenge; with a
    reader key it is answered; the probes and the document stay open."""
    async with api(tmp_path, require_key=True) as a:
        resp = await a.client.get(WORKS)
        assert await _error(resp, 401) == NEEDS_KEY
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="alm"'
        reader = await a.key()
        assert (await a.client.get(WORKS, headers={"X-API-Key": reader})).status == 200
        for path in ("/healthz", "/readyz", "/api/v1/openapi.json"):
            assert (await a.client.get(path)).status == 200, path


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", WORKS, ["10.1234/x"]),
        ("POST", "/api/v1/sources/crossref/pause", {"reason": "x"}),
        ("POST", "/api/v1/keys", {"name": "x"}),
        ("GET", "/api/v1/keys", None),
        ("POST", "/api/v1/keys/0123456789ab/revoke", None),
    ],
)
async def test_admin_routes_refuse_anyone_else(
    open_api: Api, method: str, path: str, body: Any
) -> None:
    """No key: 401; a reader key: 403; a revoked admin key: 401; nothing is written."""
    resp = await open_api.client.request(method, path, json=body)
    assert "admin" in await _error(resp, 401)
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="alm"'
    reader = await open_api.key()
    resp = await open_api.client.request(method, path, json=body, headers={"X-API-Key": reader})
    assert "reader key" in await _error(resp, 403)
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="alm", error="insufficient_scope"'
    admin = await open_api.key(Role.ADMIN)
    admin_id = admin.split("_")[1]
    await open_api.keys.revoke_key(admin_id, NOW)
    resp = await open_api.client.request(method, path, json=body, headers={"X-API-Key": admin})
    assert await _error(resp, 401) == REVOKED_KEY
    assert await open_api.store.count_works() == 0
    assert await open_api.store.source_statuses() == {}
    assert len(await open_api.keys.list_keys()) == 2


async def test_an_admin_key_writes(open_api: Api) -> None:
    """The admin key registers works and pauses sources."""
    headers = {"Authorization": f"Bearer {await open_api.key(Role.ADMIN)}"}
    resp = await open_api.client.post(WORKS, json=["10.1234/x"], headers=headers)
    assert resp.status == 200 and await open_api.store.count_works() == 1
    resp = await open_api.client.post("/api/v1/sources/crossref/pause", headers=headers)
    assert resp.status == 200 and (await resp.json())["paused"] is True


async def test_two_different_keys_are_a_400(open_api: Api) -> None:
    """A request carrying two different keys is refused; the same key twice is one key."""
    one, other = await open_api.key(), await open_api.key()
    resp = await open_api.client.get(WORKS, headers={"X-API-Key": one}, params={"api_key": other})
    assert "different API keys" in await _error(resp, 400)
    resp = await open_api.client.get(
        WORKS, headers={"Authorization": f"Bearer {one}"}, params={"api_key": one}
    )
    assert resp.status == 200


async def test_other_authorization_schemes_are_left_alone(open_api: Api) -> None:
    """A proxy's Basic credentials are not a key: the read is answered as anonymous."""
    resp = await open_api.client.get(WORKS, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert resp.status == 200 and resp.headers["X-RateLimit-Limit"] == "120"


async def test_a_key_quota_is_its_own(tmp_path: Path) -> None:
    """A key with 2/min gets two answers, then a 429 with Retry-After and X-RateLimit-*; a
    reader key without its own rate gets ALM_API_RATE_READER; an admin key none by default."""
    async with api(tmp_path, rate_reader=Rate(7)) as a:
        slow = await a.key(rate=2)
        answers = [await a.client.get(WORKS, headers={"X-API-Key": slow}) for _ in range(3)]
        assert [r.status for r in answers] == [200, 200, 429]
        refused = answers[2]
        assert "2/min" in await _error(refused, 429)
        assert refused.headers["Retry-After"] == "30"
        assert refused.headers["X-RateLimit-Limit"] == "2"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert int(refused.headers["X-RateLimit-Reset"]) == 60
        reader = await a.client.get(WORKS, headers={"X-API-Key": await a.key()})
        assert reader.headers["X-RateLimit-Limit"] == "7"
        admin = await a.client.get(WORKS, headers={"X-API-Key": await a.key(Role.ADMIN)})
        assert admin.status == 200 and "X-RateLimit-Limit" not in admin.headers
        assert (await a.client.get(WORKS)).status == 200  # the address's own quota is apart


async def test_every_answer_under_a_quota_carries_its_headers(open_api: Api) -> None:
    """Also the errors made after access control (an unknown work's 404, a 400)."""
    for path, status in (("/api/v1/works/10.1234/none", 404), ("/api/v1/works?page=0", 400)):
        resp = await open_api.client.get(path)
        assert resp.status == status
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining"} <= set(resp.headers)


async def test_anonymous_quotas_go_by_client_address(tmp_path: Path) -> None:
    """Behind a trusted proxy the X-Forwarded-For client is counted; elsewhere the header is
    ignored (a client cannot pick its own bucket)."""
    async with api(tmp_path, rate_anonymous=Rate(1)) as a:
        first = {"X-Forwarded-For": "203.0.113.7"}
        assert (await a.client.get(WORKS, headers=first)).status == 200
        other = {"X-Forwarded-For": "203.0.113.8"}
        assert (await a.client.get(WORKS, headers=other)).status == 429  # the peer's bucket
    trusted = (ipaddress.ip_network("127.0.0.0/8"),)
    async with api(tmp_path / "b", rate_anonymous=Rate(1), trusted_proxies=trusted) as a:
        assert (await a.client.get(WORKS, headers=first)).status == 200
        assert (await a.client.get(WORKS, headers=other)).status == 200
        assert (await a.client.get(WORKS, headers=first)).status == 429
        v6 = {"X-Forwarded-For": "10.9.9.9, 2001:db8:1:2::5"}
        assert (await a.client.get(WORKS, headers=v6)).status == 200
        same_64 = {"X-Forwarded-For": "2001:db8:1:2:ffff::1"}
        assert (await a.client.get(WORKS, headers=same_64)).status == 429


async def test_wrong_keys_spend_the_address_quota(tmp_path: Path) -> None:
    """Guessing keys costs the guesser's address quota, and once it is spent no key is even
    looked up: a 429 instead of a 401."""
    async with api(tmp_path, rate_anonymous=Rate(3)) as a:
        statuses = [
            (await a.client.get(WORKS, headers={"X-API-Key": UNKNOWN})).status for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]


async def test_signup_issues_a_working_reader_key(open_api: Api) -> None:
    """JSON or form: a reader key, shown once (no-store), that then reads and knows itself."""
    for kwargs in (
        {"json": {"name": "Jane Doe", "email": "jane@example.org"}},
        {"data": {"name": "Ann", "email": "ann@example.org"}},
    ):
        resp = await open_api.client.post("/api/v1/signup", **kwargs)
        assert resp.status == 201, await resp.text()
        assert resp.headers["Cache-Control"] == "no-store"
        issued = await resp.json()
        assert issued["role"] == "reader" and issued["active"] is True
        me = await open_api.client.get("/api/v1/keys/me", headers={"X-API-Key": issued["key"]})
        assert me.status == 200
        assert {k: v for k, v in (await me.json()).items() if k != "quota"} == {
            k: v for k, v in issued.items() if k != "key"
        }
        stored = await open_api.keys.get_key(issued["id"])
        assert stored is not None and stored.email == issued["email"]
        forbidden = await open_api.client.post(
            WORKS, json=["10.1/x"], headers={"X-API-Key": issued["key"]}
        )
        assert forbidden.status == 403


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Jane"},
        {"email": "j@example.org"},
        {"name": "Jane", "email": "<script>alert(1)</script>@example.org"},
        {"name": "<script>alert(1)</script>\n", "email": "j@example.org"},
        {"name": "J" * 101, "email": "j@example.org"},
        {"name": "Jane", "email": "j@example.org", "role": "admin"},
        {"name": "Jane", "email": "j@example.org", "<img src=x>": 1},
        {"name": 5, "email": "j@example.org"},
        ["Jane", "j@example.org"],
    ],
)
async def test_signup_refuses_bad_input_without_echoing_it(open_api: Api, body: Any) -> None:
    """Missing, extra, over-long or malformed fields are a 400 that repeats none of the input
    (no markup comes back); no key is made."""
    message = await _error(await open_api.client.post("/api/v1/signup", json=body), 400)
    assert "<" not in message and "alert" not in message
    assert await open_api.keys.list_keys() == []


async def test_signup_refuses_files_and_repeated_fields(open_api: Api) -> None:
    """A form field sent twice or as a file is refused."""
    twice = aiohttp.FormData([("name", "a"), ("name", "b"), ("email", "j@example.org")])
    assert (await open_api.client.post("/api/v1/signup", data=twice)).status == 400
    upload = aiohttp.FormData({"email": "j@example.org"})
    upload.add_field("name", b"Jane", filename="name.txt")
    assert (await open_api.client.post("/api/v1/signup", data=upload)).status == 400
    assert await open_api.keys.list_keys() == []


async def test_signups_are_limited_per_address_and_can_be_closed(tmp_path: Path) -> None:
    """Two sign-ups an hour from one address with ALM_API_RATE_SIGNUP=2/h, then a 429 (an
    invalid attempt spends nothing); ALM_API_SIGNUP=false closes it (403)."""
    body = {"name": "Jane", "email": "j@example.org"}
    async with api(tmp_path, rate_signup=Rate(2, 3600)) as a:
        await a.client.post("/api/v1/signup", json={"name": "Jane"})
        statuses = [(await a.client.post("/api/v1/signup", json=body)).status for _ in range(3)]
        assert statuses == [201, 201, 429]
        refused = await a.client.post("/api/v1/signup", json=body)
        assert int(refused.headers["Retry-After"]) > 1000
        assert refused.headers["X-RateLimit-Limit"] == "2"
        assert len(await a.keys.list_keys()) == 2
    async with api(tmp_path / "closed", signup=False) as a:
        assert "closed" in await _error(await a.client.post("/api/v1/signup", json=body), 403)


async def test_admin_manages_keys_over_the_api(open_api: Api) -> None:
    """Create (shown once, Location), list (no secrets), show, revoke (at once here; again:
    unchanged)."""
    headers = {"X-API-Key": await open_api.key(Role.ADMIN)}
    resp = await open_api.client.post(
        "/api/v1/keys",
        json={"name": "journal", "role": "reader", "rate_per_minute": 60, "email": None},
        headers=headers,
    )
    assert resp.status == 201
    created = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/keys/{created['id']}"
    listing = await (await open_api.client.get("/api/v1/keys", headers=headers)).json()
    assert listing["total"] == 2 and created["key"] not in str(listing)
    shown = await (await open_api.client.get(resp.headers["Location"], headers=headers)).json()
    assert shown == {k: v for k, v in created.items() if k != "key"}
    assert (await open_api.client.get(WORKS, headers={"X-API-Key": created["key"]})).status == 200
    revoke = f"/api/v1/keys/{created['id']}/revoke"
    first = await (await open_api.client.post(revoke, headers=headers)).json()
    assert first["active"] is False and first["revoked_at"]
    resp = await open_api.client.get(WORKS, headers={"X-API-Key": created["key"]})
    assert await _error(resp, 401) == REVOKED_KEY
    again = await (await open_api.client.post(revoke, headers=headers)).json()
    assert again["revoked_at"] == first["revoked_at"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "role": "owner"},
        {"name": "x", "rate_per_minute": -1},
        {"name": "x", "rate_per_minute": True},
        {"name": "x", "rate_per_minute": 1.5},
        {"name": "x", "email": "nope"},
        {"role": "reader"},
    ],
)
async def test_create_refuses_bad_fields(open_api: Api, body: Any) -> None:
    """A wrong role, rate, address or a missing name is a 400."""
    headers = {"X-API-Key": await open_api.key(Role.ADMIN)}
    await _error(await open_api.client.post("/api/v1/keys", json=body, headers=headers), 400)


async def test_revocation_reaches_another_replica_within_its_cache_time(tmp_path: Path) -> None:
    """Two API instances share one store: a key revoked through one is refused there at once,
    by an instance with a 0.2 s key cache after 0.2 s, and still served by one with an hour's
    cache (the documented bound, ALM_API_KEY_CACHE_SECONDS)."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    try:
        async with (
            api(tmp_path, store) as one,
            api(tmp_path, store, key_cache_seconds=0.2) as quick,
            api(tmp_path, store, key_cache_seconds=3600) as slow,
        ):
            admin = {"X-API-Key": await one.key(Role.ADMIN)}
            reader = await one.key()
            for a in (one, quick, slow):
                assert (await a.client.get(WORKS, headers={"X-API-Key": reader})).status == 200
            revoked = await one.client.post(
                f"/api/v1/keys/{reader.split('_')[1]}/revoke", headers=admin
            )
            assert revoked.status == 200
            assert (await one.client.get(WORKS, headers={"X-API-Key": reader})).status == 401
            assert (await slow.client.get(WORKS, headers={"X-API-Key": reader})).status == 200
            await asyncio.sleep(0.25)
            resp = await quick.client.get(WORKS, headers={"X-API-Key": reader})
            assert await _error(resp, 401) == REVOKED_KEY
    finally:
        await store.close()


async def test_a_key_route_lets_owners_and_admins_through(tmp_path: Path) -> None:
    """The pattern for things a key owns (webhooks): a route declared Access.KEY whose handler
    calls require_owner: the owner's key and admin keys pass, another reader's is a 403, no
    key a 401."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    keys = SqliteKeyStore(store)
    owner, owner_key = await create_key(keys, "owner", Role.READER, NOW)
    _, stranger = await create_key(keys, "stranger", Role.READER, NOW)
    _, admin = await create_key(keys, "admin", Role.ADMIN, NOW)

    async def hook(request: web.Request) -> web.Response:
        caller = require_owner(request, owner.key_id)
        return web.json_response({"by": caller.key.key_id if caller.key else None})

    app = web.Application(middlewares=[json_errors, access_control])
    app.on_response_prepare.append(quota_headers)
    app.router.add_get("/hooks/1", hook)
    app[GUARD] = Guard(AccessSettings(), {("GET", "/hooks/1"): Access.KEY}, KeyCache(keys, 10))
    app[STORE_TIMEOUT] = 5.0
    try:
        async with TestClient(TestServer(app)) as client:
            for key, status in ((owner_key, 200), (admin, 200), (stranger, 403), (None, 401)):
                headers = {"X-API-Key": key} if key else {}
                resp = await client.get("/hooks/1", headers=headers)
                assert resp.status == status, (key, await resp.text())
    finally:
        await store.close()


async def test_the_caller_is_known_to_handlers(open_api: Api) -> None:
    """Handlers read who called (`request[CALLER]`): anonymous reads carry the address."""
    seen: list[Any] = []

    async def probe(request: web.Request) -> web.Response:
        seen.append(request[CALLER])
        return web.json_response({})

    guard = Guard(AccessSettings(), {("GET", "/p"): Access.READ}, KeyCache(open_api.keys, 1))
    app = web.Application(middlewares=[access_control])
    app.router.add_get("/p", probe)
    app[GUARD] = guard
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/p")).status == 200
    assert seen[0].key is None and seen[0].address == "127.0.0.1" and not seen[0].admin
