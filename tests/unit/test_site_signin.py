"""Signing in on the site and the sources page's controls over HTTP: the key cookie counts on
pages only, on a POST only from this server's own pages (another port of the same host is
another origin), a reader gets no controls and a 403, a revoked key signs the browser out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.api.access import GUARD
from services.core.keys import Role
from services.core.quota import Rate
from services.keyring import create_key
from tests.unit.test_access import Api, api

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Api]:
    async with api(tmp_path) as a:
        yield a


def _origin(site: Api) -> str:
    return str(site.client.make_url("")).rstrip("/")


async def _signed_in(site: Api, role: Role) -> str:
    _, key = await create_key(site.keys, "person", role, NOW)
    resp = await site.client.post(
        "/signin", data={"key": key}, allow_redirects=False, headers={"Origin": _origin(site)}
    )
    assert resp.status == 303 and resp.headers["Location"] == "/sources"
    cookie = resp.cookies["alm_key"]
    assert cookie.value == key and cookie["httponly"] and cookie["samesite"] == "Strict"
    return key


async def _paused(site: Api) -> bool:
    crossref = (await site.store.source_statuses()).get("crossref")
    return crossref is not None and crossref.paused


async def test_an_admin_pauses_from_the_page_of_this_server_only(site: Api) -> None:
    await _signed_in(site, Role.ADMIN)
    page = await site.client.get("/sources")
    assert page.status == 200 and "Pause Crossref" in await page.text()
    other_port = {"Origin": "http://127.0.0.1:1"}  # same site, another origin
    resp = await site.client.post("/sources/crossref/pause", data={}, headers=other_port)
    assert resp.status == 401 and not await _paused(site)
    resp = await site.client.post("/sources/crossref/pause", data={"reason": "x"})  # no Origin
    assert resp.status == 401 and not await _paused(site)
    own = {"Origin": _origin(site)}
    resp = await site.client.post(
        "/sources/crossref/pause",
        data={"reason": "<i>down</i>"},
        headers=own,
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/sources#crossref"
    assert await _paused(site)
    html = await (await site.client.get("/sources")).text()
    assert "&lt;i&gt;down&lt;/i&gt;" in html and "<i>down" not in html
    resp = await site.client.post("/sources/nosuch/resume", data={}, headers=own)
    assert resp.status == 404


async def test_the_cookie_is_no_key_for_the_api(site: Api) -> None:
    await _signed_in(site, Role.ADMIN)
    own = {"Origin": _origin(site)}
    resp = await site.client.post("/api/v1/works", json=["10.1/x"], headers=own)
    assert resp.status == 401
    assert (await site.client.get("/api/v1/keys")).status == 401


async def test_a_reader_gets_no_controls_and_a_403(site: Api) -> None:
    await _signed_in(site, Role.READER)
    assert "Pause Crossref" not in await (await site.client.get("/sources")).text()
    own = {"Origin": _origin(site)}
    resp = await site.client.post("/sources/crossref/pause", data={}, headers=own)
    assert resp.status == 403 and resp.content_type == "text/html"
    assert not await _paused(site)


async def test_a_revoked_key_signs_the_browser_out(site: Api) -> None:
    key = await _signed_in(site, Role.ADMIN)
    await site.keys.revoke_key(key.split("_")[1], NOW)
    site.client.app[GUARD].keys.put(key.split("_")[1], await site.keys.get_key(key.split("_")[1]))
    resp = await site.client.get("/sources")
    assert resp.status == 401
    assert resp.cookies["alm_key"].value == ""  # deleted
    assert (await site.client.get("/sources")).status == 200  # signed out: a reader page


async def test_a_wrong_key_on_the_form_spends_the_address_quota(tmp_path: Path) -> None:
    """The form is no faster way to guess keys than the API: wrong keys spend the address's
    quota (each costs two: the request and the wrong key), and once it is spent even a good
    key is refused until it refills."""
    wrong = "alm_000000000000_" + "A" * 43
    async with api(tmp_path, rate_anonymous=Rate(5, 3600)) as site:
        _, good = await create_key(site.keys, "person", Role.ADMIN, NOW)
        elsewhere = {"Origin": "http://x"}
        other = await site.client.post("/signin", data={"key": good}, headers=elsewhere)
        assert other.status == 403 and "alm_key" not in other.cookies  # another site's form
        for _ in range(2):
            resp = await site.client.post("/signin", data={"key": wrong})
            assert resp.status == 401 and "wrong API key" in await resp.text()
            assert "alm_key" not in resp.cookies
        resp = await site.client.post("/signin", data={"key": good})
        assert resp.status == 429 and "Retry-After" in resp.headers


async def test_an_admin_lists_and_revokes_keys_on_the_page(site: Api) -> None:
    """/keys shows every key without secrets or digests; a revoke form stops a key at once;
    a reader gets a 403 page, a POST from another origin is not signed in."""
    record, reader = await create_key(site.keys, "<b>journal</b>", Role.READER, NOW)
    admin = await _signed_in(site, Role.ADMIN)
    html = await (await site.client.get("/keys")).text()
    assert f"Revoke {record.key_id}" in html and "&lt;b&gt;journal&lt;/b&gt;" in html
    assert reader not in html and admin not in html and record.secret_hash not in html
    assert f"Revoke {admin.split('_')[1]}" not in html  # not your own key
    path = f"/keys/{record.key_id}/revoke"
    resp = await site.client.post(path, headers={"Origin": "http://127.0.0.1:1"})
    still = await site.keys.get_key(record.key_id)
    assert resp.status == 401 and still is not None and still.active
    resp = await site.client.post(path, headers={"Origin": _origin(site)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/keys#key-{record.key_id}"
    api = await site.client.get("/api/v1/works", headers={"X-API-Key": reader})
    assert api.status == 401  # at once on this replica
    missing = await site.client.post("/keys/0123456789ab/revoke", headers={"Origin": _origin(site)})
    assert missing.status == 404


async def test_a_reader_may_not_see_the_keys(site: Api) -> None:
    await _signed_in(site, Role.READER)
    resp = await site.client.get("/keys")
    assert resp.status == 403 and resp.content_type == "text/html"
    site.client.session.cookie_jar.clear()
    assert (await site.client.get("/keys")).status == 401
