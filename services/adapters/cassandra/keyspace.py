"""What every part of the Cassandra adapter shares: the keyspace's session, its prepared
statements, the clock, and the batched `IN` read.

The parts (works, metrics, due, raw, control: one per port) each bring their statements; they
are prepared together, once the keyspace is found migrated (`ready`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from services.adapters.cassandra import migrations
from services.adapters.cassandra.rows import us
from services.adapters.cassandra.session import CqlSession, Row

Clock = Callable[[], datetime]
"""The wall clock (UTC): what write timestamps are compared with and `now` for the store."""


class Keyspace:
    """One keyspace's session, shared by the parts of the adapter."""

    def __init__(self, cql: CqlSession, clock: Clock) -> None:
        self.cql = cql
        self.name = cql.keyspace
        self.clock = clock
        self.statements: dict[str, str] = {}  # prepared by `ready`
        self._prepared = False

    def add(self, statements: Mapping[str, str]) -> None:
        """Statements a part runs, prepared with the others."""
        self.statements.update(statements)

    def now_us(self) -> int:
        """The clock's present in microseconds (what WRITETIME and USING TIMESTAMP hold)."""
        return us(self.clock())

    async def ready(self) -> CqlSession:
        """The session, once the keyspace is checked and migrated and the statements prepared."""
        if not self._prepared:
            await self.cql.check_keyspace()
            await migrations.check_migrated(self.cql)
            await self.cql.prepare(self.statements)
            self._prepared = True
        return self.cql

    async def read_in(
        self, single: str, many: str, work_ids: Sequence[str], *prefix: Any
    ) -> list[Row]:
        """Rows of `many` (`... WHERE [prefix AND] work_id IN ?`: or another column, the last
        of the partition key) for `work_ids`, one read per replica set and 50 partitions;
        `single` is the one-partition form, for routing."""
        cql = await self.ready()
        ids = list(dict.fromkeys(work_ids))
        keys = [(*prefix, w) for w in ids]
        reads = [
            cql.bound_in(many, (*prefix, [ids[i] for i in group]), (single, keys[group[0]]))
            for group in cql.read_groups(single, keys)
        ]
        return [row for rows in await cql.run_many(reads) for row in rows]
