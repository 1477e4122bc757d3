"""Batches whose size Cassandra 5.0.6 measured (the figure its `Batch for [...] is of size`
warning logged), for the unit tests of the batch-size estimate.

Each case is one of the store's write statements, the shape of its table, the rows of one
UNLOGGED batch, and the size in bytes the server gave for that batch in its warning to the
client. `tests/integration/test_batch_sizes.py` sends the same batches to a real server and
reads the figure from the warning, which is how these were measured.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cassandra.cqltypes import (
    Int32Type,
    ListType,
    LongType,
    MapType,
    SetType,
    SimpleDateType,
    TupleType,
    UTF8Type,
    UUIDType,
)
from cassandra.query import UNSET_VALUE

TEXT, BIGINT, INT, DATE, UUID = UTF8Type, LongType, Int32Type, SimpleDateType, UUIDType
METRICS = MapType.apply_parameters([UTF8Type, LongType])
PERIODS = ListType.apply_parameters([TupleType.apply_parameters([UTF8Type, UTF8Type, LongType])])
TEXTS = ListType.apply_parameters([UTF8Type])
TEXT_SET = SetType.apply_parameters([UTF8Type])


@dataclass(frozen=True)
class Column:
    """A column (or a `[ttl]` / `[timestamp]` marker) as a prepared statement lists it."""

    name: str
    type: Any
    cql_type: str = ""


@dataclass(frozen=True)
class Table:
    """What the estimate reads of the driver's TableMetadata."""

    name: str
    clustering: tuple[str, ...]
    types: dict[str, str]

    @property
    def clustering_key(self) -> list[Column]:
        return [Column(n, None) for n in self.clustering]

    @property
    def columns(self) -> dict[str, Column]:
        return {n: Column(n, None, t) for n, t in self.types.items()}


@dataclass(frozen=True)
class Prepared:
    """What the estimate reads of a prepared statement."""

    column_metadata: list[Column]
    routing_key_indexes: list[int]
    protocol_version: int = 5
    column_encryption_policy: None = None


@dataclass(frozen=True)
class Case:
    """One batch the server measured."""

    statement: str
    prepared: Prepared
    table: Table
    rows: Callable[[int], Sequence[Any]]
    count: int
    measured: int
    partitions: Callable[[int], Any] = field(default=lambda i: i)

    def serialized(self) -> list[list[Any]]:
        """Each row's values as the driver serializes them (None and UNSET kept)."""
        out = []
        for i in range(self.count):
            values = []
            for column, value in zip(self.prepared.column_metadata, self.rows(i), strict=True):
                keep = value is None or value is UNSET_VALUE
                values.append(value if keep else column.type.serialize(value, 5))
            out.append(values)
        return out


def _work(i: int) -> str:
    return f"10.5555/w{i:06d}"


US = 1_700_000_000_000_000
LEADERBOARD = Table(
    "leaderboard",
    ("value", "work_id"),
    {"source": "text", "metric": "text", "shard": "int", "value": "bigint", "work_id": "text"},
)
STATE = Table(
    "source_totals",
    ("source",),
    {
        "work_id": "text",
        "source": "text",
        "metrics": "frozen<map<text, bigint>>",
        "periods": "frozen<list<frozen<tuple<text, text, bigint>>>>",
        "retrieved_at": "bigint",
        "last_attempt_at": "bigint",
        "status": "text",
        "error": "text",
        "events_url": "text",
        "due_at": "bigint",
        "due_attempt": "int",
    },
)
STATE_PUT = Prepared(
    [
        Column("work_id", TEXT),
        Column("source", TEXT),
        Column("metrics", METRICS),
        Column("retrieved_at", BIGINT),
        Column("last_attempt_at", BIGINT),
        Column("status", TEXT),
        Column("error", TEXT),
        Column("events_url", TEXT),
        Column("periods", PERIODS),
        Column("due_at", BIGINT),
        Column("due_attempt", INT),
    ],
    [0],
)
EVENTS = Table(
    "source_events",
    ("event_id",),
    {"work_id": "text", "source": "text", "event_id": "text", "event": "text"},
)
DUE = Table(
    "due",
    ("at", "work_id"),
    {"source": "text", "bucket": "bigint", "at": "bigint", "work_id": "text", "attempt": "int"},
)
RAW = Table(
    "raw_responses",
    ("retrieved_at", "raw_id"),
    {
        "source": "text",
        "day": "date",
        "retrieved_at": "bigint",
        "raw_id": "uuid",
        "url": "text",
        "status": "int",
        "body": "text",
        "work_ids": "frozen<list<text>>",
        "works": "set<text>",
    },
)
WORKS = Table(
    "works",
    (),
    {
        "work_id": "text",
        "doi": "text",
        "pmid": "text",
        "pmcid": "text",
        "title": "text",
        "issued": "date",
        "publisher": "text",
        "canonical_url": "text",
    },
)
HISTORY = Table(
    "source_history",
    ("day",),
    {"work_id": "text", "source": "text", "day": "date", "metrics": "frozen<map<text, bigint>>"},
)
RAW_IDS = [uuid.UUID(int=n) for n in range(200)]

CASES = [
    Case(
        "board_put",
        Prepared(
            [
                Column("source", TEXT),
                Column("metric", TEXT),
                Column("shard", INT),
                Column("value", BIGINT),
                Column("work_id", TEXT),
            ],
            [0, 1, 2],
        ),
        LEADERBOARD,
        lambda i: ("src", "metric", i, 1000 + i, _work(i)),
        460,
        33580,
    ),
    Case(
        "board_del",
        Prepared(
            [
                Column("source", TEXT),
                Column("metric", TEXT),
                Column("shard", INT),
                Column("value", BIGINT),
                Column("work_id", TEXT),
            ],
            [0, 1, 2],
        ),
        LEADERBOARD,
        lambda i: ("src", "metricxxxxxxxxxxxxxxx", i, 1000 + i, _work(i)),
        460,
        33580,
    ),
    Case(
        "state_put",
        STATE_PUT,
        STATE,
        lambda i: (
            _work(i),
            "crossref",
            {"citations": 12, "total": 12, "": 1},
            US,
            US,
            "ok",
            "",
            "",
            [],
            US,
            1,
        ),
        100,
        33800,
    ),
    Case(
        "state_put",
        STATE_PUT,
        STATE,
        lambda i: (
            _work(i // 4),
            f"source{i % 4}",
            {"x" * 20: 1},
            US,
            None,
            "error",
            "timeout: no answer",
            "",
            [("views", "2024-01", 3), ("views", "2024-02", 4)],
            None,
            1,
        ),
        100,
        36625,
        lambda i: i // 4,
    ),
    Case(
        "event_put",
        Prepared(
            [
                Column("work_id", TEXT),
                Column("source", TEXT),
                Column("event_id", TEXT),
                Column("event", TEXT),
            ],
            [0, 1],
        ),
        EVENTS,
        lambda i: (_work(i % 2), "src", f"ev{i:05d}", '{"event_id": "e"}'),
        540,
        35158,
        lambda i: i % 2,
    ),
    Case(
        "due_put",
        Prepared(
            [
                Column("source", TEXT),
                Column("bucket", BIGINT),
                Column("at", BIGINT),
                Column("work_id", TEXT),
                Column("attempt", INT),
            ],
            [0, 1],
        ),
        DUE,
        lambda i: ("crossref", 472222 + i % 2, US + i, _work(i), 1),
        500,
        34058,
        lambda i: i % 2,
    ),
    Case(
        "due_del",
        Prepared(
            [
                Column("source", TEXT),
                Column("bucket", BIGINT),
                Column("at", BIGINT),
                Column("work_id", TEXT),
            ],
            [0, 1],
        ),
        DUE,
        lambda i: ("crossref", 472222 + i, US + i, _work(i)),
        460,
        33580,
    ),
    Case(
        "position_put",
        Prepared(
            [
                Column("due_at", BIGINT),
                Column("due_attempt", INT),
                Column("work_id", TEXT),
                Column("source", TEXT),
            ],
            [2],
        ),
        STATE,
        lambda i: (US, 1, _work(i), "crossref"),
        320,
        35200,
    ),
    Case(
        "work_update",
        Prepared(
            [
                Column("doi", TEXT),
                Column("pmid", TEXT),
                Column("pmcid", TEXT),
                Column("title", TEXT),
                Column("issued", DATE),
                Column("publisher", TEXT),
                Column("canonical_url", TEXT),
                Column("work_id", TEXT),
            ],
            [7],
        ),
        WORKS,
        lambda i: (
            _work(i),
            UNSET_VALUE,
            UNSET_VALUE,
            f"Synthetic work {_work(i)}",
            date(2020, 1, 1),
            UNSET_VALUE,
            UNSET_VALUE,
            _work(i),
        ),
        220,
        34980,
    ),
    Case(
        "history_put",
        Prepared(
            [
                Column("work_id", TEXT),
                Column("source", TEXT),
                Column("day", DATE),
                Column("metrics", METRICS),
            ],
            [0, 1],
        ),
        HISTORY,
        lambda i: (_work(i), "src", date(2024, 1, 1), {"citations": i, "views": 2 * i}),
        300,
        37200,
    ),
    Case(
        "raw_put",
        Prepared(
            [
                Column("source", TEXT),
                Column("day", DATE),
                Column("retrieved_at", BIGINT),
                Column("raw_id", UUID),
                Column("url", TEXT),
                Column("status", INT),
                Column("body", TEXT),
                Column("work_ids", TEXTS),
                Column("works", TEXT_SET),
                Column("[ttl]", INT),
            ],
            [0, 1],
        ),
        RAW,
        lambda i: (
            f"s{i % 2}",
            date(2024, 1, 1),
            US + i,
            RAW_IDS[i],
            "http://127.0.0.1/crossref/works",
            200,
            "{}",
            [_work(i), _work(i + 1)],
            {_work(i), _work(i + 1)},
            3600,
        ),
        150,
        44758,
        lambda i: i % 2,
    ),
]
