"""Pausing and resuming sources in Cassandra (the SourceControl port): one `source_status` row
per source that was ever paused or resumed."""

from __future__ import annotations

from services.adapters.cassandra.keyspace import Keyspace
from services.adapters.cassandra.rows import dt, us
from services.core.health import SourceStatus

STATEMENTS: dict[str, str] = {
    "status_all": "SELECT source, paused, reason, since FROM source_status",
    "status_put": "INSERT INTO source_status (source, paused, reason, since) VALUES (?,?,?,?)",
}


class CassandraControl:
    """Which sources are paused, and why."""

    def __init__(self, keyspace: Keyspace) -> None:
        self._ks = keyspace
        keyspace.add(STATEMENTS)

    async def source_statuses(self) -> dict[str, SourceStatus]:
        """The status of every source that was ever paused or resumed."""
        rows = await (await self._ks.ready()).run("status_all", ())
        return {
            r.source: SourceStatus(r.source, bool(r.paused), r.reason, dt(r.since)) for r in rows
        }

    async def set_source_status(self, status: SourceStatus) -> None:
        """Record that a source is paused (with its reason) or running again."""
        since = us(status.since) if status.since else None
        await (await self._ks.ready()).run(
            "status_put", (status.source, status.paused, status.reason, since)
        )
