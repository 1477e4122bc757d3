"""Fetch a batch of works from one source: run the plug-in's calls (and follow-ups), turn every
response into one outcome per work, and those into observations. No bus, no store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.core.events import FetchError, Observation, Status
from services.core.ports import RawResponse
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    NotFound,
    Outcome,
    PayloadError,
    Source,
    SourceConfig,
    UpstreamRequest,
    UpstreamResponse,
)

MAX_ROUNDS = 20  # follow-up rounds (paging, second steps) before a batch is cut short


class Caller(Protocol):
    """Sends one upstream request (the HTTP adapter, or a fake in unit tests)."""

    async def call(
        self, source: Source, request: UpstreamRequest
    ) -> UpstreamResponse | FetchError: ...


@dataclass(slots=True)
class BatchResult:
    """Observations (one per fetched work) and the raw responses they came from."""

    observations: list[Observation] = field(default_factory=list)
    raw: list[RawResponse] = field(default_factory=list)
    calls: int = 0


def classify(status: int) -> FetchError:
    """The error an unexpected HTTP status means; 4xx other than 408/429 will not heal by retrying
    soon, but a later scheduled refresh tries again."""
    if status == 429:
        return FetchError("rate_limited", "HTTP 429 Too Many Requests", True, status)
    if status in (401, 403):
        return FetchError("http", f"HTTP {status}: credentials refused", False, status)
    retryable = status >= 500 or status == 408
    return FetchError("http", f"HTTP {status} from upstream", retryable, status)


def merge(a: Outcome | None, b: Outcome) -> Outcome:
    """Combine two outcomes for one work (a second step, another page): a failure wins."""
    if a is None or isinstance(b, Failed):
        return b
    if isinstance(a, Failed):
        return a
    if isinstance(a, NotFound):
        return b
    if isinstance(b, NotFound):
        return a
    return Found(
        metrics={**a.metrics, **b.metrics},
        periods=a.periods + b.periods,
        events=a.events + b.events,
        events_url=a.events_url or b.events_url,
        meta={**b.meta, **a.meta},
    )


def outcome_of(
    source: Source, request: UpstreamRequest, reply: UpstreamResponse | FetchError
) -> tuple[dict[str, Outcome], tuple[UpstreamRequest, ...]]:
    """Per-work outcomes of one call, and the follow-up calls the plug-in asks for."""
    if isinstance(reply, FetchError):
        return {w.work_id: Failed(reply) for w in request.works}, ()
    if not (200 <= reply.status < 300 or reply.status == 404):
        return {w.work_id: Failed(classify(reply.status)) for w in request.works}, ()
    try:
        parsed = source.parse(request, reply)
    except PayloadError as exc:
        err = FetchError("parse", f"malformed {source.name} response: {exc}", True, reply.status)
        return {w.work_id: Failed(err) for w in request.works}, ()
    return dict(parsed.outcomes), parsed.follow_ups


def observation(
    source: Source, work: WorkRef, outcome: Outcome | None, at: datetime, url: str | None
) -> Observation:
    """The observation a work's final outcome becomes."""
    if isinstance(outcome, Found):
        return Observation(
            work.work_id,
            source.name,
            at,
            Status.OK,
            metrics={**source.zero_metrics(), **outcome.metrics},
            periods=outcome.periods,
            events=outcome.events,
            events_url=outcome.events_url,
            request_url=url,
            work_meta=outcome.meta,
        )
    if isinstance(outcome, NotFound):
        return Observation(
            work.work_id,
            source.name,
            at,
            Status.NOT_FOUND,
            metrics=source.zero_metrics(),
            request_url=url,
        )
    error = (
        outcome.error
        if outcome
        else FetchError("parse", f"{source.name} response did not mention the work")
    )
    return Observation(work.work_id, source.name, at, Status.ERROR, error=error, request_url=url)


async def fetch_batch(
    source: Source,
    works: Sequence[WorkRef],
    config: SourceConfig,
    caller: Caller,
    clock: Callable[[], datetime],
    base_url: str = "",
) -> BatchResult:
    """Fetch `works` (at most the source's batch size) and return one observation per work."""
    result = BatchResult()
    outcomes: dict[str, Outcome] = {}
    urls: dict[str, str] = {}
    pending = source.requests(works, config)
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        replies = await asyncio.gather(*(caller.call(source, r) for r in pending))
        at = clock()
        follow_ups: list[UpstreamRequest] = []
        for request, reply in zip(pending, replies, strict=True):
            result.calls += 1
            if isinstance(reply, UpstreamResponse):
                ids = tuple(w.work_id for w in request.works)
                result.raw.append(
                    RawResponse(source.name, at, reply.url, reply.status, reply.text(), ids)
                )
                for w in request.works:
                    urls.setdefault(w.work_id, reply.url)
            per_work, more = outcome_of(source, request, reply)
            for work_id, outcome in per_work.items():
                outcomes[work_id] = merge(outcomes.get(work_id), outcome)
            follow_ups.extend(more)
        pending = follow_ups
    at = clock()
    for work in works:
        final: Outcome | None = outcomes.get(work.work_id)
        if pending and not isinstance(final, Failed):
            final = Failed(FetchError("parse", f"more than {MAX_ROUNDS} rounds of calls"))
        result.observations.append(
            observation(source, work, final, at, urls.get(work.work_id, base_url or None))
        )
    return result
