"""One identifier an upstream refuses never fails its batch nor pauses the source: a batch
answered 4xx is asked again in halves until the culprit is alone; the good works get their
numbers, the culprit a `rejected` error (no retry, no dead letter, not counted)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.core.events import TOPIC_DEADLETTER, TOPIC_RETRY, FetchError, Status
from services.core.health import ErrorWindow
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.embedded import refresh_until_idle
from services.fetchers.base import UpstreamRequest, UpstreamResponse
from services.fetchers.engine import fetch_batch
from services.fetchers.registry import SOURCES
from tests.unit.pipeline_kit import pipeline_kit

NATURE = "10.1038/s41586-023-06139-9"
CHI = "10.1145/3290605.3300526"
CULPRIT = "10.1234/" + "a" * 250
T0 = datetime(2026, 11, 25, tzinfo=UTC)


class RefusingCrossref:
    """Answers Crossref list calls: 400 when any of the culprits is in the filter, else an empty
    (all not-found) work list; counts the calls."""

    def __init__(self, culprits: Sequence[str]) -> None:
        self.culprits = set(culprits)
        self.sizes: list[int] = []

    async def call(self, source: object, request: UpstreamRequest) -> UpstreamResponse:
        dois = {w.doi for w in request.works}
        self.sizes.append(len(dois))
        if dois & self.culprits:
            return UpstreamResponse(400, {}, b'{"status": "failed"}', "https://x/works")
        if len(dois) == 1:
            body = b'{"status": "ok", "message-type": "work", "message": {"DOI": "%s", '
            body += b'"is-referenced-by-count": 7}}'
            return UpstreamResponse(200, {}, body % next(iter(dois)).encode(), "https://x/w")
        items = ",".join(f'{{"DOI": "{d}", "is-referenced-by-count": 7}}' for d in sorted(dois))
        body = f'{{"status": "ok", "message-type": "work-list", "message": {{"items": [{items}]}}}}'
        return UpstreamResponse(200, {}, body.encode(), "https://x/works")


def _works(n: int) -> list[WorkRef]:
    return [WorkRef(f"10.5555/w{i}", f"10.5555/w{i}") for i in range(n)]


@pytest.mark.parametrize(
    ("size", "culprits"), [(2, [0]), (50, [17]), (50, [0, 49]), (50, [3, 4, 30]), (7, [6])]
)
async def test_bisection_isolates_the_culprits(size: int, culprits: list[int]) -> None:
    """Every good work is found; exactly the culprits are rejected, each alone in its call;
    the number of calls stays within 2 * culprits * log2(size) + 1."""
    works = _works(size)
    bad = [works[i].doi or "" for i in culprits]
    caller = RefusingCrossref(bad)
    result = await fetch_batch(SOURCES["crossref"], works, SourceConfig(), caller, lambda: T0)
    by_work = {o.work_id: o for o in result.observations}
    assert len(by_work) == size
    for i, work in enumerate(works):
        obs = by_work[work.work_id]
        if i in culprits:
            assert obs.status is Status.ERROR and obs.error is not None
            assert (obs.error.kind, obs.error.retryable, obs.error.http_status) == (
                "rejected",
                False,
                400,
            )
        else:
            assert obs.status is Status.OK and obs.metrics == {"citations": 7}, obs
    assert result.calls == len(caller.sizes)
    assert result.calls <= 2 * len(culprits) * max(1, size.bit_length()) + 1


async def test_a_batch_refused_for_another_reason_is_not_bisected() -> None:
    """401, 408 and 429 answers are about credentials, time or pacing: the batch is not split."""

    class Answer:
        def __init__(self, status: int) -> None:
            self.status = status
            self.calls = 0

        async def call(self, source: object, request: UpstreamRequest) -> UpstreamResponse:
            self.calls += 1
            return UpstreamResponse(self.status, {}, b"{}", "https://x/works")

    for status in (401, 408, 429):
        caller = Answer(status)
        result = await fetch_batch(
            SOURCES["crossref"], _works(8), SourceConfig(), caller, lambda: T0
        )
        assert caller.calls == 1, status
        assert {o.error.kind for o in result.observations if o.error} != {"rejected"}


async def test_a_call_refused_as_such_is_not_bisected_and_counts_against_the_source() -> None:
    """A 400 whose body says the call itself is wrong (OpenAlex: a `select` field it does not
    know) fails every work of the batch once, as the source's own failure: asking again in
    halves would only repeat it, and 200 of them pause the source."""
    body = (
        b'{"error":"Invalid query parameters error.",'
        b'"message":"cited_by_count is not a valid select field."}'
    )

    class Refusing:
        calls = 0

        async def call(self, source: object, request: UpstreamRequest) -> UpstreamResponse:
            self.calls += 1
            return UpstreamResponse(400, {}, body, "https://x/works")

    caller = Refusing()
    result = await fetch_batch(SOURCES["openalex"], _works(8), SourceConfig(), caller, lambda: T0)
    assert caller.calls == 1
    errors = [o.error for o in result.observations]
    assert all(e is not None and e.kind == "refused_call" and not e.retryable for e in errors)
    window = ErrorWindow(limit=200)
    first = errors[0]
    assert first is not None and "select field" in first.message
    reasons = [window.record(first, T0 + timedelta(minutes=i)) for i in range(201)]
    assert reasons[-1] is not None and "refused_call" in reasons[-1]


@pytest.mark.parametrize(
    ("error", "counted"),
    [
        (FetchError("http", "HTTP 400 from upstream", False, 400), False),
        (FetchError("rejected", "HTTP 400 for this identifier alone", False, 400), False),
        (FetchError("http", "HTTP 414 from upstream", False, 414), False),
        (FetchError("rate_limited", "HTTP 429", True, 429), False),
        (FetchError("http", "HTTP 503 from upstream", True, 503), True),
        (FetchError("http", "HTTP 408 from upstream", True, 408), True),
        (FetchError("timeout", "no answer", True), True),
        (FetchError("connection", "refused", True), True),
        (FetchError("parse", "malformed crossref response", True, 200), True),
        (FetchError("refused_call", "HTTP 400: openalex refuses the call", False, 400), True),
    ],
)
def test_only_the_sources_own_failures_count(error: FetchError, counted: bool) -> None:
    """213 failures in 24 h pause a source only if they are its own (5xx, timeouts, refused
    connections, malformed answers), never 4xx answers about an identifier."""
    window = ErrorWindow(limit=200)
    reasons = [window.record(error, T0 + timedelta(minutes=i)) for i in range(213)]
    assert (reasons[-1] is not None) is counted


async def test_one_bad_id_does_not_poison_its_batch_in_the_pipeline(tmp_path: Path) -> None:
    """The issue's case: a refused id among two real works. The real works get Crossref's and
    OpenAlex's numbers; the culprit a `rejected` error, nothing dead-lettered or retried, and
    its next refresh is on the routine schedule."""
    async with pipeline_kit(tmp_path, sources=("crossref", "openalex")) as kit:
        for source in ("crossref", "openalex"):
            kit.fail(source, CULPRIT, 400, '{"status": "failed"}', "application/json")
        dead = kit.bus.consumer([TOPIC_DEADLETTER, TOPIC_RETRY], "test-watch")
        await kit.register([NATURE, CHI, CULPRIT])
        await refresh_until_idle(kit.pipeline)
        states = await kit.store.states_for([NATURE, CHI, CULPRIT])
        for work_id in (NATURE, CHI):
            assert {s.source: s.status for s in states[work_id]} == {
                "crossref": Status.OK,
                "openalex": Status.OK,
            }
        culprit = {s.source: s for s in states[CULPRIT]}
        assert all(s.status is Status.ERROR for s in culprit.values())
        assert all((s.error or "").startswith("rejected: HTTP 400") for s in culprit.values())
        assert await dead.poll(100, 0) == []
        assert await kit.store.source_statuses() == {}
        later = kit.clock() + timedelta(days=400)
        for source in ("crossref", "openalex"):
            due = {e.work_id: e for e in await kit.store.due(source, later, 100)}
            assert due[CULPRIT].at > kit.clock() + timedelta(hours=2)  # routine, not a lease


async def test_many_refused_ids_never_pause_the_source(tmp_path: Path) -> None:
    """210 refused ids (the issue's attack) leave every source running."""
    culprits = [f"10.1234/{n}-" + "z" * 200 for n in range(210)]
    async with pipeline_kit(tmp_path, sources=("crossref",)) as kit:
        for doi in culprits:
            kit.fail("crossref", doi, 400, '{"status": "failed"}', "application/json")
        kit.pipeline.fetchers[0].failures.limit = 50  # a smaller window, same rule
        await kit.register(culprits)
        await refresh_until_idle(kit.pipeline)
        assert await kit.store.source_statuses() == {}
        states = await kit.store.states_for(culprits)
        assert all(s.error and s.error.startswith("rejected") for r in states.values() for s in r)
