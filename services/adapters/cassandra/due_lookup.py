"""Migration 004's data step: the old `due_lookup` table copied into the due positions
(`source_totals`, services/adapters/cassandra/due.py), then dropped."""

from __future__ import annotations

from services.adapters.cassandra.due import STATEMENTS, position_put
from services.adapters.cassandra.migrations import LOOKUP_ALL, has_table
from services.adapters.cassandra.rows import dt_required
from services.adapters.cassandra.session import CqlSession
from services.core.ports import DueEntry


async def copy_due_lookup(cql: CqlSession) -> None:
    """Migration 004: copy each entry of the old `due_lookup` table into its position in
    `source_totals`, then drop the table (a rerun after an interruption copies again)."""
    if not await has_table(cql, "due_lookup"):
        return
    await cql.prepare({"lookup_all": LOOKUP_ALL, "position_put": STATEMENTS["position_put"]})
    async for page in cql.pages(cql.stmt("lookup_all"), (), fetch_size=5000):
        await cql.run_many(
            cql.batches(
                position_put(
                    (r.work_id, r.source), DueEntry(r.work_id, dt_required(r.at), int(r.attempt))
                )
                for r in page
            )
        )
    await cql.schema_change(["DROP TABLE IF EXISTS due_lookup"])
