"""The per-source status counts in Cassandra (services/core/summary.py, migration 016).

`source_summary` holds counters per (source, shard of the work id), so that counting reads
sources x 16 rows, never one a state, and the aggregators' increments spread over 16 cells a
source. The aggregator adds a batch's transitions (`summary_writes`) in a round of their own
after the state rows (counters cannot share a batch with other writes): a redelivered
observation finds its state stored and moves nothing, so the common redelivery (after a crash
between the writes and the offset commit) counts nothing twice.

Counters are not idempotent, so two windows can make them drift: a crash (or a failed write)
between the state round and the counters' round loses that batch's transitions (its redelivery
finds the states stored), and a counter write that timed out but was applied is counted again if
the batch is redone. Both are bounded by one batch of transitions per failure and only ever
under- or over-count what the failure touched. `recount` repairs them: one paged pass over the
states, and each (source, shard) counter moved by the difference (`alm db recount-summary`;
migration 016's data step). A recount while the aggregator runs can be off by the transitions
written during its pass; one with the aggregator stopped is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from services.adapters.cassandra.rows import shard
from services.adapters.cassandra.session import Call, CqlSession
from services.core.aggregation import Aggregate
from services.core.events import Status
from services.core.summary import Counts, add, by_source, corrections, summary_changes

STATEMENTS: dict[str, str] = {
    "summary_add": "UPDATE source_summary SET works = works + ?, errors = errors + ?"
    " WHERE source=? AND shard=?",
    "summary_all": "SELECT source, shard, works, errors FROM source_summary",
}
STATES_ALL = "SELECT work_id, source, status FROM source_totals"
MIGRATION = 16  # 016_source_summary.cql, then `recount`


def summary_writes(items: Sequence[Aggregate]) -> list[Call]:
    """The counter updates of a batch's transitions, one a (source, shard) that moves."""
    sums: dict[tuple[str, int], Counts] = {}
    for change in summary_changes(items):
        add(sums, (change.source, shard(change.work_id)), change.works, change.errors)
    return [("summary_add", (w, e, source, s)) for (source, s), (w, e) in sorted(sums.items())]


async def recount(cql: CqlSession) -> dict[str, dict[str, int]]:
    """Make every counter the count of the states (one paged pass over `source_totals`, 5,000
    rows a page), each moved by the difference; returns what was added, per source."""
    await cql.prepare({**STATEMENTS, "summary_states_all": STATES_ALL})
    truth: dict[tuple[str, int], Counts] = {}
    async for rows in cql.pages(cql.stmt("summary_states_all"), (), fetch_size=5000):
        for r in rows:
            if r.status:  # not a row holding only a due position
                add(truth, (r.source, shard(r.work_id)), 1, int(r.status == Status.ERROR.value))
    kept = {
        (r.source, int(r.shard)): (int(r.works or 0), int(r.errors or 0))
        for r in await cql.run("summary_all", ())
    }
    fixes = corrections(truth, kept)
    await cql.run_many(
        ("summary_add", (w, e, source, s)) for (source, s), (w, e) in sorted(fixes.items())
    )
    return by_source((source, w, e) for (source, _), (w, e) in fixes.items())


if TYPE_CHECKING:  # keyspace.py imports migrations.py, which imports this module's recount
    from services.adapters.cassandra.keyspace import Keyspace


class CassandraSummary:
    """Reads and repair of the per-source status counts."""

    def __init__(self, keyspace: Keyspace) -> None:
        self._ks = keyspace
        keyspace.add(STATEMENTS)

    async def source_summary(self) -> dict[str, dict[str, int]]:
        """Per source: works with a state, works whose last attempt failed (sources x 16 rows)."""
        rows = await (await self._ks.ready()).run("summary_all", ())
        return by_source((r.source, int(r.works or 0), int(r.errors or 0)) for r in rows)

    async def recount_summary(self) -> dict[str, dict[str, int]]:
        """`alm db recount-summary`: the counters made the counts of the states (see recount)."""
        return await recount(await self._ks.ready())
