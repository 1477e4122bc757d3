"""`alm keys` and the embedded admin key, over the embedded store: the key is printed on the last
line once and stored only as a digest; list shows no secrets; revoke stops the key; `alm run`
leaves its user an admin key in the data directory."""

from __future__ import annotations

import asyncio
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.api.app import init_app
from services.bootstrap import api_context
from services.cli.main import main
from services.core.keys import Role, split_key
from services.keyring import KeyConflict, create_key, ensure_key, ensure_local_admin
from services.settings import Settings

KEY = re.compile(r"alm_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _collector_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """`alm run` would tune this test process's garbage collector (gctune.py)."""
    monkeypatch.setenv("ALM_GC_THRESHOLD", "python")


def _alm(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _stored_bytes(data: Path) -> bytes:
    """Every byte the embedded store keeps on disk (the database, its WAL and journal)."""
    return b"".join(p.read_bytes() for p in data.glob("alm.sqlite*"))


def test_create_prints_the_key_last_and_stores_only_its_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key is the last line of the output; the store holds its digest, never the key or
    its secret; `keys list` shows id, role, times and rate but no secret."""
    code, out, _ = _alm(
        capsys, tmp_path, "keys", "create", "--name", "journal", "--role", "reader",
        "--rate", "30/min", "--email", "ed@example.org",
    )  # fmt: skip
    assert code == 0
    key = out.rstrip("\n").splitlines()[-1]
    assert KEY.fullmatch(key)
    key_id, secret = split_key(key) or ("", "")
    stored = _stored_bytes(tmp_path)
    assert key_id.encode() in stored
    assert secret.encode() not in stored and key.encode() not in stored
    code, out, _ = _alm(capsys, tmp_path, "keys", "list")
    assert code == 0 and secret not in out
    row = next(line for line in out.splitlines() if line.startswith(key_id))
    assert "reader" in row and "30/min" in row and "journal" in row
    code, out, _ = _alm(capsys, tmp_path, "keys", "list", "--json")
    assert secret not in out and '"email": "ed@example.org"' in out


def test_revoke_stops_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys revoke ID` (or the whole key) marks it revoked; an unknown id is exit 2."""
    _, out, _ = _alm(capsys, tmp_path, "keys", "create", "--name", "x", "--role", "admin")
    key = out.splitlines()[-1]
    code, out, _ = _alm(capsys, tmp_path, "keys", "revoke", key)
    assert code == 0 and "revoked" in out
    _, listing, _ = _alm(capsys, tmp_path, "keys", "list")
    assert "0 active" in listing
    code, _, err = _alm(capsys, tmp_path, "keys", "revoke", "0123456789ab")
    assert code == 2 and "no key with id 0123456789ab" in err
    code, _, err = _alm(capsys, tmp_path, "keys", "revoke", "nonsense")
    assert code == 2 and "key's id" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--name", "x", "--role", "reader", "--rate", "5/h"], "--rate"),
        (["--name", "x", "--role", "reader", "--rate", "fast"], "--rate"),
        (["--name", "", "--role", "reader"], "'name'"),
        (["--name", "x", "--role", "reader", "--email", "nope"], "'email'"),
    ],
)
def test_create_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    """Bad rates, names and addresses stop with exit 2 and a message; nothing is stored."""
    code, _, err = _alm(capsys, tmp_path, "keys", "create", *args)
    assert code == 2 and needle in err
    assert "0 keys" in _alm(capsys, tmp_path, "keys", "list")[1]


def test_generate_prints_a_fresh_key_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keys generate` (for a Kubernetes Secret) prints a key in the key form."""
    code, out, _ = _alm(capsys, tmp_path, "keys", "generate")
    assert code == 0 and KEY.fullmatch(out.strip())
    assert not (tmp_path / "alm.sqlite").exists()


async def test_the_local_admin_key_is_made_once_and_kept(tmp_path: Path) -> None:
    """With no admin key, one is made and written to DATA_DIR/admin.key (owner-only); the next
    start keeps it; once revoked it is replaced only when no other admin key is active."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    keys = SqliteKeyStore(store)
    try:
        first = await ensure_local_admin(keys, tmp_path, NOW)
        assert first.created and first.usable
        path = tmp_path / "admin.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = path.read_text().strip()
        again = await ensure_local_admin(keys, tmp_path, NOW)
        assert not again.created and path.read_text().strip() == key
        await keys.revoke_key(key.split("_")[1], NOW)
        other, _ = await create_key(keys, "ops", Role.ADMIN, NOW)
        kept = await ensure_local_admin(keys, tmp_path, NOW)
        assert not kept.created and not kept.usable and path.read_text().strip() == key
        await keys.revoke_key(other.key_id, NOW)
        renewed = await ensure_local_admin(keys, tmp_path, NOW)
        assert renewed.created and path.read_text().strip() != key
    finally:
        await store.close()


def test_alm_run_leaves_an_admin_key_that_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm run --offline` prints where its admin key is; that key registers works through
    the API; a second run keeps it."""
    empty = tmp_path / "none.txt"
    empty.write_text("")
    data = tmp_path / "data"
    code, out, _ = _alm(capsys, data, "run", "--offline", "--once", "--port", "0", "--works",
                        str(empty))  # fmt: skip
    assert code == 0 and f"admin key: written to {data / 'admin.key'}" in out
    key = (data / "admin.key").read_text().strip()
    code, out, _ = _alm(capsys, data, "run", "--offline", "--once", "--port", "0", "--works",
                        str(empty))  # fmt: skip
    assert f"admin key: in {data / 'admin.key'}" in out
    assert (data / "admin.key").read_text().strip() == key
    assert asyncio.run(_register_with(data, key)) == 200


async def _register_with(data: Path, key: str) -> int:
    store = SqliteStore(data / "alm.sqlite")
    app = init_app(api_context(Settings(data_dir=data), store=store, bus=MemoryBus()))
    try:
        async with TestClient(TestServer(app)) as client:
            resp = await client.post(
                "/api/v1/works", json=["10.1234/x"], headers={"Authorization": f"Bearer {key}"}
            )
            return resp.status
    finally:
        await store.close()


async def test_a_bootstrap_key_is_stored_once_and_never_unrevoked(tmp_path: Path) -> None:
    """ALM_API_ADMIN_KEY: stored on first start, left alone after (a revoked one stays
    revoked); a key whose id belongs to another key is refused."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    keys = SqliteKeyStore(store)
    try:
        key = "alm_0123456789ab_" + "B" * 43
        record = await ensure_key(keys, key, "boot", Role.ADMIN, NOW)
        assert record.active and len(await keys.list_keys()) == 1
        await keys.revoke_key(record.key_id, NOW)
        again = await ensure_key(keys, key, "boot", Role.ADMIN, NOW)
        assert not again.active and len(await keys.list_keys()) == 1
        with pytest.raises(KeyConflict):
            await ensure_key(keys, "alm_0123456789ab_" + "C" * 43, "boot", Role.ADMIN, NOW)
    finally:
        await store.close()


async def test_the_api_stores_its_bootstrap_admin_key(tmp_path: Path) -> None:
    """An API started with ALM_API_ADMIN_KEY_FILE accepts that key on admin routes."""
    key = "alm_abcdefabcdef_" + "D" * 43
    (tmp_path / "secret").write_text(key + "\n")
    settings = Settings.from_env(
        {"ALM_API_ADMIN_KEY_FILE": str(tmp_path / "secret"), "ALM_DATA_DIR": str(tmp_path)}
    )
    async with TestClient(TestServer(init_app(api_context(settings)))) as client:
        resp = await client.get("/api/v1/keys", headers={"X-API-Key": key})
        assert resp.status == 200
        assert (await resp.json())["data"][0]["name"].startswith("bootstrap admin")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ALM_API_ADMIN_KEY": "hunter2"}, "ALM_API_ADMIN_KEY: not an ALM key"),
        ({"ALM_API_ADMIN_KEY_FILE": "/nonexistent/key"}, "no such file"),
        ({"ALM_API_RATE_READER": "lots"}, "ALM_API_RATE_READER"),
        ({"ALM_API_TRUSTED_PROXIES": "10.0.0.0/33"}, "ALM_API_TRUSTED_PROXIES"),
        ({"ALM_API_REQUIRE_KEY": "maybe"}, "ALM_API_REQUIRE_KEY"),
        ({"ALM_API_KEY_CACHE_SECONDS": "0"}, "ALM_API_KEY_CACHE_SECONDS"),
    ],
)
def test_bad_access_settings_are_named(env: dict[str, str], needle: str) -> None:
    """A wrong ALM_API_* value stops start-up naming the variable, never echoing a key."""
    with pytest.raises(ValueError, match=re.escape(needle)) as refused:
        Settings.from_env(env)
    assert "hunter2" not in str(refused.value)


def test_access_settings_from_the_environment() -> None:
    """Each ALM_API_* variable reaches AccessSettings; an empty guest list disables guests."""
    access = Settings.from_env(
        {
            "ALM_API_REQUIRE_KEY": "1",
            "ALM_API_RATE_ANONYMOUS": "unlimited",
            "ALM_API_RATE_READER": "10/s",
            "ALM_API_RATE_ADMIN": "100",
            "ALM_API_SIGNUP": "false",
            "ALM_API_RATE_SIGNUP": "2/d",
            "ALM_API_GUEST_KEYS": "",
            "ALM_API_KEY_CACHE_SECONDS": "2.5",
            "ALM_API_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8",
        }
    ).access
    assert access.require_key and not access.signup and access.rate_anonymous is None
    assert (str(access.rate_reader), str(access.rate_admin), str(access.rate_signup)) == (
        "10/s",
        "100/min",
        "2/d",
    )
    assert access.guest_keys == frozenset() and access.key_cache_seconds == 2.5
    assert [str(n) for n in access.trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]
    assert Settings.from_env({}).access.guest_keys == {"rkfDr76z75benY3pytM1"}
