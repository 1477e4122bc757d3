"""Fetch a batch of works from one source: run the plug-in's calls (and follow-ups), turn every
response into one outcome per work, and those into observations. No bus, no store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.core.events import FetchError, Observation, Status
from services.core.ports import RawResponse
from services.core.works import WorkRef
from services.fetchers.base import (
    ConfigError,
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
SECRET_PARAMS = frozenset({"api_key", "apikey", "requestor_id", "access_token", "token"})


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


def public_url(url: str) -> str:
    """`url` with credential query parameters masked (it is stored and published)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        return url
    masked = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(masked, safe="/:|,*")))


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
        merged = {**source.zero_metrics(), **outcome.metrics}
        return Observation(
            work.work_id,
            source.name,
            at,
            Status.OK,
            metrics={name: value for name, value in merged.items() if value is not None},
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


def _authorized(request: UpstreamRequest, auth: UpstreamRequest | None) -> UpstreamRequest:
    """`request` carrying the source's auth call, unless it has one or the source needs none."""
    if auth is None or request.auth is not None:
        return request
    return replace(request, auth=auth)


def _first_calls(
    source: Source, works: Sequence[WorkRef], config: SourceConfig
) -> tuple[list[UpstreamRequest], UpstreamRequest | None, dict[str, Outcome]]:
    """The source's first calls and auth call, or a config failure for every work."""
    try:
        auth = source.auth_request(config)
        return [_authorized(r, auth) for r in source.requests(works, config)], auth, {}
    except ConfigError as exc:
        err = FetchError("config", f"{source.name}: {exc}", retryable=False)
        return [], None, {w.work_id: Failed(err) for w in works}


def _final(source: Source, outcome: Outcome | None, cut_short: bool) -> Outcome | None:
    """A work's merged outcome, completed by the source (or failed if calls were left)."""
    if cut_short and not isinstance(outcome, Failed):
        return Failed(FetchError("parse", f"more than {MAX_ROUNDS} rounds of calls"))
    return source.complete(outcome) if isinstance(outcome, Found) else outcome


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
    urls: dict[str, str] = {}
    pending, auth, outcomes = _first_calls(source, works, config)
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        replies = await asyncio.gather(*(caller.call(source, r) for r in pending))
        at = clock()
        follow_ups: list[UpstreamRequest] = []
        for request, reply in zip(pending, replies, strict=True):
            result.calls += 1
            if isinstance(reply, UpstreamResponse):
                ids, url = tuple(w.work_id for w in request.works), public_url(reply.url)
                result.raw.append(
                    RawResponse(source.name, at, url, reply.status, reply.text(), ids)
                )
                for w in request.works:
                    urls.setdefault(w.work_id, url)
            per_work, more = outcome_of(source, request, reply)
            for work_id, outcome in per_work.items():
                if request.optional and isinstance(outcome, Failed):
                    continue  # an event list that failed: the counts already fetched stand
                outcomes[work_id] = merge(outcomes.get(work_id), outcome)
            follow_ups.extend(_authorized(r, auth) for r in more)
        pending = follow_ups
    at = clock()
    for work in works:
        final = _final(source, outcomes.get(work.work_id), bool(pending))
        result.observations.append(
            observation(source, work, final, at, urls.get(work.work_id, base_url or None))
        )
    return result
