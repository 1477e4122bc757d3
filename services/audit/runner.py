"""The audit: choose works (a uniform sample, or named ones), re-fetch each from every source
that stored numbers for it, through the fetchers' own path (`fetch_batch` with the configured
HTTP caller: rate limits, retries, the stub with `--offline`), and compare with what is stored.

Nothing is written: an audit only reads the store and calls the upstreams. Sampling pages
through the works in id order (keyset pages of PAGE) into a reservoir, so memory holds the
sample and one page whatever the number of works; it reads every work id once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from services.core.aggregation import SourceState
from services.core.audit import (
    AuditReport,
    Comparison,
    Reservoir,
    Verdict,
    compare,
    stored_of,
)
from services.core.identifiers import Identifier
from services.core.ports import Store
from services.core.sources import SourceConfig
from services.core.works import Work, WorkRef
from services.fetchers.base import Source
from services.fetchers.engine import Caller, fetch_batch

PAGE = 1000  # works read at a time while sampling


class Advancing(Protocol):
    """Where the audit reports how many works it has done (the CLI's progress bar)."""

    def advance(self, n: int) -> None: ...


async def sample_works(
    store: Store, size: int, rng: random.Random, progress: Advancing | None = None
) -> list[Work]:
    """A uniform sample of `size` registered works (all of them if there are fewer)."""
    reservoir: Reservoir[Work] = Reservoir(size, rng)
    after: str | None = None
    while True:
        page = await store.works_after(after, PAGE)
        reservoir.offer(page)
        if progress is not None:
            progress.advance(len(page))
        if len(page) < PAGE:
            return sorted(reservoir.items, key=lambda w: w.work_id)
        after = page[-1].work_id


async def named_works(
    store: Store, idents: Sequence[tuple[str, Identifier]]
) -> tuple[list[Work], list[str]]:
    """The registered works among (as given, parsed) identifiers, and the ones not registered."""
    found: dict[str, Work] = {}
    missing = []
    for raw, ident in idents:
        work = await store.find_work(ident)
        if work is None:
            missing.append(raw)
        else:
            found.setdefault(work.work_id, work)
    return list(found.values()), missing


async def audit(
    works: Sequence[Work],
    sources: Sequence[Source],
    configs: Callable[[str], SourceConfig],
    store: Store,
    caller: Caller,
    clock: Callable[[], datetime],
    progress: Advancing | None = None,
) -> AuditReport:
    """Re-fetch `works` from each of `sources` that stored numbers for them and compare; the
    sources run concurrently (each paced by the caller), a source's batches one after the
    other."""
    report = AuditReport(len(works), clock())
    states = await store.states_for([w.work_id for w in works])
    statuses = await store.source_statuses()
    runs = []
    for source in sources:
        status = statuses.get(source.name)
        config = configs(source.name)
        if status is not None and status.paused:
            report.skipped[source.name] = f"paused: {status.reason or ''}".strip()
        elif (why := source.missing_config(config)) is not None:
            report.skipped[source.name] = why
        else:
            runs.append(
                _audit_source(source, works, states, config, caller, clock, report, progress)
            )
    await asyncio.gather(*runs)
    report.comparisons.sort(key=lambda c: (c.work_id, c.source))
    report.at = clock()
    return report


async def _audit_source(
    source: Source,
    works: Sequence[Work],
    states: Mapping[str, Sequence[SourceState]],
    config: SourceConfig,
    caller: Caller,
    clock: Callable[[], datetime],
    report: AuditReport,
    progress: Advancing | None,
) -> None:
    """One source: the works it stored numbers for, re-fetched in its batch size (a work
    whose every refresh from it failed has nothing to compare: not stored)."""
    stored = stored_of(states, source.name)
    refs = [WorkRef.of(w) for w in works if w.work_id in stored]
    refs = [r for r in refs if source.fetchable(r)]
    never = [r for r in refs if stored[r.work_id].retrieved_at is None]
    report.comparisons += [Comparison(r.work_id, source.name, Verdict.NOT_STORED) for r in never]
    refs = [r for r in refs if stored[r.work_id].retrieved_at is not None]
    config = replace(config, today=clock().date())
    for start in range(0, len(refs), source.batch_size):
        batch = refs[start : start + source.batch_size]
        result = await fetch_batch(source, batch, config, caller, clock)
        report.comparisons += [compare(stored.get(o.work_id), o) for o in result.observations]
        if progress is not None:
            progress.advance(len(batch))
