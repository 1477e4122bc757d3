"""Fetch a batch of works from one source: run the plug-in's calls (and follow-ups), turn every
response into one outcome per work, and those into observations. No bus, no store.

A call for several works that the upstream refuses with a 4xx (other than 401/403/404/407/408/
429, which are about credentials, existence, timing or pacing) is usually refused because of one
of its identifiers: the works of such calls are fetched again in halves, and the halves of
halves, until each refusing identifier is alone in its call. The other works get their numbers;
an identifier refused on its own gets a `rejected` error: not retried, not dead-lettered, not a
failure of the source (services/core/health.py does not count it).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.core.events import FetchError, Observation, Status
from services.core.ports import RawResponse
from services.core.provenance import CallRef, Redactor, body_digest, call_id, ref_of
from services.core.schema_check import SchemaViolation, check
from services.core.text import ERROR_LIMIT, bounded
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
NOT_ABOUT_AN_ID = frozenset({401, 403, 404, 407, 408, 429})
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "requestor_id",
        "customer_id",
        "access_token",
        "token",
        "client_secret",
        "password",
    }
)
# extra settings (ALM_<SOURCE>__<KEY>) whose values are masked wherever they appear in a kept
# URL or body: a key naming one of these (client_secret, requestor_id, customer_id, ...)
SECRET_EXTRAS = ("secret", "password", "token", "key", "requestor_id", "customer_id")


class Caller(Protocol):
    """Sends one upstream request (the HTTP adapter, or a fake in unit tests)."""

    async def call(
        self, source: Source, request: UpstreamRequest
    ) -> UpstreamResponse | FetchError: ...


@dataclass(slots=True)
class BatchResult:
    """Observations (one per fetched work), the raw responses they came from, and the calls'
    latencies in seconds (inf for a call that timed out) with how many got no answer."""

    observations: list[Observation] = field(default_factory=list)
    raw: list[RawResponse] = field(default_factory=list)
    calls: int = 0
    latencies: list[float] = field(default_factory=list)
    unanswered: int = 0


def public_url(url: str) -> str:
    """`url` with credential query parameters and a user:password part masked (it is
    stored and published)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1])
    if not parts.query:
        return urlunsplit(parts)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        return urlunsplit(parts)
    masked = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(masked, safe="/:|,*")))


def secrets_of(config: SourceConfig) -> Iterator[str]:
    """The configured values a kept call must never show: the API key (and each half of an
    `id:secret` pair) and every extra setting named like a credential."""
    if config.api_key:
        yield config.api_key
        yield from config.api_key.split(":", 1)
    for name, value in config.extra.items():
        if any(word in name.lower() for word in SECRET_EXTRAS):
            yield value


def kept(
    source: Source,
    request: UpstreamRequest,
    reply: UpstreamResponse,
    at: datetime,
    redact: Redactor,
) -> RawResponse:
    """The raw response an answered call is kept as: URL masked, secrets redacted, with the
    digest of the body as received and the call's stable id."""
    url, url_redacted = redact(public_url(reply.url))
    body, body_redacted = redact(reply.text())
    digest = body_digest(reply.body)
    ids = tuple(w.work_id for w in request.works)
    asked = repr((request.host, request.path, request.params, request.form, request.json_body))
    raw_id = call_id(source.name, request.method, url, at, ids, digest, asked)
    return RawResponse(
        source.name,
        at,
        url,
        reply.status,
        body,
        ids,
        raw_id=raw_id,
        digest=digest,
        method=request.method,
        redacted=url_redacted or body_redacted,
    )


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


@dataclass(slots=True)
class _Rounds:
    """What the calls of one batch gave: outcomes, where each work was asked, and the works of
    several-work calls the upstream refused with a 4xx (to ask again in halves)."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    calls: dict[str, list[CallRef]] = field(default_factory=dict)
    suspects: set[str] = field(default_factory=set)
    cut_short: bool = False


async def _rounds(
    source: Source,
    works: Sequence[WorkRef],
    config: SourceConfig,
    caller: Caller,
    clock: Callable[[], datetime],
    result: BatchResult,
) -> _Rounds:
    """Run the source's first calls and their follow-ups (at most MAX_ROUNDS rounds)."""
    pending, auth, outcomes = _first_calls(source, works, config)
    redact = Redactor(secrets_of(config))
    done = _Rounds(outcomes)
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        replies = await asyncio.gather(*(caller.call(source, r) for r in pending))
        at = clock()
        follow_ups: list[UpstreamRequest] = []
        for request, reply in zip(pending, replies, strict=True):
            result.calls += 1
            if isinstance(reply, UpstreamResponse):
                raw = kept(source, request, reply, at, redact)
                result.raw.append(raw)
                result.latencies.append(reply.elapsed)
                for w in request.works:
                    done.urls.setdefault(w.work_id, raw.url)
                    done.calls.setdefault(w.work_id, []).append(ref_of(raw))
            else:
                result.unanswered += 1
                if reply.kind == "timeout":
                    result.latencies.append(math.inf)
            per_work, more = outcome_of(source, request, reply)
            if _refused_an_id(request, reply, per_work):
                done.suspects.update(w.work_id for w in request.works)
            for work_id, outcome in per_work.items():
                if request.optional and isinstance(outcome, Failed):
                    continue  # an event list that failed: the counts already fetched stand
                done.outcomes[work_id] = merge(done.outcomes.get(work_id), outcome)
            follow_ups.extend(_authorized(r, auth) for r in more)
        pending = follow_ups
    done.cut_short = bool(pending)
    return done


def _refused_an_id(
    request: UpstreamRequest, reply: UpstreamResponse | FetchError, per_work: dict[str, Outcome]
) -> bool:
    """Whether a several-work call was refused for one of its identifiers (not as a call: then
    asking again in halves would only repeat the refusal), so its works are asked again."""
    if not isinstance(reply, UpstreamResponse) or request.optional or len(request.works) < 2:
        return False
    if not refused_for_an_id(reply.status):
        return False
    return not any(
        isinstance(o, Failed) and o.error.kind == "refused_call" for o in per_work.values()
    )


async def fetch_batch(
    source: Source,
    works: Sequence[WorkRef],
    config: SourceConfig,
    caller: Caller,
    clock: Callable[[], datetime],
) -> BatchResult:
    """Fetch `works` (at most the source's batch size) and return one observation per work;
    works of a call refused with a 4xx are fetched again in halves (see the module's doc)."""
    result = BatchResult()
    done = await _rounds(source, works, config, caller, clock, result)
    again = [w for w in works if w.work_id in done.suspects]
    redone: dict[str, Observation] = {}
    if again:
        half = (len(again) + 1) // 2
        parts = await asyncio.gather(
            *(
                fetch_batch(source, part, config, caller, clock)
                for part in (again[:half], again[half:])
            )
        )
        for part in parts:
            result.raw.extend(part.raw)
            result.calls += part.calls
            result.latencies.extend(part.latencies)
            result.unanswered += part.unanswered
            redone.update((o.work_id, o) for o in part.observations)
    at = clock()
    for work in works:
        if work.work_id in redone:
            result.observations.append(redone[work.work_id])
            continue
        final = _final(source, done.outcomes.get(work.work_id), done.cut_short)
        url = done.urls.get(work.work_id)
        calls = done.calls.get(work.work_id, ())
        result.observations.append(observation(source, work, final, at, url, calls))
    return result
