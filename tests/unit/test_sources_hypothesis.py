"""Hypothes.is plug-in: `total` and rows as annotation events, paging by the rows served."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.core.events import FetchError
from services.core.sources import SourceConfig
from services.fetchers.base import Found, Source, UpstreamRequest, UpstreamResponse
from services.fetchers.engine import fetch_batch
from services.fetchers.sources.hypothesis import LIMIT, MAX_PAGES, Hypothesis
from tests.unit.sources_kit import fixture, kind, outcomes, record, response, work

SOURCE = Hypothesis()
CHI = work("10.1145/3290605.3300526")


def test_search_by_doi_url_with_the_largest_page() -> None:
    """The search asks for annotations of https://doi.org/DOI, 200 at a time."""
    [call] = SOURCE.requests([CHI], SourceConfig(api_key="tok"))
    params = dict(call.params)
    assert (params["uri"], params["limit"], params["offset"]) == (
        "https://doi.org/10.1145/3290605.3300526",
        "200",
        "0",
    )
    assert dict(call.headers) == {"Authorization": "Bearer tok"}


def test_rows_become_events_and_total_is_the_count() -> None:
    """`total` is the count; each row an event with its html link, author and date."""
    [call] = SOURCE.requests([CHI], SourceConfig())
    got, more = outcomes(SOURCE, call, response(200, record("hypothesis", CHI.doi or "")))
    found = got[CHI.work_id]
    assert isinstance(found, Found) and found.metrics == {"annotations": 2} and more == ()
    first, second = found.events
    assert first.event_id == "hypothesis:hK3nYg9sEem1a2bC"
    assert first.url == "https://hypothes.is/a/hK3nYg9sEem1a2bC"
    assert first.csl["author"] == [{"literal": "Reader One"}]
    assert second.csl["author"] == [{"literal": "reader2@hypothes.is"}]


def _rows(start: int, n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"a{i}", "links": {"html": f"https://hypothes.is/a/a{i}"}}
        for i in range(start, start + n)
    ]


def test_the_next_page_starts_after_the_rows_served() -> None:
    """A full page asks for offset 200; a page of 2 rows (fewer than asked) for offset 2, so no
    row is skipped; the later page is optional (its failure leaves the count standing)."""
    [call] = SOURCE.requests([CHI], SourceConfig())
    for served in (LIMIT, 2):
        _, more = outcomes(SOURCE, call, response(200, {"total": 450, "rows": _rows(0, served)}))
        assert [dict(m.params)["offset"] for m in more] == [str(served)]
        assert [m.optional for m in more] == [True]
    assert not call.optional


class _Pages:
    """Serves a search of `total` annotations in pages of at most `size` rows."""

    def __init__(self, total: int, size: int) -> None:
        self.total, self.size, self.offsets = total, size, list[int]()

    async def call(self, source: Source, request: UpstreamRequest) -> UpstreamResponse | FetchError:
        offset = int(dict(request.params)["offset"])
        self.offsets.append(offset)
        rows = _rows(offset, max(0, min(self.size, self.total - offset)))
        return response(200, {"total": self.total, "rows": rows})


async def test_a_large_total_lists_at_most_max_pages_and_keeps_the_count() -> None:
    """5,000 annotations: MAX_PAGES pages are listed, the count is the total, and the batch is
    not cut short by the engine's round limit (25 pages of 200 would pass it)."""
    server = _Pages(5_000, LIMIT)
    at = datetime(2026, 10, 1, tzinfo=UTC)
    result = await fetch_batch(SOURCE, [CHI], SourceConfig(), server, lambda: at)
    [obs] = result.observations
    assert obs.status.value == "ok", obs.error
    assert dict(obs.metrics) == {"annotations": 5_000}
    assert len(obs.events) == MAX_PAGES * LIMIT
    assert server.offsets == [i * LIMIT for i in range(MAX_PAGES)]


def test_zero_total_and_failure_body() -> None:
    """total 0 is not found; {"status": "failure"} fails; a missing total is a parse failure."""
    [call] = SOURCE.requests([CHI], SourceConfig())
    assert (
        kind(outcomes(SOURCE, call, response(200, {"total": 0, "rows": []}))[0][CHI.work_id])
        == "not_found"
    )
    failure = {"status": "failure", "reason": "the service is busy"}
    assert kind(outcomes(SOURCE, call, response(200, failure))[0][CHI.work_id]) == "failed:http"
    no_total = response(200, fixture("hypothesis", "errors/total-missing.json"))
    assert kind(outcomes(SOURCE, call, no_total)[0][CHI.work_id]) == "failed:parse"
