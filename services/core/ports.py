"""The ports the services talk through: the event bus and the metric store.

Adapters implement these Protocols (in-process and Kafka for the bus; SQLite and Cassandra for
the store); the core and the service logic import only these.

A registered work always ends with a due entry for every enabled source that can fetch it
(DESIGN.md, invariant 1): `WorkStore.register(works, schedule)` writes the works with their
entries, `DueIndex.add_missing_due` repairs a gap without touching what is there, and
`WorkStore.works_after` lets a reconcile page through every work in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.core.aggregation import Aggregate, HistoryPoint, SourceState
from services.core.events import SourceEvent
from services.core.health import SourceStatus
from services.core.identifiers import Identifier
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


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An upstream call kept for a while so every stored number can be traced to it.

    `raw_id` and `digest` (SHA-256 of the body as received) are what states refer to
    (services/core/provenance.py); `redacted`: a configured secret was masked in `url` or
    `body`, so the kept body no longer hashes to `digest`."""

    source: str
    retrieved_at: datetime
    url: str
    status: int
    body: str
    work_ids: tuple[str, ...]
    raw_id: str = ""
    digest: str = ""
    method: str = "GET"
    redacted: bool = False


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


Schedule = Callable[[Work], Mapping[str, DueEntry]]
"""The due entries a registered work is owed, by source (`services/registration.py` builds it
from the enabled sources and the staleness policy). Pure: the store calls it with each work as
registration leaves it (merged with what was known), inside its write."""


@dataclass(frozen=True, slots=True)
class Registration:
    """What registering one identifier did: `created` false when the work was known."""

    work: Work
    created: bool


class WorkStore(Protocol):
    """The works registry with its identifier index."""

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None
    ) -> list[Registration]:
        """Register works, one result per work in order; a work already known by any of its
        ids is merged into the known one, not duplicated (`created` false).

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
        """The works known by `idents` (those found), in one read."""
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


class MetricStore(Protocol):
    """Per-source totals, history, events and raw responses."""

    async def states(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], SourceState]:
        """The stored state of each (work id, source) that has one."""
        ...

    async def states_for(self, work_ids: Sequence[str]) -> dict[str, list[SourceState]]: ...

    async def write_aggregates(
        self, items: Sequence[Aggregate], due: Mapping[str, Sequence[DueEntry]] | None = None
    ) -> None:
        """Persist what aggregation produced: states, history points, new events (idempotent);
        with `due` (per source), also when each work is next due, as `set_due` would, stored
        with the states."""
        ...

    async def history(self, work_id: str, source: str | None) -> list[HistoryPoint]: ...

    async def events(self, work_id: str, source: str) -> list[SourceEvent]: ...

    async def add_raw_responses(self, raws: Sequence[RawResponse]) -> None:
        """Keep upstream responses for a while (expiring after the configured TTL)."""
        ...

    async def raw_responses(self, source: str, work_id: str, limit: int) -> list[RawResponse]:
        """The latest kept responses of `source` that concern `work_id`, newest first."""
        ...

    async def source_summary(self) -> dict[str, dict[str, int]]:
        """Per source: `works` with a state and `errors` (works whose last attempt failed)."""
        ...

    async def top_works(self, source: str, metric: str, limit: int) -> list[tuple[str, int]]:
        """The works with the highest value of `metric` from `source` (the leaderboard)."""
        ...


class DueIndex(Protocol):
    """The scheduler's index of when each (work, source) is next due; scans are O(due)."""

    async def set_due(self, source: str, entries: Sequence[DueEntry]) -> None:
        """Set when each work is next due from `source` (replacing its previous entry)."""
        ...

    async def due(self, source: str, now: datetime, limit: int) -> list[DueEntry]:
        """Entries of `source` due at `now`, earliest first (expired leases included)."""
        ...

    async def add_missing_due(self, due: Mapping[str, Sequence[DueEntry]]) -> int:
        """Set each entry (per source) only where its work has no entry from that source; an
        existing entry or lease is kept. Returns how many were added. Idempotent: what
        registration, the `alm.works` consumer and the reconcile use."""
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


class Store(WorkStore, MetricStore, DueIndex, SourceControl, Protocol):
    """One adapter implementing every storage port, with its lifecycle."""

    async def migrate(self) -> None: ...

    async def close(self) -> None: ...
