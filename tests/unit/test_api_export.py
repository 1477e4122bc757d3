"""`GET /api/v1/works.csv` over the embedded store: the rows are what is stored, the filters
are the works list's plus `source` and `metric`, bad ones are the list's JSON 400s, reads may
need a key, and the CSV is streamed a chunk of works at a time (every row once across chunk
boundaries; the first bytes arrive before the walk ends; a client that leaves stops it; a store
failing mid-walk truncates the transfer instead of ending it as if complete)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.api.app import init_app
from services.api.csv_export import COLUMNS
from services.api.server import ApiRunner
from services.api.state import EXPORT_CHUNK
from services.bootstrap import api_context
from services.core.aggregation import Aggregate, SourceState
from services.core.events import Status
from services.core.keys import Role
from services.core.works import Work
from services.embedded import refresh_until_idle
from services.keyring import create_key
from services.settings import AccessSettings, Settings
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

PCBI = "10.1371/journal.pcbi.1000204"  # PMID 18974831, PMCID PMC2568856 in the fixtures
PEERJ = "10.7717/peerj.4375"
CSV = "/api/v1/works.csv"
AT = datetime(2026, 11, 25, 12, 0, 7, 250000, tzinfo=UTC)


def _table(text: str) -> list[dict[str, str]]:
    """The CSV's rows as dicts, after checking the header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    assert next(reader) == list(COLUMNS)
    return [dict(zip(COLUMNS, row, strict=True)) for row in reader]


async def _csv(client: TestClient[Any, Any], query: str = "") -> list[dict[str, str]]:
    resp = await client.get(CSV + query)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="alm-works.csv"'
    return _table(await resp.text())


# -- over the refreshed pipeline ----------------------------------------------------------


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        await k.register([PCBI, PEERJ, "10.1234/not.in.fixtures"])
        await refresh_until_idle(k.pipeline)
        pcbi = await k.store.get_work(PCBI)
        assert pcbi is not None
        await k.store.update_works([replace(pcbi, publisher_id="340")])
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with api_client(kit, tmp_path) as c:
        yield c


async def _stored(kit: Kit, work_ids: list[str]) -> list[tuple[str, str, str, str]]:
    """(work id, source, metric, value) of every reported metric in the store, by work id."""
    states = await kit.store.states_for(work_ids)
    return sorted(
        (w, s.source, metric, str(value))
        for w in work_ids
        for s in states[w]
        if s.retrieved_at is not None
        for metric, value in s.metrics.items()
    )


def _keys(rows: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    return [(r["work_id"], r["source"], r["metric"], r["value"]) for r in rows]


async def test_every_stored_metric_is_a_row(client: TestClient[Any, Any], kit: Kit) -> None:
    """The export holds exactly the stored metrics of every work, in work-id order, with the
    work's identifiers and the state's retrieval time."""
    rows = await _csv(client)
    ids = sorted([PCBI, PEERJ, "10.1234/not.in.fixtures"])
    assert _keys(rows) == await _stored(kit, ids)
    assert len(rows) >= 6
    pcbi = next(r for r in rows if r["work_id"] == PCBI)
    assert (pcbi["doi"], pcbi["pmid"], pcbi["pmcid"]) == (PCBI, "18974831", "PMC2568856")
    state = (await kit.store.states_for([PCBI]))[PCBI][0]
    assert state.retrieved_at is not None
    at = state.retrieved_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {r["retrieved_at"] for r in rows if r["work_id"] == PCBI} == {at}


@pytest.mark.parametrize(
    ("query", "works", "sources", "metrics"),
    [
        ("?source=crossref", None, {"crossref"}, None),
        ("?metric=citations", None, None, {"citations"}),
        ("?source=openalex&metric=citations", None, {"openalex"}, {"citations"}),
        ("?publisher_id=340", [PCBI], None, None),
        ("?publisher_id=999", [], None, None),
        (f"?ids=pmid:18974831,{PEERJ},10.9999/nope", [PCBI, PEERJ], None, None),
        (f"?cursor={PCBI.replace('/', '%2F')}", [PEERJ], None, None),
    ],
)
async def test_filters_narrow_the_rows(
    client: TestClient[Any, Any],
    kit: Kit,
    query: str,
    works: list[str] | None,
    sources: set[str] | None,
    metrics: set[str] | None,
) -> None:
    """`source` and `metric` keep their rows; `publisher_id`, `ids` and `cursor` choose the
    works as the works list does; what is kept is exactly what the store holds for it."""
    everything = await _csv(client)
    rows = await _csv(client, query)
    expected = [
        r
        for r in _keys(everything)
        if (works is None or r[0] in works)
        and (sources is None or r[1] in sources)
        and (metrics is None or r[2] in metrics)
    ]
    assert _keys(rows) == sorted(expected)
    if works != []:
        assert rows, "the filter kept nothing: the test proves nothing"


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("?source=nosuch", "source"),
        ("?source=", "source"),
        ("?metric=nosuch", "metric"),
        ("?publisher_id=PLOS", "publisher_id"),
        ("?cursor=", "cursor"),
        ("?ids=10.7717/peerj.4375,garbage", "garbage"),
    ],
)
async def test_bad_filters_get_the_lists_json_400(
    client: TestClient[Any, Any], query: str, needle: str
) -> None:
    """A bad parameter is a JSON 400 naming it, before any CSV is sent."""
    resp = await client.get(CSV + query)
    assert resp.status == 400
    body = await resp.json()
    assert body["status"] == 400 and needle in body["error"]


async def test_head_answers_the_headers_only(client: TestClient[Any, Any]) -> None:
    """HEAD gets the CSV's headers and no body; a bad parameter is a 400 there too."""
    resp = await client.head(CSV)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert await resp.read() == b""
    assert (await client.head(CSV + "?source=nosuch")).status == 400


# -- over a store with many works ---------------------------------------------------------


class GatedStore(SqliteStore):
    """The SQLite store, counting its keyset pages; from page `hold_from` on, each page waits
    for `gate` (and raises `fail` instead, when set)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pages = 0
        self.hold_from = 10**9
        self.gate = asyncio.Event()
        self.held = asyncio.Event()
        self.fail: Exception | None = None

    async def works_after(self, after: str | None, limit: int) -> list[Work]:
        self.pages += 1
        if self.pages >= self.hold_from:
            self.held.set()
            await self.gate.wait()
            if self.fail is not None:
                raise self.fail
        return await super().works_after(after, limit)


WORKS = 23  # with chunks of 5: five chunks, the last short


def _doi(n: int) -> str:
    return f"10.5555/w{n:03d}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[GatedStore]:
    """WORKS works, each with two sources' states (odd works: a third state, never refreshed);
    one work has no state at all."""
    db = GatedStore(tmp_path / "alm.sqlite")
    await db.migrate()
    await db.register([Work(_doi(n), doi=_doi(n)) for n in range(WORKS)])
    aggregates = []
    for n in range(1, WORKS):
        aggregates += [
            Aggregate(SourceState(_doi(n), "crossref", {"citations": n}, AT, AT, Status.OK), True),
            Aggregate(
                SourceState(_doi(n), "datacite", {"views": n, "downloads": 0}, AT, AT, Status.OK),
                True,
            ),
        ]
        if n % 2:
            failed = SourceState(_doi(n), "openalex", {}, None, AT, Status.ERROR, "http: 503")
            aggregates.append(Aggregate(failed, True))
    await db.write_aggregates(aggregates)
    yield db
    await db.close()


class ServedLikeProduction(TestServer):
    """The API's own runner, with aiohttp's default of not cancelling a handler whose client
    left (TestServer turns that on; `alm api` does not)."""

    cancel = False

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return ApiRunner(self.app, **{**kwargs, "handler_cancellation": self.cancel})


class ServedCancelling(ServedLikeProduction):
    cancel = True


async def _gated_client(
    store: GatedStore, tmp: Path, chunk: int, cancel: bool = False, **access: Any
) -> TestClient[Any, Any]:
    settings = Settings(data_dir=tmp, status_cache_seconds=0, access=AccessSettings(**access))
    app = init_app(api_context(settings, store=store, bus=MemoryBus()))
    app[EXPORT_CHUNK] = chunk
    return TestClient((ServedCancelling if cancel else ServedLikeProduction)(app))


def _expected_rows() -> list[tuple[str, str, str, str]]:
    return [
        (_doi(n), source, metric, str(value))
        for n in range(1, WORKS)
        for source, metric, value in (
            ("crossref", "citations", n),
            ("datacite", "downloads", 0),
            ("datacite", "views", n),
        )
    ]


@pytest.mark.parametrize("chunk", [1, 5, WORKS, 500])
async def test_every_row_once_across_chunk_boundaries(
    store: GatedStore, tmp_path: Path, chunk: int
) -> None:
    """Whatever the chunk size, every stored metric of every work is one row, in work-id
    order: none lost or repeated where one chunk ends and the next begins; the walk reads
    one page per chunk and one that comes back empty."""
    async with await _gated_client(store, tmp_path, chunk) as client:
        rows = await _csv(client)
    assert _keys(rows) == _expected_rows()
    assert store.pages == -(-WORKS // chunk) + 1


async def test_the_first_chunk_arrives_before_the_walk_ends(
    store: GatedStore, tmp_path: Path
) -> None:
    """The header and the first chunk's rows reach the client while the walk is held at its
    third page: the CSV is streamed, not built whole and then sent."""
    store.hold_from = 3
    async with await _gated_client(store, tmp_path, 5) as client:
        resp = await client.get(CSV)
        assert resp.status == 200
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        first = b""
        while first.count(b"\r\n") < 1 + 3 * 4 + 3 * 5:  # header, works 1-4, works 5-9
            first += await asyncio.wait_for(resp.content.readany(), 5)
        assert not store.gate.is_set()
        store.gate.set()
        rest = await resp.read()
    assert _keys(_table((first + rest).decode())) == _expected_rows()


@pytest.mark.parametrize("cancel", [False, True], ids=["write-fails", "handler-cancelled"])
async def test_a_client_that_leaves_stops_the_walk(
    store: GatedStore, tmp_path: Path, cancel: bool
) -> None:
    """A client that disconnects after the first chunk: the walk ends at its next write
    (aiohttp's default, `alm api`'s) or at once (with handler cancellation) instead of
    reading every page."""
    store.hold_from = 3
    async with await _gated_client(store, tmp_path, 1, cancel) as client:
        resp = await client.get(CSV)
        await asyncio.wait_for(resp.content.readany(), 5)
        await asyncio.wait_for(store.held.wait(), 5)
        resp.close()  # drops the connection
        await asyncio.sleep(0.1)
        store.gate.set()
        for _ in range(20):  # let the handler run into the closed connection
            await asyncio.sleep(0.05)
    assert store.pages <= 4, f"the walk went on after the client left: {store.pages} pages"


async def test_a_store_failing_mid_walk_truncates_the_transfer(
    store: GatedStore, tmp_path: Path
) -> None:
    """Once the CSV has started, a store failure cannot become a JSON error: the connection
    is aborted, so that the client sees an incomplete body, not a short CSV that ends well."""
    store.hold_from = 2
    store.fail = RuntimeError("the store fell over")
    store.gate.set()
    async with await _gated_client(store, tmp_path, 5) as client:
        resp = await client.get(CSV)
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_a_store_failing_before_the_csv_is_a_json_error(
    store: GatedStore, tmp_path: Path
) -> None:
    """A failure on the first page is answered like any route's, as a JSON error."""
    store.hold_from = 1
    store.fail = RuntimeError("the store fell over")
    store.gate.set()
    async with await _gated_client(store, tmp_path, 5) as client:
        resp = await client.get(CSV)
        assert resp.status == 500
        assert (await resp.json())["status"] == 500


async def test_reads_closed_need_a_key(store: GatedStore, tmp_path: Path) -> None:
    """With ALM_API_REQUIRE_KEY the export is a 401 without a key and answered with a reader
    key, like the works list."""
    async with await _gated_client(store, tmp_path, 5, require_key=True) as client:
        resp = await client.get(CSV)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        _, key = await create_key(SqliteKeyStore(store), "r", Role.READER, AT)
        resp = await client.get(CSV, headers={"X-API-Key": key})
        assert resp.status == 200
        assert len(_table(await resp.text())) == len(_expected_rows())
