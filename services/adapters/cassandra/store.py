"""CassandraStore: the Store port for the distributed mode (SqliteStore's twin), composed of
one part per port over one keyspace:

- works.py: the works registry (WorkStore), registration scheduling through the due index;
- metrics.py: metric state, history, events, leaderboards (MetricStore);
- raw.py: raw upstream responses (MetricStore's raw part);
- due.py: the due index (DueIndex) and the write path moving due positions;
- control.py: paused sources (SourceControl);
- summary.py: the per-source status counts (`source_summary`, `recount_summary`);
- migrations.py (+ migrations/*.cql): the keyspace and its schema (`migrate`).

Tables follow DESIGN.md. The adapters of the other ports (keys, hooks, checks, publishers,
issued, provenance) share the keyspace's session through `session()`.

Consistency: LOCAL_QUORUM reads and writes, LOCAL_SERIAL for LWT (session.py). Time comes from
the injected clock (the wall clock by default): the store compares it with write timestamps,
so it must be the clock the driver stamps writes with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.adapters.cassandra import issued, migrations
from services.adapters.cassandra.control import CassandraControl
from services.adapters.cassandra.due import CassandraDue
from services.adapters.cassandra.due_lookup import copy_due_lookup
from services.adapters.cassandra.failed import CassandraFailed
from services.adapters.cassandra.keyspace import Clock, Keyspace
from services.adapters.cassandra.metrics import CassandraMetrics
from services.adapters.cassandra.raw import CassandraRaw
from services.adapters.cassandra.search import CassandraSearch
from services.adapters.cassandra.session import CqlSession
from services.adapters.cassandra.settings import CassandraConnection
from services.adapters.cassandra.summary import CassandraSummary
from services.adapters.cassandra.works import WORK_COLS, CassandraWorks, work_of
from services.core.aggregation import Aggregate, HistoryPoint, SourceState
from services.core.events import SourceEvent
from services.core.failed_refreshes import FailedRefresh, FailureQuery
from services.core.health import SourceStatus
from services.core.identifiers import Identifier
from services.core.ports import DueEntry, Handoff, IntakePlan, Registration, Schedule
from services.core.provenance import RawResponse
from services.core.works import Work


def wall_clock() -> datetime:
    """The present in UTC."""
    return datetime.now(UTC)


class CassandraStore:
    """Works, metric state, history, events, raw responses and the due index in Cassandra."""

    def __init__(
        self,
        hosts: Sequence[str],
        port: int,
        keyspace: str,
        raw_ttl: timedelta = timedelta(days=7),
        replication: Mapping[str, Any] | None = None,
        connection: CassandraConnection | None = None,
        request_timeout: float = 20.0,
        clock: Clock = wall_clock,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", keyspace):
            raise ValueError(f"invalid Cassandra keyspace name {keyspace!r} (letters, digits, _)")
        self.keyspace = keyspace.lower()
        self._replication = replication
        self._cql = CqlSession(
            hosts, port, self.keyspace, request_timeout=request_timeout, connection=connection
        )
        self._ks = Keyspace(self._cql, clock)
        self.due_index = CassandraDue(self._ks)
        self.works = CassandraWorks(self._ks, self.due_index)
        self.metrics = CassandraMetrics(self._ks, self.due_index)
        self.failed = CassandraFailed(self._ks)
        self.raw = CassandraRaw(self._ks, raw_ttl)
        self.control = CassandraControl(self._ks)
        self.search = CassandraSearch(self._ks, WORK_COLS, work_of)
        self.summary = CassandraSummary(self._ks)

    @property
    def clock(self) -> Clock:
        """The store's clock (for the adapters sharing its keyspace)."""
        return self._ks.clock

    async def session(self) -> CqlSession:
        """The session, once the keyspace is checked and migrated (for the adapters of other
        ports sharing it: they prepare their own statements)."""
        return await self._ks.ready()

    async def _ready(self) -> CqlSession:
        return await self._ks.ready()

    async def migrate(self) -> None:
        """Create the keyspace if needed and apply the migrations not yet recorded."""
        await migrations.migrate(self._cql, self._replication, self._ks.clock, copy_due_lookup)
        await self._ready()

    async def reindex_dates(self) -> None:
        """`alm db reindex-dates`: a `works_by_issued` row for every work (migration 012's
        data step, again)."""
        await issued.backfill(await self._ks.ready(), self._ks.now_us)

    async def recount_summary(self) -> dict[str, dict[str, int]]:
        """`alm db recount-summary`: the per-source counters made the counts of the states."""
        return await self.summary.recount_summary()

    async def close(self) -> None:
        """Shut the driver down."""
        await self._cql.close()

    # -- WorkStore (works.py) ------------------------------------------------------------

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None, intake: bool = False
    ) -> list[Registration]:
        return await self.works.register(works, schedule, intake)

    async def update_works(self, works: Sequence[Work]) -> None:
        await self.works.update_works(works)

    async def get_work(self, work_id: str) -> Work | None:
        return await self.works.get_work(work_id)

    async def get_works(self, work_ids: Sequence[str]) -> dict[str, Work]:
        return await self.works.get_works(work_ids)

    async def find_work(self, ident: Identifier) -> Work | None:
        return await self.works.find_work(ident)

    async def find_works(self, identifiers: Sequence[Identifier]) -> dict[Identifier, Work]:
        return await self.works.find_works(identifiers)

    async def list_works(self, offset: int, limit: int) -> list[Work]:
        return await self.works.list_works(offset, limit)

    async def works_newest(self, offset: int, limit: int) -> list[Work]:
        return await self.works.works_newest(offset, limit)

    async def works_after(self, after: str | None, limit: int) -> list[Work]:
        return await self.works.works_after(after, limit)

    async def search_works(
        self, words: Sequence[str], after: str | None, limit: int, publisher_id: str | None = None
    ) -> tuple[list[Work], str | None]:
        return await self.search.search_works(words, after, limit, publisher_id)

    async def count_works(self) -> int:
        return await self.works.count_works()

    # -- MetricStore (metrics.py, raw.py) ------------------------------------------------

    async def states(
        self, keys: Sequence[tuple[str, str]], handoff: Handoff | None = None
    ) -> dict[tuple[str, str], SourceState]:
        return await self.metrics.states(keys, handoff)

    async def states_for(self, work_ids: Sequence[str]) -> dict[str, list[SourceState]]:
        return await self.metrics.states_for(work_ids)

    async def write_aggregates(
        self,
        items: Sequence[Aggregate],
        due: Mapping[str, Sequence[DueEntry]] | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        await self.metrics.write_aggregates(items, due, handoff)

    async def history(self, work_id: str, source: str | None) -> list[HistoryPoint]:
        return await self.metrics.history(work_id, source)

    async def history_of(self, work_id: str, sources: Sequence[str]) -> list[HistoryPoint]:
        return await self.metrics.history_of(work_id, sources)

    async def events(self, work_id: str, source: str) -> list[SourceEvent]:
        return await self.metrics.events(work_id, source)

    async def events_by_source(
        self, work_id: str, sources: Sequence[str]
    ) -> dict[str, list[SourceEvent]]:
        return await self.metrics.events_by_source(work_id, sources)

    async def source_summary(self) -> dict[str, dict[str, int]]:
        return await self.summary.source_summary()

    async def top_works(
        self, source: str, metric: str, limit: int, after: tuple[int, str] | None = None
    ) -> list[tuple[str, int]]:
        return await self.metrics.top_works(source, metric, limit, after)

    async def failed_refreshes(self, query: FailureQuery) -> list[FailedRefresh]:
        return await self.failed.failed_refreshes(query)

    async def add_raw_responses(self, raws: Sequence[RawResponse]) -> None:
        await self.raw.add_raw_responses(raws)

    async def raw_responses(self, source: str, work_id: str, limit: int) -> list[RawResponse]:
        return await self.raw.raw_responses(source, work_id, limit)

    # -- DueIndex (due.py) ---------------------------------------------------------------

    async def set_due(
        self, source: str, entries: Sequence[DueEntry], handoff: Handoff | None = None
    ) -> None:
        await self.due_index.set_due(source, entries, handoff)

    async def due(
        self, source: str, now: datetime, limit: int, handoff: Handoff | None = None
    ) -> list[DueEntry]:
        return await self.due_index.due(source, now, limit, handoff)

    async def add_missing_due(self, due: Mapping[str, Sequence[DueEntry]]) -> int:
        return await self.due_index.add_missing_due(due)

    async def take_intake(self, limit: int, plan: IntakePlan) -> int:
        return await self.works.take_intake(limit, plan)

    async def release_leases(self, now: datetime, within: timedelta) -> int:
        return await self.due_index.release_leases(now, within)

    # -- SourceControl (control.py) ------------------------------------------------------

    async def source_statuses(self) -> dict[str, SourceStatus]:
        return await self.control.source_statuses()

    async def set_source_status(self, status: SourceStatus) -> None:
        await self.control.set_source_status(status)
