"""The Crossref catalogue client (services/fetchers/catalogue.py) against the stub upstream's
catalogue routes (services/stub/crossref_catalogue.py), over loopback HTTP: member and prefix
pages with scroll cursors to the last, empty page; expiry; filters; faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from services.bootstrap import make_caller
from services.core.catalogue_state import Scope, Window
from services.fetchers.catalogue import (
    CatalogueClient,
    CatalogueError,
    CursorRefused,
    NotInCrossref,
)
from services.fetchers.http import HttpSettings
from services.fetchers.registry import SOURCES, get_source
from services.settings import FIXTURES, Settings
from services.stub import server as stub_server
from services.stub.crossref_catalogue import CatalogueStub, PageFault

PLOS = Scope.member("340")
EVERYTHING = Window(None, date(2026, 11, 29))
RECORDED_PLOS = 4  # PLOS works in tests/fixtures/upstream/crossref/records
_NOW = datetime(2026, 11, 29, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Upstream:
    stub: CatalogueStub
    client: CatalogueClient
    clock: Clock


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The stub upstream on loopback, its catalogue clock in the test's hand, and a client."""
    app = stub_server.init_app(SOURCES, FIXTURES)
    stub = app[stub_server.STUBS]["crossref"].catalogue
    clock = Clock()
    stub.clock = clock
    runner, root = await stub_server.start(app)
    settings = Settings(upstream_root=root, rates={"crossref": 1000.0})
    crossref = get_source("crossref")
    http = HttpSettings(retries=0, rates=settings.rates)
    async with make_caller(settings, [crossref], http) as caller:
        config = settings.source_config("crossref")
        yield Upstream(stub, CatalogueClient(caller, crossref, config, backoff=0.0), clock)
    await runner.cleanup()


async def _all(up: Upstream, scope: Scope, window: Window, rows: int) -> tuple[list[str], int]:
    """Page through `window` as an import does (until a page shorter than `rows`)."""
    cursor, dois, pages = "*", [], 0
    while True:
        page = await up.client.page(scope, window, cursor, rows)
        pages += 1
        dois += [w.work_id for w in page.works]
        if page.items < rows:
            return dois, pages
        assert page.next_cursor
        cursor = page.next_cursor


async def test_a_member_catalogue_pages_to_the_empty_page_with_one_cursor(
    upstream: Upstream,
) -> None:
    """Every work once, in pages of `rows`; when the size is a multiple of `rows` the end is
    the empty page; the cursor (with `+`, `/`, `=` in it) is the same string every page."""
    upstream.stub.resize(2000 - RECORDED_PLOS)
    first = await upstream.client.page(PLOS, EVERYTHING, "*", 500)
    assert first.total == 2000 and first.items == 500
    assert first.next_cursor and {"+", "/", "="} <= set(first.next_cursor)
    second = await upstream.client.page(PLOS, EVERYTHING, first.next_cursor, 500)
    assert second.next_cursor == first.next_cursor
    dois, pages = await _all(upstream, PLOS, EVERYTHING, 500)
    assert len(dois) == len(set(dois)) == 2000
    assert pages == 5  # four full pages, then the empty one past the end
    assert "10.1371/journal.pone.0000308" in dois  # the recorded PLOS works come first


async def test_windows_of_index_dates_split_the_catalogue_exactly(upstream: Upstream) -> None:
    """Counts of adjacent windows add up to the whole; their pages hold those works."""
    total = await upstream.client.count(PLOS, EVERYTHING)
    early = Window(None, date(2026, 9, 30))
    late = Window(date(2026, 10, 1), EVERYTHING.end)
    counts = [await upstream.client.count(PLOS, w) for w in (early, late)]
    assert total == 2504 and sum(counts) == total and all(counts)
    early_dois, _ = await _all(upstream, PLOS, early, 1000)
    late_dois, _ = await _all(upstream, PLOS, late, 1000)
    assert len(early_dois) == counts[0] and len(late_dois) == counts[1]
    assert not set(early_dois) & set(late_dois)


async def test_the_prefix_route_and_the_publisher_behind_it(upstream: Upstream) -> None:
    """`/prefixes/10.1371/works` lists PLOS's works; the prefix leads to member 340, whose
    count is the catalogue's size."""
    dois, _ = await _all(upstream, Scope.prefix("10.1371"), EVERYTHING, 1000)
    assert len(dois) == 2504
    publisher = await upstream.client.publisher(Scope.prefix("10.1371"), _NOW)
    assert (publisher.member_id, publisher.works_upstream) == ("340", 2504)
    assert publisher == await upstream.client.publisher(PLOS, _NOW)


async def test_unknown_members_and_prefixes_are_not_in_crossref(upstream: Upstream) -> None:
    """Crossref's plain-text 404 for an unknown member or prefix is NotInCrossref."""
    with pytest.raises(NotInCrossref, match="no member 999"):
        await upstream.client.publisher(Scope.member("999"), _NOW)
    with pytest.raises(NotInCrossref, match=r"no DOI prefix 10\.9999"):
        await upstream.client.publisher(Scope.prefix("10.9999"), _NOW)
    with pytest.raises(NotInCrossref):
        await upstream.client.page(Scope.member("999"), EVERYTHING, "*", 10)


async def test_a_cursor_unused_for_five_minutes_is_refused(upstream: Upstream) -> None:
    """After five minutes unused the scroll is gone: CursorRefused (start the window again)."""
    first = await upstream.client.page(PLOS, EVERYTHING, "*", 100)
    assert first.next_cursor
    upstream.clock.now += 299
    await upstream.client.page(PLOS, EVERYTHING, first.next_cursor, 100)  # used: kept alive
    upstream.clock.now += 301
    with pytest.raises(CursorRefused, match="Cursor specified but it is invalid"):
        await upstream.client.page(PLOS, EVERYTHING, first.next_cursor, 100)


async def test_a_failed_page_is_retryable_and_a_lost_answer_moves_the_cursor(
    upstream: Upstream,
) -> None:
    """A 503 page is a retryable failure that was sent; when the upstream acted on it (the
    answer lost), asking again with the cursor skips that page, which is why an import
    starts the window again instead."""
    first = await upstream.client.page(PLOS, EVERYTHING, "*", 100)
    assert first.next_cursor
    upstream.stub.fault = PageFault(times=1, advance=True)
    with pytest.raises(CatalogueError) as failed:
        await upstream.client.page(PLOS, EVERYTHING, first.next_cursor, 100)
    assert failed.value.retryable and not failed.value.unsent
    third = await upstream.client.page(PLOS, EVERYTHING, first.next_cursor, 100)
    fresh = await upstream.client.page(PLOS, EVERYTHING, "*", 100)
    fresh_second = await upstream.client.page(PLOS, EVERYTHING, fresh.next_cursor or "", 100)
    fresh_third = await upstream.client.page(PLOS, EVERYTHING, fresh.next_cursor or "", 100)
    assert [w.work_id for w in third.works] == [w.work_id for w in fresh_third.works]
    assert fresh_second.works  # the page the lost answer held


async def test_a_bad_parameter_is_a_permanent_failure(upstream: Upstream) -> None:
    """Crossref's 400 validation failure (rows above 1000) is not retried."""
    with pytest.raises(CatalogueError, match="Rows must be") as failed:
        await upstream.client.page(PLOS, EVERYTHING, "*", 1001)
    assert not failed.value.retryable


async def test_new_and_reindexed_works_move_to_their_index_day(upstream: Upstream) -> None:
    """Works added or re-indexed on a day are what a window of that day lists."""
    day = date(2026, 11, 28)
    catalogue = upstream.stub.catalogues["340"]
    before = await upstream.client.count(PLOS, Window(day, day))
    added = catalogue.add(3, day)
    catalogue.reindex([10, 11], day)
    dois, _ = await _all(upstream, PLOS, Window(day, day), 1000)
    assert len(dois) == before + 5 and set(added) <= set(dois)
