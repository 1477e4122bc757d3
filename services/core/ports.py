"""The ports the services talk through: the event bus and the store's narrow parts.

Adapters implement these Protocols (in-process and Kafka for the bus; SQLite and Cassandra for
the store); the core and the service logic import only these. The store is one adapter
(`Store`, what bootstrap builds) made of narrow ports, and each service is typed against the
ones it uses:

- `WorkStore`: the works registry and its identifier index (registration, the API, the notifier);
- `MetricState`: the states the aggregator reads and writes; `MetricStore` adds the reads of
  totals, history and events the API and the audit make;
- `RawResponses`: the upstream calls kept for a while (fetchers write, the API reads; the
  lookup by the refs a state holds is `services.core.provenance.CallArchive`);
- `DueIndex`: when each (work, source) is next due (the scheduler, the aggregator's writes);
- `SourceControl`: paused and running sources (scheduler, fetchers, checks);
- `Lifecycle`: migrations and closing, for the entry points.

A registered work always ends with a due entry for every enabled source that can fetch it
(DESIGN.md, invariant 1): `WorkStore.register(works, schedule)` writes the works with their
entries, `DueIndex.add_missing_due` repairs a gap without touching what is there, and
`WorkStore.works_after` lets a reconcile page through every work in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from services.core.aggregation import Aggregate, HistoryPoint, SourceState
from services.core.events import SourceEvent
from services.core.failed_refreshes import FailedRefreshes
from services.core.health import SourceStatus
from services.core.identifiers import Identifier
from services.core.provenance import RawResponse
from services.core.works import Work


@dataclass(frozen=True, slots=True)
class Message:
    """One record read from the bus."""

    topic: str
    key: str
    value: Mapping[str, Any]
    partition: int = 0
    offset: int = 0


class Consumer(Protocol):
    """A consumer-group member: poll a batch, process it, then commit (at-least-once)."""

    async def poll(self, max_records: int, timeout: float) -> list[Message]:
        """Events of whole records, up to `max_records` unless one record holds more."""

    async def commit(self) -> None: ...

    async def rewind(self) -> None:
        """Go back to the last committed offsets: what was polled since is polled again (a
        failed step is redone, never skipped). Never fails: a rewind that cannot be done now
        is done before the next poll, and nothing is committed until it is."""

    async def close(self) -> None: ...


class Bus(Protocol):
    """Publish keyed JSON events to topics and consume them in groups."""

    async def publish(
        self, topic: str, items: Sequence[tuple[str, Mapping[str, Any]]], *, pack: int = 0
    ) -> None:
        """Append keyed events; with `pack` > 0, events bound for one partition share records
        of up to `pack` events (consumers still see one Message per event)."""

    def consumer(self, topics: Sequence[str], group: str) -> Consumer: ...

    async def close(self) -> None: ...


@runtime_checkable
class QueueDepth(Protocol):
    """A bus that tells how many events of a topic a consumer group has not committed yet:
    the scheduler's backpressure on each source's refresh topic."""

    async def waiting(self, queues: Mapping[str, tuple[str, int]]) -> dict[str, int]:
        """For each topic -> (group, up_to): the events of the topic the group has not
        committed, counted up to `up_to`."""
        ...


@dataclass(frozen=True, slots=True)
class DueEntry:
    """A work due from a source at `at`; `attempt` counts failed tries since the last success.

    `leased`: the scheduler handed the work out in a refresh request and `at` is when that lease
    runs out (the work is due again then if nothing answered). A lease is still an entry: the
    work stays scheduled, it is only not handed out twice while in flight.
    """

    work_id: str
    at: datetime
    attempt: int = 1
    leased: bool = False


@dataclass(slots=True)
class Handoff:
    """What a read saw that the write following it needs, held by the caller between them.

    A store that keeps each (work, source)'s due position apart from its due entries
    (Cassandra) must know where the previous entry is to replace it. `states` and `due` record
    in `positions` the positions they read (keyed by (work id, source); None: no entry), and
    `due` records in `scans` where its scans may continue once what it handed out is leased;
    the caller passes the same Handoff to the write that follows (`write_aggregates` after
    `states`, the lease's `set_due` after `due`), which takes back what it uses. The content is
    the store's own (opaque to the caller); a write without a Handoff, or for a key it lacks,
    reads the position itself. A store that needs none (SQLite) ignores it. Use one Handoff
    per read-then-write, not across concurrent ones.
    """

    positions: dict[tuple[str, str], Any] = field(default_factory=dict)
    scans: dict[Any, Any] = field(default_factory=dict)


Schedule = Callable[[Work], Mapping[str, DueEntry]]
"""The due entries a registered work is owed, by source (`services/registration.py` builds it
from the enabled sources and the staleness policy). Pure: the store calls it with each work as
registration leaves it (merged with what was known), inside its write."""


IntakePlan = Callable[[Sequence[Work]], Mapping[str, Sequence[DueEntry]]]
"""The first due entries of works taken from the intake, by source (the scheduler's
`Scheduling.per_source` at the time it takes them)."""


@dataclass(frozen=True, slots=True)
class Registration:
    """What registering one identifier did: `created` false when the work was known."""

    work: Work
    created: bool


class WorkStore(Protocol):
    """The works registry with its identifier index."""

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None, intake: bool = False
    ) -> list[Registration]:
        """Register works, one result per work in order; a work already known by any of its
        ids is merged into the known one, not duplicated (`created` false).

        With `intake` (bulk registration: a file, a publisher's catalogue), `schedule` is not
        used: every registered work, new or known, gets a row in the scheduler's intake
        instead, written before any identifier leads to the work (SQLite: in the same
        transaction), and the scheduler gives the works of the intake their missing entries
        in bulk (`DueIndex.take_intake`). A work is thus never registered without either its
        entries or its intake row, and registration writes a few rows a work, not one per
        source.

        With `schedule`, registration and scheduling are one: every registered work, new or
        known, also gets the entries `schedule(work)` names for the sources it has no entry
        from (an existing entry or lease is left as it is, so registering a known work again
        repairs a missing entry and changes nothing else). A store with transactions (SQLite)
        writes the works and their entries in one; one without (Cassandra) writes the entries
        before returning, so a crash leaves no work acknowledged without its entries, at worst
        a known work that registering again or the scheduler's reconcile completes.
        """
        ...

    async def update_works(self, works: Sequence[Work]) -> None:
        """Store the metadata of known works whose identifiers are unchanged (no id claims)."""
        ...

    async def get_work(self, work_id: str) -> Work | None: ...

    async def get_works(self, work_ids: Sequence[str]) -> dict[str, Work]: ...

    async def find_work(self, ident: Identifier) -> Work | None: ...

    async def find_works(self, idents: Sequence[Identifier]) -> dict[Identifier, Work]:
        """The works known by `idents` (any of their DOI, PMID, PMCID), by identifier; an
        identifier no work has is absent. One batched read, not a lookup per identifier."""
        ...

    async def list_works(self, offset: int, limit: int) -> list[Work]: ...

    async def works_newest(self, offset: int, limit: int) -> list[Work]:
        """A page of works by publication date, newest first, undated works last, works of
        one date (and the undated ones) by work id: ALM v5's listing without `ids`. Read from
        an index on the date, not by sorting every work (offsets: O(offset + limit))."""
        ...

    async def works_after(self, after: str | None, limit: int) -> list[Work]:
        """Up to `limit` works whose ids sort after `after` (from the first if None), in id
        order: a keyset page, as cheap at the end of the registry as at its start (reconcile
        passes page through every work with it)."""
        ...

    async def count_works(self) -> int: ...


class WorkSearch(Protocol):
    """Finding works by the words of their titles and publishers' names (services/core/search.py
    folds them), a keyset page at a time."""

    async def search_works(
        self, words: Sequence[str], after: str | None, limit: int, publisher_id: str | None = None
    ) -> tuple[list[Work], str | None]:
        """Up to `limit` works having every one of `words` (folded by `search.words`), after the
        cursor `after` (None: from the first), of the publisher `publisher_id` if given; and the
        cursor of the next page (None at the end). The order is the store's own and stable; the
        cursor is opaque to callers. Each page reads an index, never skipping an offset."""
        ...


class MetricState(Protocol):
    """The per-source states the aggregator reads, folds into and writes back."""

    async def states(
        self, keys: Sequence[tuple[str, str]], handoff: Handoff | None = None
    ) -> dict[tuple[str, str], SourceState]:
        """The stored state of each (work id, source) that has one; with `handoff`, also what
        `write_aggregates` needs to store their next due entries without reading again."""
        ...

    async def write_aggregates(
        self,
        items: Sequence[Aggregate],
        due: Mapping[str, Sequence[DueEntry]] | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        """Persist what aggregation produced: states, history points, new events (idempotent);
        with `due` (per source), also when each work is next due, as `set_due` would, stored
        with the states. `handoff`: the one `states` filled for these keys (see Handoff)."""
        ...


class MetricStore(MetricState, Protocol):
    """Per-source totals, history and events, as the API and the audit read them."""

    async def states_for(self, work_ids: Sequence[str]) -> dict[str, list[SourceState]]: ...

    async def history(self, work_id: str, source: str | None) -> list[HistoryPoint]: ...

    async def history_of(self, work_id: str, sources: Sequence[str]) -> list[HistoryPoint]:
        """The daily snapshots of a work from each of `sources` in one read (no read of which
        sources the work has), as `history(work_id, None)` orders them: by source, oldest first."""
        ...

    async def events(self, work_id: str, source: str) -> list[SourceEvent]: ...

    async def events_by_source(
        self, work_id: str, sources: Sequence[str]
    ) -> dict[str, list[SourceEvent]]:
        """The events of a work from each of `sources` in one read: per source what
        `events(work_id, source)` gives (an empty list for a source without events)."""
        ...

    async def source_summary(self) -> dict[str, dict[str, int]]:
        """Per source: `works` with a state and `errors` (works whose last attempt failed), from
        summary rows the aggregator's writes keep (services/core/summary.py): O(sources)
        rows read, never one a state."""
        ...

    async def top_works(
        self, source: str, metric: str, limit: int, after: tuple[int, str] | None = None
    ) -> list[tuple[str, int]]:
        """The works with the highest value of `metric` from `source` (the leaderboard), as
        (work id, value), highest first, ties by work id; with `after` (the last (value, work
        id) of the previous page), the page after it: a keyset page, read from an index in
        board order, as cheap deep in the board as at its top (no offset)."""
        ...


class RawResponses(Protocol):
    """The upstream calls kept for a while (the fetchers write them; the API shows them)."""

    async def add_raw_responses(self, raws: Sequence[RawResponse]) -> None:
        """Keep upstream responses for a while (expiring after the configured TTL)."""
        ...

    async def raw_responses(self, source: str, work_id: str, limit: int) -> list[RawResponse]:
        """The latest kept responses of `source` that concern `work_id`, newest first."""
        ...


class DueIndex(Protocol):
    """The scheduler's index of when each (work, source) is next due; scans are O(due)."""

    async def set_due(
        self, source: str, entries: Sequence[DueEntry], handoff: Handoff | None = None
    ) -> None:
        """Set when each work is next due from `source` (replacing its previous entry).
        `handoff`: the one `due` filled when it handed these works out; leasing them with it
        also lets the next scans start past them (see Handoff)."""
        ...

    async def due(
        self, source: str, now: datetime, limit: int, handoff: Handoff | None = None
    ) -> list[DueEntry]:
        """Entries of `source` due at `now`, earliest first (expired leases included); with
        `handoff`, also what leasing them with `set_due` needs (see Handoff)."""
        ...

    async def add_missing_due(self, due: Mapping[str, Sequence[DueEntry]]) -> int:
        """Set each entry (per source) only where its work has no entry from that source; an
        existing entry or lease is kept. Returns how many were added. Idempotent: what
        registration, the `alm.works` consumer and the reconcile use."""
        ...

    async def take_intake(self, limit: int, plan: IntakePlan) -> int:
        """Take works from the intake (oldest registrations first, about `limit` of them: a
        Cassandra store takes whole registration chunks), write the entries `plan(works)`
        names where a work has none from that source (as `add_missing_due`), then remove
        them from the intake. Returns how many works were taken (0: the intake is empty). A
        failure or a crash before the removal leaves them in the intake for the next call,
        which writes only what is still missing."""
        ...

    async def release_leases(self, now: datetime, within: timedelta) -> int:
        """Make every lease that runs out by `now + within` due at `now` (keeping its attempt);
        returns how many. For a restart of the embedded mode, whose in-process bus died with
        the requests the leases stood for; never while those requests may still be read (a
        Kafka topic keeps them)."""
        ...


class SourceControl(Protocol):
    """Pausing and resuming sources, visible to every service."""

    async def source_statuses(self) -> dict[str, SourceStatus]:
        """The status of every source that was ever paused or resumed."""
        ...

    async def set_source_status(self, status: SourceStatus) -> None:
        """Record that a source is paused (with its reason) or running again."""
        ...


class Lifecycle(Protocol):
    """Creating or upgrading the schema before use, and closing the connections after."""

    async def migrate(self) -> None:
        """Apply the migrations the database has not seen yet (idempotent)."""
        ...

    async def reindex_dates(self) -> None:
        """Rebuild the publication-date listing index from the works (`alm db reindex-dates`;
        nothing to do where the database maintains that index itself)."""
        ...

    async def recount_summary(self) -> dict[str, dict[str, int]]:
        """Make `source_summary`'s rows the counts of the states themselves (one pass over
        every state: `alm db recount-summary`, a repair); returns what it added per source
        (`works`, `errors`; the sources already right left out)."""
        ...

    async def close(self) -> None: ...


class Store(
    WorkStore,
    WorkSearch,
    MetricStore,
    FailedRefreshes,
    RawResponses,
    DueIndex,
    SourceControl,
    Lifecycle,
    Protocol,
):
    """One adapter implementing every storage port, with its lifecycle: what bootstrap builds
    (SQLite or Cassandra) and hands, narrowed, to each service."""
