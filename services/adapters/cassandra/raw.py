"""Raw upstream responses in Cassandra (the raw-response part of the MetricStore port).

Rows carry a TTL of `raw_ttl` counted from `retrieved_at`; a storage-attached index on the set
of works each response concerns finds them by work (one row per call, in a partition per source
and day).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any

from services.adapters.cassandra.keyspace import Keyspace
from services.adapters.cassandra.rows import dt_required, us
from services.adapters.cassandra.session import Call, Row
from services.core.provenance import RawResponse, identified

RAW_COLS = "retrieved_at, raw_id, url, status, body, work_ids, digest, method, redacted"
STATEMENTS: dict[str, str] = {
    "raw_put": "INSERT INTO raw_responses (source, day, retrieved_at, raw_id, url, status, body,"
    " work_ids, works, digest, method, redacted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) USING TTL ?",
    "raw_of_work": f"SELECT {RAW_COLS} FROM raw_responses"
    " WHERE source=? AND day=? AND works CONTAINS ? LIMIT ?",
}


def raw_response(source: str, row: Row) -> RawResponse:
    """A kept call from a raw_responses row (RAW_COLS)."""
    raw = RawResponse(
        source,
        dt_required(row.retrieved_at),
        row.url,
        row.status,
        row.body,
        tuple(row.work_ids),
        str(row.raw_id),
        row.digest or "",
        row.method or "GET",
        bool(row.redacted),
    )
    return identified(raw)


class CassandraRaw:
    """Upstream responses kept for `raw_ttl`, found by source and work."""

    def __init__(self, keyspace: Keyspace, raw_ttl: timedelta) -> None:
        self._ks = keyspace
        self.raw_ttl = raw_ttl
        keyspace.add(STATEMENTS)

    async def add_raw_responses(self, raws: Sequence[RawResponse]) -> None:
        """Keep upstream responses until `retrieved_at + raw_ttl` (expired ones are skipped)."""
        cql = await self._ks.ready()
        now = self._ks.clock()
        writes: list[Call] = []
        for raw in map(identified, raws):
            ttl = int((raw.retrieved_at + self.raw_ttl - now).total_seconds())
            if ttl <= 0:
                continue
            at = us(raw.retrieved_at)
            day = raw.retrieved_at.astimezone(UTC).date()
            raw_id = uuid.UUID(raw.raw_id)
            body: tuple[Any, ...] = (raw.url, raw.status, raw.body, list(raw.work_ids))
            kept = (set(raw.work_ids), raw.digest, raw.method, raw.redacted, ttl)
            writes.append(("raw_put", (raw.source, day, at, raw_id, *body, *kept)))
        await cql.run_many(cql.batches(writes))

    async def raw_responses(self, source: str, work_id: str, limit: int) -> list[RawResponse]:
        """The latest kept responses of `source` concerning `work_id`, newest first: the
        `works` index, one day partition at a time from today back to the oldest kept day."""
        cql = await self._ks.ready()
        today = self._ks.clock().astimezone(UTC).date()
        out: list[RawResponse] = []
        for back in range(self.raw_ttl.days + 2):
            if len(out) >= limit:
                break
            day = today - timedelta(days=back)
            rows = await cql.run("raw_of_work", (source, day, work_id, limit - len(out)))
            out.extend(raw_response(source, r) for r in rows)
        return out
