"""Registering works: store them (one work per DOI whatever its spelling) together with the due
entries that get them refreshed, then announce new ones on `alm.works`.

Registration and scheduling are one write (DESIGN.md invariant 1): the store writes each work
with the entries `Scheduling` says it is owed (`WorkStore.register(works, schedule)`), so no
work waits on a bus event being consumed to be refreshed, and registering a known work again
restores an entry it lacks. Bulk registration (a file, a publisher's catalogue: `intake`)
writes each work with one intake row instead of an entry per source, and the scheduler writes
the entries of the intake's works in bulk (`Scheduler.intake`): a few rows a work at
registration, the entries at the scheduler's pace, and never a work with neither. Used by
the CLI, the API, imports and the scheduler (which also reconciles works registered before
this rule, or by a process that crashed halfway).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from services.core.events import SCHEMA_VERSION, TOPIC_WORKS
from services.core.identifiers import (
    MAX_INPUT_LENGTH,
    Identifier,
    InvalidIdentifier,
    parse_identifier,
)
from services.core.ports import Bus, DueEntry, Registration, WorkStore
from services.core.schema_check import SchemaViolation, check
from services.core.staleness import Policy, next_refresh
from services.core.text import shown
from services.core.timeutil import to_iso
from services.core.works import Work, WorkRef
from services.fetchers.base import Source

CHUNK = 5000  # works per store write (one SQLite transaction; bounded memory for big imports)
# Works per store write in bulk (intake rows, a few per work) into a store whose `bulk_writes`
# says so (SQLite: a commit writes every page the chunk touched, and new works land all over
# the identifier indexes, so 5,000 works a commit rewrote most of them each time, half the
# time of a 300,000-work import). Not Cassandra: its intake chunk is taken whole by a
# scheduler tick, which takes about 5,000 works a tick.
BULK_CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class Scheduling:
    """What a registered work is owed: an entry from every enabled source that can look it up."""

    sources: tuple[Source, ...]
    policy: Policy
    # Which sources fetch a work that has these kinds of id (DOI, PMID, PMCID), for the
    # sources that decide by the kinds alone (Source.fetchable's own rule): registration asks
    # for every work, and an import brings hundreds of thousands.
    _by_kinds: dict[tuple[bool, bool, bool], tuple[str, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def first_due(self, work: Work, now: datetime) -> dict[str, DueEntry]:
        """The entries of a work never refreshed: due `now` (or on its publication date, if
        that is still to come) from each source that can fetch it, by source name."""
        at = next_refresh(work.issued, None, now, self.policy, 0.0)  # the same for every source
        entry = DueEntry(work.work_id, at)  # one for all (frozen): an import makes millions
        return dict.fromkeys(self.fetching(work), entry)

    def fetching(self, work: Work) -> tuple[str, ...]:
        """The names of the sources that can look `work` up."""
        kinds = (bool(work.doi), bool(work.pmid), bool(work.pmcid))
        names = self._by_kinds.get(kinds)
        if names is None:
            ref = WorkRef.of(work)
            names = tuple(s.name for s in self.sources if s.fetchable(ref))
            if all(type(s).fetchable is Source.fetchable for s in self.sources):
                self._by_kinds[kinds] = names
        return names

    def per_source(self, works: Iterable[Work], now: datetime) -> dict[str, list[DueEntry]]:
        """`first_due` of many works, grouped by source (the reconcile's and a re-announced
        work's writes)."""
        out: dict[str, list[DueEntry]] = {}
        for work in works:
            for source, entry in self.first_due(work, now).items():
                out.setdefault(source, []).append(entry)
        return out


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """What happened to one submitted identifier."""

    input: str
    work_id: str | None = None
    created: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (the API's per-id result)."""
        if self.error:
            return {"input": self.input, "status": "invalid", "error": self.error}
        return {
            "input": self.input,
            "work_id": self.work_id,
            "status": "created" if self.created else "exists",
        }


def work_event(work: Work, event: str, at: datetime) -> dict[str, object]:
    """The `alm.works` event for `work`."""
    return _event(work, event, to_iso(at))


def _event(work: Work, event: str, at: str) -> dict[str, object]:
    """`work_event` with its time already written (one `to_iso` for a whole call's works)."""
    body = {
        "schema_version": SCHEMA_VERSION,
        "work_id": work.work_id,
        "event": event,
        "at": at,
        "work": work.to_dict(),
    }
    check("work", body)
    return body


async def register(
    raw_ids: Sequence[str], store: WorkStore, bus: Bus, now: datetime, scheduling: Scheduling
) -> list[RegisterResult]:
    """Register every valid id (duplicates collapse to one work) with its due entries, and
    announce the new works; invalid ones get an error naming them (shown bounded)."""
    parsed: list[tuple[str, Identifier | None, str | None]] = []
    for raw in raw_ids:
        try:
            parsed.append((raw, parse_identifier(raw), None))
        except InvalidIdentifier as exc:
            parsed.append((shown(raw, MAX_INPUT_LENGTH), None, str(exc)))
    return await register_parsed(parsed, store, bus, now, scheduling)


Checked = tuple[int, Work, dict[str, object]]  # (input's index, work, its checked event)
_PENDING = RegisterResult("")  # an input's result until its chunk is written


def _checker(
    item: Callable[[int], tuple[str, Work | None]],
    results: list[RegisterResult],
    now: datetime,
) -> Callable[[int, int], list[Checked]]:
    """What checks the inputs `start:end` (`item(index)`: the input and its work, None for an
    input refused already, whose result is in `results`): each work's `alm.works` event is
    built and checked before its chunk is written, so an id is either refused up front or
    registered and announced."""
    at = to_iso(now)

    def check(start: int, end: int) -> list[Checked]:
        valid: list[Checked] = []
        for index in range(start, end):
            raw, work = item(index)
            if work is None:
                continue
            try:
                event = _event(work, "registered", at)
            except SchemaViolation as exc:
                results[index] = RegisterResult(shown(raw, MAX_INPUT_LENGTH), error=str(exc))
                continue
            valid.append((index, work, event))
        return valid

    return check


def _parsed_work(
    parsed: Sequence[tuple[str, Identifier | None, str | None]],
) -> Callable[[int], tuple[str, Work | None]]:
    def item(index: int) -> tuple[str, Work | None]:
        raw, ident, _ = parsed[index]
        return raw, None if ident is None else Work.from_identifier(ident)

    return item


async def register_parsed(
    parsed: Sequence[tuple[str, Identifier | None, str | None]],
    store: WorkStore,
    bus: Bus,
    now: datetime,
    scheduling: Scheduling,
    intake: bool = False,
    progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[RegisterResult]:
    """`register` of inputs already parsed: (input, identifier, None) or (input, None, error).

    Written `CHUNK` inputs at a time (`BULK_CHUNK` in bulk into SQLite: `_chunk`), each chunk
    checked, then written with its due entries (or, with `intake`, its intake rows: see
    `WorkStore.register`) in one store write, then announced: a crash leaves whole chunks
    registered and scheduled (or queued for the scheduler), the rest unregistered (`_write`).
    `progress` is told the inputs of each chunk once it is announced; `stop`, once set, ends
    the call before the next chunk (the results are then those of the chunks written).
    """
    # A refused input's result now; the others' once their chunk is written (`_announce`).
    results = [
        RegisterResult(raw, error=error) if ident is None else _PENDING
        for raw, ident, error in parsed
    ]
    inputs = [raw for raw, _, _ in parsed]
    check = _checker(_parsed_work(parsed), results, now)
    return await _write(inputs, results, check, store, bus, now, scheduling, intake, progress, stop)


async def register_works(
    inputs: Sequence[tuple[str, Work]],
    store: WorkStore,
    bus: Bus,
    now: datetime,
    scheduling: Scheduling,
    intake: bool = False,
) -> list[RegisterResult]:
    """`register` of works that come with their metadata (a publisher's catalogue): each
    (input, work), the work built from a normalized identifier. A work the `alm.works` schema
    refuses gets its error; the others are registered like `register_parsed`'s, merged into a
    known work by any of their ids (which keeps the metadata it has: `update_metadata`
    replaces it)."""
    results = [RegisterResult(raw) for raw, _ in inputs]
    check = _checker(inputs.__getitem__, results, now)
    raws = [raw for raw, _ in inputs]
    return await _write(raws, results, check, store, bus, now, scheduling, intake)


async def _write(
    inputs: Sequence[str],
    results: list[RegisterResult],
    check: Callable[[int, int], list[Checked]],
    store: WorkStore,
    bus: Bus,
    now: datetime,
    scheduling: Scheduling,
    intake: bool,
    progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[RegisterResult]:
    """Check and write the inputs `_chunk` at a time, each chunk's works with their due
    entries (or intake rows) in one store write, then announce the new ones; `results` (by
    input) filled in, up to the last chunk written.

    Pipelined on the store's thread and this one: a chunk is checked while the one before is
    written, and the one before is announced while it is written. A chunk's write starts once
    the one before is written (a failed write stops the call: nothing after it is written);
    a failure to announce leaves the chunk then being written registered (and scheduled, or
    in the intake) but not announced, as a crash there does. A work registered as it was
    given keeps the event it was checked with."""
    schedule = partial(scheduling.first_due, now=now)
    size = _chunk(store, intake)
    upto = 0  # inputs written and announced
    flight: tuple[int, list[Checked], asyncio.Future[list[Registration]] | None] | None = None
    try:
        for start in range(0, len(inputs), size):
            if stop is not None and stop.is_set():
                break
            chunk = check(start, min(start + size, len(inputs)))
            before = flight
            written = await before[2] if before is not None and before[2] is not None else []
            write = (
                asyncio.ensure_future(
                    store.register([w for _, w, _ in chunk], schedule, intake=intake)
                )
                if chunk
                else None
            )
            flight = (min(start + size, len(inputs)), chunk, write)
            if before is not None:
                upto = await _announce(inputs, results, before, written, bus, now, progress, upto)
        if flight is not None:
            written = await flight[2] if flight[2] is not None else []
            upto = await _announce(inputs, results, flight, written, bus, now, progress, upto)
            flight = None
    except Exception:
        if flight is not None and flight[2] is not None and not flight[2].done():
            with contextlib.suppress(Exception):
                await flight[2]  # the write in flight ends (committed or not) before the error
        raise
    return results[:upto]


def _chunk(store: WorkStore, intake: bool) -> int:
    """Inputs a store write takes: `BULK_CHUNK` in bulk into a store with `bulk_writes`."""
    return BULK_CHUNK if intake and getattr(store, "bulk_writes", False) else CHUNK


async def _announce(
    inputs: Sequence[str],
    results: list[RegisterResult],
    flight: tuple[int, list[Checked], object],
    registrations: Sequence[Registration],
    bus: Bus,
    now: datetime,
    progress: Callable[[int], None] | None,
    upto: int,
) -> int:
    """Fill in the results of a written chunk and announce its new works; the inputs done."""
    end, chunk, _ = flight
    events = []
    seen: set[str] = set()
    for (index, work, checked), reg in zip(chunk, registrations, strict=True):
        work_id = reg.work.work_id
        created = reg.created and work_id not in seen
        seen.add(work_id)
        results[index] = RegisterResult(inputs[index], work_id, created)
        if created:
            event = checked if reg.work is work else work_event(reg.work, "registered", now)
            events.append((work_id, event))
    if chunk:
        await bus.publish(TOPIC_WORKS, events)
    if progress is not None:
        progress(end - upto)
    return end


async def update_metadata(works: Sequence[Work], store: WorkStore, bus: Bus, now: datetime) -> None:
    """Store new metadata of known works (their identifiers unchanged) and announce each as
    `updated` on `alm.works`; every event is checked before anything is written."""
    events = [(w.work_id, work_event(w, "updated", now)) for w in works]
    if not events:
        return
    await store.update_works(works)
    await bus.publish(TOPIC_WORKS, events)
