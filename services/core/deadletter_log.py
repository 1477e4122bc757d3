"""The dead letters as operators read them back (`GET /admin/deadletters`,
`GET /api/v1/deadletters`): the newest of topic `alm.deadletter`, a page at a time. Pure: the
API reads the partitions' tails with the bus's PartitionReader and hands the messages here.

A letter is shown with its reason, source, work, original topic and time; one that is not a
letter (not JSON, or not what schemas/failed_refresh.schema.json describes) is shown as
malformed with why, never dropped and never an error. Paging goes back by offset: `before`
holds, per partition, the offset below which the next page starts; a page takes the newest
letters over the partitions (by time, each partition's newest first, so what a page takes of a
partition is the top of what is left of it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.ports import Message
from services.core.timeutil import from_iso, to_iso

REFRESH_PREFIX = "alm.refresh."


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of `alm.deadletter`: where it is, and what it says (None where it says
    nothing readable); `malformed` tells why it is not a valid letter (None: it is)."""

    partition: int
    offset: int
    key: str
    work_id: str | None
    source: str | None
    topic: str | None  # the topic the failed record came from
    reason: str | None
    failed_at: datetime | None
    malformed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "work_id": self.work_id,
            "source": self.source,
            "topic": self.topic,
            "reason": self.reason,
            "failed_at": to_iso(self.failed_at) if self.failed_at else None,
            "malformed": self.malformed,
        }


def letter_of(message: Message, problem: Callable[[Mapping[str, Any]], str | None]) -> DeadLetter:
    """The letter a message holds; `problem` says what is wrong with a value (None: valid)."""
    value = message.value
    wrong = problem(value) if isinstance(value, Mapping) else "not a JSON object"
    data: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    request = _mapping(data.get("request"))
    bad = _mapping(data.get("bad_event"))
    topic = _text(data.get("topic"))
    source = _text(request.get("source")) or _text(bad.get("source"))
    if source is None and topic and topic.startswith(REFRESH_PREFIX):
        source = topic[len(REFRESH_PREFIX) :]
    if topic is None and source is not None and request:
        topic = REFRESH_PREFIX + source
    if "undecodable" in data:
        wrong = f"not a letter: {_text(data.get('error')) or 'unreadable'}"
    return DeadLetter(
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        work_id=_text(data.get("work_id")) or _text(request.get("work_id")),
        source=source,
        topic=topic,
        reason=_text(data.get("reason")),
        failed_at=_time(data.get("failed_at")),
        malformed=wrong,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return from_iso(value)
    except (ValueError, OverflowError):
        return None


def newest_first(
    letters: Mapping[int, Sequence[DeadLetter]], before: Mapping[int, int], limit: int
) -> tuple[list[DeadLetter], dict[int, int]]:
    """Up to `limit` letters, newest first, from each partition's letters (read from the tail
    up to its `before` offset, in offset order), and the `before` of the next page: per
    partition, the lowest offset taken (or its `before` unchanged when none was taken).

    Each step takes the partition whose highest remaining letter is the newest; a letter with
    no readable time is taken as soon as it is on top of its partition (never held back, so it
    holds back none under it); a packed record's letters go together."""
    left = {p: sorted(rows, key=lambda d: d.offset) for p, rows in letters.items() if rows}
    taken: list[DeadLetter] = []
    after = dict(before)
    while left and len(taken) < limit:
        part = max(left, key=lambda p: (_sortable(left[p][-1]), -p))
        rows = left[part]
        offset = rows[-1].offset
        while rows and rows[-1].offset == offset:
            taken.append(rows.pop())
        after[part] = offset
        if not rows:
            del left[part]
    return taken, after


def _sortable(letter: DeadLetter) -> float:
    return letter.failed_at.timestamp() if letter.failed_at else float("inf")
