"""Fetch a batch of works from one source: run the plug-in's calls (and follow-ups), turn every
response into one outcome per work (services/fetchers/outcomes.py), and those into observations;
answered calls are kept as raw responses (services/fetchers/raw.py). No bus, no store.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from services.core.events import FetchError, Observation
from services.core.provenance import CallRef, RawResponse, Redactor, ref_of
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    ConfigError,
    Failed,
    Found,
    Outcome,
    Source,
    UpstreamRequest,
    UpstreamResponse,
)
from services.fetchers.outcomes import merge, observation, outcome_of, refused_for_an_id
from services.fetchers.raw import kept, secrets_of

MAX_ROUNDS = 20  # follow-up rounds (paging, second steps) before a batch is cut short


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
