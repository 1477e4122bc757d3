"""One call's answer read as one outcome per work (the plug-in's parse, or the error an HTTP
status or a malformed payload means), outcomes merged across calls, and a work's final outcome
as the observation the fetcher publishes (checked against the observation schema)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.core.events import FetchError, Observation, Status
from services.core.provenance import CallRef
from services.core.schema_check import SchemaViolation, check
from services.core.text import ERROR_LIMIT, bounded
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    NotFound,
    Outcome,
    PayloadError,
    Source,
    UpstreamRequest,
    UpstreamResponse,
)

NOT_ABOUT_AN_ID = frozenset({401, 403, 404, 407, 408, 429})


def classify(status: int) -> FetchError:
    """The error an unexpected HTTP status means; 4xx other than 408/429 will not heal by retrying
    soon, but a later scheduled refresh tries again."""
    if status == 429:
        return FetchError("rate_limited", "HTTP 429 Too Many Requests", True, status)
    if status in (401, 403):
        return FetchError("http", f"HTTP {status}: credentials refused", False, status)
    retryable = status >= 500 or status == 408
    return FetchError("http", f"HTTP {status} from upstream", retryable, status)


def refused_for_an_id(status: int) -> bool:
    """Whether an HTTP status may mean the upstream refused one of the call's identifiers."""
    return 400 <= status < 500 and status not in NOT_ABOUT_AN_ID


def rejected(status: int) -> FetchError:
    """The error of a work whose identifier the upstream refuses when asked about it alone."""
    return FetchError(
        "rejected", f"HTTP {status} from upstream for this identifier alone", False, status
    )


def refusal(source: Source, request: UpstreamRequest, reply: UpstreamResponse) -> FetchError:
    """The error a non-2xx, non-404 answer gives each work of the call: the call refused as
    such (the plug-in reads it in the error body), an identifier refused alone, or `classify`'s
    reading of the status (a several-work 4xx is then bisected by the caller)."""
    if refused_for_an_id(reply.status):
        why = source.refused_call(request, reply)
        if why is not None:
            message = f"HTTP {reply.status}: {source.name} refuses the call: {why}"
            return FetchError("refused_call", bounded(message, ERROR_LIMIT), False, reply.status)
        if len(request.works) == 1:
            return rejected(reply.status)
    return classify(reply.status)


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
        return {w.work_id: Failed(refusal(source, request, reply)) for w in request.works}, ()
    try:
        parsed = source.parse(request, reply)
    except PayloadError as exc:
        err = FetchError("parse", f"malformed {source.name} response: {exc}", True, reply.status)
        return {w.work_id: Failed(err) for w in request.works}, ()
    return dict(parsed.outcomes), parsed.follow_ups


def observation(
    source: Source,
    work: WorkRef,
    outcome: Outcome | None,
    at: datetime,
    url: str | None,
    calls: Sequence[CallRef] = (),
) -> Observation:
    """The observation a work's final outcome becomes, with the calls it came from."""
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
            calls=tuple(calls),
        )
    if isinstance(outcome, NotFound):
        return Observation(
            work.work_id,
            source.name,
            at,
            Status.NOT_FOUND,
            metrics=source.zero_metrics(),
            request_url=url,
            calls=tuple(calls),
        )
    error = (
        outcome.error
        if outcome
        else FetchError("parse", f"{source.name} response did not mention the work")
    )
    return Observation(
        work.work_id,
        source.name,
        at,
        Status.ERROR,
        error=error,
        request_url=url,
        calls=tuple(calls),
    )


def well_formed(obs: Observation) -> tuple[Observation, dict[str, Any]]:
    """`obs` with its event form if the observation schema accepts it; else (a plug-in let a
    malformed answer through) a retryable parse error for its work, so one bad answer can
    neither be published nor stop the fetcher."""
    event = obs.to_dict()
    try:
        return obs, dict(check("observation", event))
    except SchemaViolation as exc:
        error = FetchError("parse", f"malformed {obs.source} answer: {exc}", True)
        failed = Observation(
            obs.work_id,
            obs.source,
            obs.retrieved_at,
            Status.ERROR,
            error=error,
            request_url=obs.request_url,
            calls=obs.calls,
        )
        return failed, dict(check("observation", failed.to_dict()))
