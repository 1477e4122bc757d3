"""Which statements may be sent again after a timeout, and the driver's retry policy that does.

A coordinator that times out waiting for its replicas (`WriteTimeout`, `ReadTimeout`: a busy
or compacting node, a GC pause) does not say whether the write was applied. The driver's
default policy then fails every write but a logged batch's, so one slow moment failed a whole
bulk registration (`alm works import`) or a scheduler's write of a take. A statement that gives
the same result applied twice may be sent again: a read, and a write of fixed values. A
counter increment, a list append or a compare-and-set (LWT, `IF ...`) may not: applied twice
it counts twice, or the second attempt reports the first one's row as somebody else's.
"""

from __future__ import annotations

import re
from typing import Any

from cassandra import ConsistencyLevel, WriteType
from cassandra.policies import RetryPolicy

ATTEMPTS = 3  # sends after the first, for an idempotent statement that timed out

_CONDITIONAL = re.compile(r"\bIF\b", re.IGNORECASE)  # IF NOT EXISTS, IF EXISTS, IF col=...
# `c = c + ?`, `c = c - ?` (counters, list appends, set additions), `c = ? + c` (prepends)
_RELATIVE = re.compile(r"\b(\w+)\s*=\s*(\1\s*[-+]|\?\s*\+\s*\1\b)", re.IGNORECASE)
# writes that are safe to apply twice when retried (a logged batch's log is the server's own)
_RETRIED_WRITES = {WriteType.SIMPLE, WriteType.BATCH, WriteType.UNLOGGED_BATCH, WriteType.BATCH_LOG}


def idempotent(cql: str) -> bool:
    """Whether `cql` gives the same result applied twice: a read, or a write of fixed values
    (no condition, no counter or collection update relative to the stored value)."""
    text = cql.strip()
    if text[:6].upper() == "SELECT":
        return True
    return not (_CONDITIONAL.search(text) or _RELATIVE.search(text))


class IdempotentRetry(RetryPolicy):  # type: ignore[misc]
    """The driver's default policy, but a statement marked idempotent (`Statement.is_idempotent`:
    prepared statements by `idempotent`, a batch when all its statements are) that timed out
    on the server is sent again, up to ATTEMPTS times, at the same consistency."""

    def on_write_timeout(
        self,
        query: Any,
        consistency: ConsistencyLevel,
        write_type: int,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, ConsistencyLevel | None]:
        if getattr(query, "is_idempotent", False) and write_type in _RETRIED_WRITES:
            return self._again(consistency, retry_num)
        decision: tuple[int, ConsistencyLevel | None] = super().on_write_timeout(
            query, consistency, write_type, required_responses, received_responses, retry_num
        )
        return decision

    def on_read_timeout(
        self,
        query: Any,
        consistency: ConsistencyLevel,
        required_responses: int,
        received_responses: int,
        data_retrieved: bool,
        retry_num: int,
    ) -> tuple[int, ConsistencyLevel | None]:
        if getattr(query, "is_idempotent", False):
            return self._again(consistency, retry_num)
        decision: tuple[int, ConsistencyLevel | None] = super().on_read_timeout(
            query, consistency, required_responses, received_responses, data_retrieved, retry_num
        )
        return decision

    def _again(
        self, consistency: ConsistencyLevel, retry_num: int
    ) -> tuple[int, ConsistencyLevel | None]:
        """An idempotent statement that timed out: sent again until ATTEMPTS, then failed."""
        return (self.RETRY, consistency) if retry_num < ATTEMPTS else (self.RETHROW, None)
