"""Cassandra adapter of the CallArchive port: a kept call is read by its full primary key
((source, day), retrieved_at, raw_id), all of which its ref carries: one single-row read per
call, whatever the partition holds. A row past its TTL is gone, so the call is not kept."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC

from services.adapters.cassandra.raw import RAW_COLS, raw_response
from services.adapters.cassandra.rows import us
from services.adapters.cassandra.store import CassandraStore
from services.core.provenance import CallRef, RawResponse

STATEMENTS = {
    "raw_by_key": f"SELECT {RAW_COLS} FROM raw_responses"
    " WHERE source=? AND day=? AND retrieved_at=? AND raw_id=?",
}


class CassandraCallArchive:
    """Kept calls looked up by their refs in the CassandraStore's `raw_responses`."""

    def __init__(self, store: CassandraStore) -> None:
        self._store = store
        self._prepared = False

    async def kept_calls(self, source: str, refs: Sequence[CallRef]) -> dict[str, RawResponse]:
        """The raw responses of `refs` still kept, by raw id."""
        cql = await self._store.session()
        if not self._prepared:
            await cql.prepare(STATEMENTS)
            self._prepared = True
        keys = []
        for ref in refs:
            try:
                raw_id = uuid.UUID(ref.raw_id)
            except ValueError:
                continue  # not an id this store ever wrote
            day = ref.retrieved_at.astimezone(UTC).date()
            keys.append(("raw_by_key", (source, day, us(ref.retrieved_at), raw_id)))
        found = await cql.run_many(keys)
        return {str(row.raw_id): raw_response(source, row) for rows in found for row in rows}
