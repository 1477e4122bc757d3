"""CQL values to Python and back, shared by the parts of the Cassandra adapter.

No null writes: binding None writes a tombstone cell. Columns that never go back to unset
(timestamps, work metadata, which merges only fill) are left UNSET when None (`unset`);
`error` and `events_url`, which do get cleared, are stored as '' for "none".
"""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cassandra.query import UNSET_VALUE

from services.adapters.cassandra.session import Row
from services.core.aggregation import SourceState
from services.core.events import PeriodCount, Status
from services.core.ports import DueEntry
from services.core.provenance import CallRef

SHARDS = 16  # work_index, leaderboard: rows of a table spread over this many partitions
HOUR_US = 3_600_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Position = tuple[int, int]
"""A (work, source)'s current due entry as its `source_totals` row holds it: (due_at in
microseconds, attempt)."""


def us(moment: datetime) -> int:
    """Microseconds since the epoch (exact: aggregation compares these)."""
    delta = moment.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def dt(value: int | None) -> datetime | None:
    """A timestamp column (microseconds) as a datetime; None stays None."""
    return None if value is None else dt_required(value)


def dt_required(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def shard(work_id: str) -> int:
    return zlib.crc32(work_id.encode()) % SHARDS


def day(value: Any) -> date:
    """A CQL `date` as the driver returns it (cassandra.util.Date) or a Python date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def unset(value: Any) -> Any:
    """None as UNSET: the column is left as it is instead of getting a tombstone."""
    return UNSET_VALUE if value is None else value


def position(row: Row | None) -> Position | None:
    """A `source_totals` row's due position, None if it has none."""
    if row is None or row.due_at is None:
        return None
    return int(row.due_at), int(row.due_attempt or 1)


def state(row: Row) -> SourceState:
    """A `source_totals` row as the state it holds."""
    return SourceState(
        work_id=row.work_id,
        source=row.source,
        metrics={k: int(v) for k, v in (row.metrics or {}).items()},
        retrieved_at=dt(row.retrieved_at),
        last_attempt_at=dt(row.last_attempt_at),
        status=Status(row.status) if row.status else None,
        error=row.error or None,
        events_url=row.events_url or None,
        periods=tuple(PeriodCount(m, p, int(c)) for m, p, c in row.periods or ()),
        calls=tuple(
            CallRef(raw_id, dt_required(at), int(status), digest, method)
            for raw_id, at, status, digest, method in row.calls or ()
        ),
    )


def state_values(st: SourceState, due: DueEntry | None = None) -> list[Any]:
    """The `state_put` parameters of a state, with its new due position if it has one."""
    return [
        st.work_id,
        st.source,
        dict(st.metrics),
        us(st.retrieved_at) if st.retrieved_at else UNSET_VALUE,
        us(st.last_attempt_at) if st.last_attempt_at else UNSET_VALUE,
        st.status.value if st.status else UNSET_VALUE,
        st.error or "",
        st.events_url or "",
        [(p.metric, p.period, p.count) for p in st.periods],
        us(due.at) if due else UNSET_VALUE,
        due.attempt if due else UNSET_VALUE,
        [(c.raw_id, us(c.retrieved_at), c.status, c.digest, c.method) for c in st.calls],
    ]


STATE_PUT = (
    "INSERT INTO source_totals (work_id, source, metrics, retrieved_at, last_attempt_at, status,"
    " error, events_url, periods, due_at, due_attempt, calls) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
