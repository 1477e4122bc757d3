"""Hostile and careless requests get a JSON error with the right status, and harm no one:
nothing is written for a malformed request, valid ids of a batch are registered and scheduled
whatever their neighbours, and aiohttp's own errors (request line, headers) answer JSON too."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.api.server import MAX_FIELD_SIZE, MAX_LINE_SIZE
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

PONE = "10.1371/journal.pone.0000308"
PEERJ = "10.7717/peerj.4375"
FAR_FUTURE = "2100-01-01T00:00:00+00:00"


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with api_client(kit, tmp_path, admin=True) as c:  # the write routes need an admin
        yield c


async def _json_error(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["status"] == status
    message: str = body["error"]
    return message


async def _due(kit: Kit, work_id: str) -> set[str]:
    """The sources `work_id` is due from (at any time)."""
    from datetime import datetime

    later = datetime.fromisoformat(FAR_FUTURE)
    out = set()
    for fetcher in kit.pipeline.fetchers:
        entries = await kit.store.due(fetcher.source.name, later, 1000)
        if any(e.work_id == work_id for e in entries):
            out.add(fetcher.source.name)
    return out


async def _index_new_works(kit: Kit) -> None:
    while await kit.pipeline.scheduler.step(0):
        pass


@pytest.mark.parametrize("path", ["/api/v1/works", "/api/v1/sources/crossref/pause"])
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"\xe2\x1e", "not valid UTF-8"),
        (b"[" * 100_000, "recursion"),
        (b'{"a":' * 100_000, "recursion"),
        (b"[1e999]", "not JSON"),
        (b"NaN", "not JSON"),
        (b"   ", "empty"),
    ],
    ids=["not-utf8", "nested-list", "nested-object", "infinity", "nan", "blank"],
)
async def test_undecodable_bodies_are_a_json_400(
    client: TestClient[Any, Any], kit: Kit, path: str, body: bytes, needle: str
) -> None:
    """A body that is not UTF-8, not JSON, or nested 100,000 deep is a JSON 400, never a 500,
    and nothing is written."""
    resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert needle in await _json_error(resp, 400)
    assert await kit.store.count_works() == 0
    assert await kit.store.source_statuses() == {}


async def test_one_bad_id_never_fails_the_valid_ones(
    client: TestClient[Any, Any], kit: Kit
) -> None:
    """Fullwidth digits (which Python's \\d takes) are refused before anything is written; the
    valid work of the same request is stored and scheduled from every source, in a 200."""
    resp = await client.post("/api/v1/works", json=[PONE, "10.\uff11\uff12\uff13\uff14/x"])
    assert resp.status == 200, await resp.text()
    good, bad = (await resp.json())["data"]
    assert good == {"input": PONE, "work_id": PONE, "status": "created"}
    assert bad["status"] == "invalid" and "ASCII digits" in bad["error"]
    await _index_new_works(kit)
    assert await kit.store.count_works() == 1
    assert await _due(kit, PONE) == {f.source.name for f in kit.pipeline.fetchers}


@pytest.mark.parametrize(
    "raw",
    ["10.1234/a\x00", "10.1234/a\x1b[31mred", "10.1234/a\x07", "10.1234/a\u202eb"],
    ids=["nul", "esc", "bel", "rtl-override"],
)
async def test_control_characters_are_refused(
    client: TestClient[Any, Any], kit: Kit, raw: str
) -> None:
    """NUL, ESC, BEL and bidi overrides never become part of a stored id."""
    resp = await client.post("/api/v1/works", json=[raw])
    assert resp.status == 200
    [result] = (await resp.json())["data"]
    assert result["status"] == "invalid"
    assert "\x1b" not in result["error"] and "\x00" not in result["error"]
    assert await kit.store.count_works() == 0


def _big_json(value: Any) -> io.BytesIO:
    """A large JSON body, streamed (aiohttp warns about large bodies given as bytes)."""
    return io.BytesIO(json.dumps(value).encode())


async def test_huge_ids_are_refused_whole(client: TestClient[Any, Any], kit: Kit) -> None:
    """210 ids of 9,000 characters (1.9 MB) are a 400 naming the limit; nothing is written."""
    ids = [f"10.1234/{n}" + "a" * 9000 for n in range(210)]
    message = await _json_error(await client.post("/api/v1/works", data=_big_json(ids)), 400)
    assert "at most 2048" in message
    assert await kit.store.count_works() == 0


async def test_a_body_over_the_limit_is_a_json_413(client: TestClient[Any, Any], kit: Kit) -> None:
    """A 7 MB id is refused by size before it is read whole."""
    resp = await client.post("/api/v1/works", data=_big_json(["10.1234/" + "a" * 7_000_000]))
    await _json_error(resp, 413)
    assert await kit.store.count_works() == 0


async def test_the_documented_ids_limit_fits_the_request_line(
    client: TestClient[Any, Any], kit: Kit
) -> None:
    """`ids=` of 100 DOIs of 83 characters (over aiohttp's default 8,190-byte line) answers;
    101 ids are a JSON 400."""
    ids = [f"10.1234/{n:03d}" + "x" * 72 for n in range(101)]
    assert {len(i) for i in ids} == {83}
    resp = await client.get("/api/v1/works", params={"ids": ",".join(ids[:100])})
    assert resp.status == 200, await resp.text()
    assert len((await resp.json())["missing"]) == 100
    message = await _json_error(
        await client.get("/api/v1/works", params={"ids": ",".join(ids)}), 400
    )
    assert "1 to 100" in message


async def test_a_long_path_id_is_a_json_400(client: TestClient[Any, Any]) -> None:
    """An id of 10,000 characters in the path is refused as an identifier, in JSON."""
    message = await _json_error(await client.get("/api/v1/works/10.1234/" + "a" * 10_000), 400)
    assert "at most 300" in message or "longer than" in message


async def _raw_request(client: TestClient[Any, Any], data: bytes) -> tuple[int, dict[str, Any]]:
    """Send raw bytes to the server; the status and JSON body of its answer."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        assert b"application/json" in head.lower(), head
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                b":"
            )[1]
        )
        return status, json.loads(await reader.readexactly(length))
    finally:
        writer.close()


async def test_an_over_long_request_line_is_a_json_414(client: TestClient[Any, Any]) -> None:
    """Beyond MAX_LINE_SIZE the request line is refused with a JSON 414, not a text/plain 400."""
    url = "/api/v1/works?ids=" + "a" * MAX_LINE_SIZE
    status, body = await _raw_request(client, f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (status, body["status"]) == (414, 414)


async def test_an_over_long_header_is_a_json_431(client: TestClient[Any, Any]) -> None:
    """A header beyond MAX_FIELD_SIZE, or too many headers, is a JSON 431."""
    big = "x" * (MAX_FIELD_SIZE + 1)
    status, body = await _raw_request(
        client, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n".encode()
    )
    assert (status, body["status"]) == (431, 431)
    many = "".join(f"X-H{n}: v\r\n" for n in range(200))
    status, body = await _raw_request(
        client, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()
    )
    assert status == 431


POST = b"POST /api/v1/works HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G\x01T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9\r\n\r\n",
        POST + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
        POST + b"Content-Length: 10\r\nContent-Encoding: gzip\r\n\r\n0123456789",
        POST + b"Content-Length: abc\r\n\r\n",
        POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=[
        "nul-in-target",
        "bad-method",
        "bad-version",
        "bad-chunk",
        "bad-gzip",
        "bad-length",
        "length-and-chunked",
    ],
)
async def test_a_malformed_request_is_a_json_400(
    client: TestClient[Any, Any], request_bytes: bytes
) -> None:
    """What aiohttp cannot parse (request line, framing, a body it cannot decode) still gets a
    JSON 400, never a text page or a 500 (the POSTs carry an admin key: without one they are
    refused before their body is read)."""
    auth = b"Authorization: " + client.session.headers["Authorization"].encode() + b"\r\n"
    status, body = await _raw_request(client, request_bytes.replace(POST, POST + auth))
    assert status == 400 and body["status"] == 400


async def test_405_names_the_allowed_methods(client: TestClient[Any, Any]) -> None:
    """A method a path does not take is a JSON 405 with `Allow`."""
    resp = await client.put("/api/v1/sources/crossref/pause")
    await _json_error(resp, 405)
    assert resp.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "query",
    ["per_page=%D9%A5", "per_page=%EF%BC%95", "per_page=+5", "per_page=05", "page=1" + "0" * 5000],
    ids=["arabic-indic", "fullwidth", "plus", "leading-zero", "5000-digits"],
)
async def test_integer_parameters_are_ascii_digits(
    client: TestClient[Any, Any], query: str
) -> None:
    """`per_page=\u0665` and friends are a 400, never taken for 5 (nor a 500 for 5,000 digits)."""
    assert "must be an integer" in await _json_error(
        await client.get(f"/api/v1/works?{query}"), 400
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"null", 400),
        (b"[1]", 400),
        (b'"reason"', 400),
        (b'{"reason": 5}', 400),
        (b'{"reasons": "typo"}', 400),
        (json.dumps({"reason": "x" * 1_000_000}).encode(), 400),
        (json.dumps({"reason": "x" * 500}).encode(), 200),
        (b"{}", 200),
    ],
    ids=["null", "list", "string", "number", "unknown-field", "1mb-reason", "500-chars", "empty"],
)
async def test_pause_validates_its_body(
    client: TestClient[Any, Any], kit: Kit, body: bytes, status: int
) -> None:
    """The pause body is an object with an optional string reason of at most 500 characters;
    anything else is a 400 and pauses nothing."""
    resp = await client.post(
        "/api/v1/sources/crossref/pause", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == status, await resp.text()
    statuses = await kit.store.source_statuses()
    assert ("crossref" in statuses) is (status == 200)
    if status == 200:
        listed = await (await client.get("/api/v1/sources")).json()
        crossref = next(s for s in listed["data"] if s["name"] == "crossref")
        assert len(crossref["pause_reason"]) <= 500


async def test_an_unexpected_failure_is_a_json_500(
    client: TestClient[Any, Any], kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler failing in a way nobody planned answers the JSON error body, not a traceback."""

    async def broken(*args: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(kit.store, "list_works", broken)
    message = await _json_error(await client.get("/api/v1/works"), 500)
    assert "disk on fire" not in message
