"""How the Cassandra session cuts writes into UNLOGGED batches the server accepts quietly.

Cassandra checks a batch that spans more than one partition against two thresholds of its own:
`batch_size_warn_threshold` (it logs a warning) and `batch_size_fail_threshold` (it refuses the
batch: InvalidRequest "Batch too large"); `unlogged_batch_across_partitions_warn_threshold` is
the partition count it warns above. The size it compares is `IMutation.dataSize()` of the
batch's mutations (cql3/statements/BatchStatement.verifyBatchSize), which is not the size of
the bound values: per partition update its deletion info, per row its clustering values,
liveness and deletion, per cell its timestamp, TTL and local deletion time besides its value
(and, in a non-frozen collection, its path); the partition key is not counted at all.

`row_bytes` estimates that for one bound statement from its values and its table's schema. The
constants were measured on Cassandra 5.0.6 by sending batches of known rows over the warning
threshold and reading the size the server logged (tests/unit/test_cassandra_batching.py keeps
the measured rows); the estimate equals the server's figure for every write ALM makes. Batches
are then filled up to BATCH_MARGIN of the warning threshold, so the server never warns and never
refuses; if it refuses one anyway (a cluster whose thresholds changed since they were read), the
session splits it in two and sends the halves (`split`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from cassandra import InvalidRequest
from cassandra.query import (
    UNSET_VALUE,
    BatchStatement,
    BatchType,
    BoundStatement,
    PreparedStatement,
)

# What the server counts besides the bytes of the values (Cassandra 5.0; see the module doc).
ROW_BYTES = 21  # a row's liveness info and row deletion
PARTITION_BYTES = 29  # a partition update's deletion info (per table and partition key)
CELL_BYTES = 20  # a cell's timestamp (8), TTL (4) and local deletion time (8)
TTL_BYTES = 12  # a row written with a TTL (its liveness info expires)
COLLECTION_BYTES = 12  # a non-frozen collection written whole (its collection tombstone)
LIST_PATH_BYTES = 16  # a non-frozen list's cell path (a timeuuid)

# Cassandra's defaults, used when the node's settings cannot be read: warn above 10 partitions
# and 5 KiB, refuse above 50 KiB. Batches are filled up to BATCH_MARGIN of the warning threshold
# (never above the failure threshold) and never with more than MAX_BATCH_PARTITIONS partitions
# (bigger batches only add latency).
BATCH_PARTITIONS = 10
WARN_BYTES = 5 * 1024
FAIL_BYTES = 50 * 1024
BATCH_MARGIN = 0.9
MAX_BATCH_PARTITIONS = 100
PARTITIONS_SETTING = "unlogged_batch_across_partitions_warn_threshold"
WARN_SETTINGS = ("batch_size_warn_threshold", "batch_size_warn_threshold_in_kb")  # 4.1+, 4.0
FAIL_SETTINGS = ("batch_size_fail_threshold", "batch_size_fail_threshold_in_kb")
BATCH_SETTINGS = (PARTITIONS_SETTING, *WARN_SETTINGS, *FAIL_SETTINGS)
_SIZE = re.compile(r"\s*(\d+)\s*([KMG]?i?B)?\s*", re.IGNORECASE)
_UNITS = {"": 1024, "b": 1, "kib": 1024, "kb": 1024, "mib": 1024**2, "mb": 1024**2}


def _size_setting(settings: Mapping[str, str | None], names: Sequence[str]) -> int | None:
    """Bytes of the first readable, enabled size setting among `names` (4.1+ writes a size with
    its unit, 4.0 a number of KiB)."""
    for name in names:
        match = _SIZE.fullmatch(settings.get(name) or "")
        unit = _UNITS.get((match[2] or "").lower()) if match else None
        if match and unit and int(match[1]) > 0:
            return int(match[1]) * unit
    return None


class BatchLimits(NamedTuple):
    """How big an UNLOGGED batch `batches` builds: partitions, and bytes as the server counts
    them (`row_bytes`)."""

    partitions: int = BATCH_PARTITIONS
    bytes: int = int(WARN_BYTES * BATCH_MARGIN)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str | None]) -> BatchLimits:
        """The limits under a node's thresholds (`system_views.settings` name -> value); a
        threshold missing, disabled or unreadable keeps Cassandra's default."""
        partitions = BATCH_PARTITIONS
        raw = settings.get(PARTITIONS_SETTING)
        if raw is not None and raw.strip().isdigit() and int(raw) > 0:
            partitions = min(int(raw), MAX_BATCH_PARTITIONS)
        warn = _size_setting(settings, WARN_SETTINGS) or WARN_BYTES
        fail = _size_setting(settings, FAIL_SETTINGS) or FAIL_BYTES
        return cls(partitions, int(min(warn, fail) * BATCH_MARGIN))


class RowCost:
    """`row_bytes` of one prepared statement: what each bound value adds to the batch's size
    as the server counts it, from the statement's columns and its table's schema (`table`: the
    driver's TableMetadata; without it, every non-key column is counted as a cell, and every
    collection as a non-frozen one, which can only overestimate)."""

    KEY, CLUSTERING, CELL, COLLECTION, TTL = range(5)

    def __init__(self, prepared: PreparedStatement, table: Any | None) -> None:
        routing = set(prepared.routing_key_indexes or ())
        clustering = {c.name for c in table.clustering_key} if table is not None else set()
        columns = table.columns if table is not None else {}
        self.kinds: list[tuple[int, str]] = []
        for index, column in enumerate(prepared.column_metadata):
            name = column.name
            collection = _collection(columns[name].cql_type if name in columns else None, column)
            if name == "[ttl]":
                kind = self.TTL
            elif index in routing or name == "[timestamp]":
                kind = self.KEY  # not counted (a partition key, or the write's timestamp)
            elif name in clustering:
                kind = self.CLUSTERING
            elif collection:
                kind = self.COLLECTION
            else:
                kind = self.CELL
            self.kinds.append((kind, collection))

    def __call__(self, values: Sequence[Any]) -> int:
        """Bytes the server counts for a row bound to `values` (serialized), without the
        partition's own PARTITION_BYTES."""
        size = ROW_BYTES
        for (kind, collection), value in zip(self.kinds, values, strict=False):
            if kind == self.KEY or value is UNSET_VALUE:
                continue
            length = len(value) if isinstance(value, bytes) else 0
            if kind == self.CLUSTERING:
                size += length
            elif kind == self.CELL:
                size += CELL_BYTES + length  # None: a tombstone cell
            elif kind == self.COLLECTION:
                size += _collection_bytes(collection, value)
            elif value is not None:
                size += TTL_BYTES
        return size


def _collection(cql_type: str | None, column: Any) -> str:
    """'map', 'set' or 'list' for a non-frozen collection column, else ''."""
    if cql_type is not None:
        match = re.match(r"(map|set|list)<", cql_type)
        return match[1] if match else ""
    name = str(getattr(column.type, "typename", ""))
    return name if name in ("map", "set", "list") else ""


def _collection_bytes(kind: str, value: Any) -> int:
    """What a non-frozen collection written whole counts: its tombstone, and a cell per element
    (map: key as path and value; set: element as path; list: timeuuid path and element)."""
    if not isinstance(value, bytes) or len(value) < 4:
        return COLLECTION_BYTES
    count = max(int(struct.unpack_from(">i", value)[0]), 0)
    lengths = 8 * count if kind == "map" else 4 * count  # the serialized length prefixes
    elements = max(0, len(value) - 4 - lengths)
    path = LIST_PATH_BYTES * count if kind == "list" else 0
    return COLLECTION_BYTES + count * CELL_BYTES + elements + path


class Binder:
    """`PreparedStatement.bind` for the many small rows `batches` writes, at about half its
    CPU: each column's serializer is looked up once, not per value (the driver also builds a
    column descriptor per value for column encryption, which ALM does not use). Same values
    and errors as the driver's bind for positional parameters; a statement with a column
    encryption policy is bound by the driver."""

    def __init__(self, prepared: PreparedStatement, table: Any | None = None) -> None:
        self.prepared = prepared
        self.cost = RowCost(prepared, table)  # what a row of it adds to a batch
        self.table = str(table.name) if table is not None else ""
        columns = prepared.column_metadata
        self.serializers = [(c.name, c.type, c.type.serialize) for c in columns]
        self.serialize = [c.type.serialize for c in columns]
        self.routing = set(prepared.routing_key_indexes or ())
        self.protocol = prepared.protocol_version
        self.driver_only = prepared.column_encryption_policy is not None or self.protocol < 4

    def __call__(self, params: Sequence[Any]) -> BoundStatement:
        if self.driver_only or len(params) != len(self.serializers):
            return self.prepared.bind(params)  # the driver's checks and messages
        protocol = self.protocol
        try:  # the common case in one comprehension; `_checked` says what was wrong
            values = [
                value if value is None or value is UNSET_VALUE else serialize(value, protocol)
                for serialize, value in zip(self.serialize, params, strict=True)
            ]
        except (TypeError, struct.error):
            values = self._checked(params)
        for index in self.routing:
            if params[index] is UNSET_VALUE:
                name = self.serializers[index][0]
                raise ValueError(f"cannot leave routing key column {name!r} unset")
        bound = BoundStatement(self.prepared)
        bound.raw_values = params
        bound.values = values
        return bound

    def _checked(self, params: Sequence[Any]) -> list[Any]:
        """The values serialized one by one, raising the driver's message for the first one of
        a wrong type."""
        values: list[Any] = []
        for (name, kind, serialize), value in zip(self.serializers, params, strict=True):
            if value is None or value is UNSET_VALUE:
                values.append(value)
                continue
            try:
                values.append(serialize(value, self.protocol))
            except (TypeError, struct.error) as exc:
                raise TypeError(
                    f'Received an argument of invalid type for column "{name}". '
                    f"Expected: {kind}, Got: {type(value)}; ({exc})"
                ) from exc
        return values


class Batch(BatchStatement):  # type: ignore[misc]
    """An UNLOGGED batch that keeps its statements, so a refused batch can be split."""

    def __init__(self, statements: Sequence[BoundStatement]) -> None:
        super().__init__(batch_type=BatchType.UNLOGGED)
        self.statements = list(statements)
        for bound in statements:
            self.add(bound)
        self.is_idempotent = all(bound.is_idempotent for bound in statements)  # retry.py


def request(chunk: Sequence[BoundStatement]) -> BoundStatement | Batch:
    """A chunk as one request: its statement alone, or an UNLOGGED batch of them."""
    return chunk[0] if len(chunk) == 1 else Batch(chunk)


def too_large(exc: BaseException) -> bool:
    """Whether the server refused a batch for its size (`batch_size_fail_threshold`)."""
    return isinstance(exc, InvalidRequest) and "batch too large" in str(exc).lower()


def split(batch: Batch) -> list[BoundStatement | Batch]:
    """A refused batch as two requests of half its statements each."""
    half = len(batch.statements) // 2
    return [request(batch.statements[:half]), request(batch.statements[half:])]


class Batcher:
    """Cuts one replica group's writes into chunks within the partition and size limits."""

    def __init__(self, limits: BatchLimits | None = None) -> None:
        self.limits = limits or BatchLimits()
        self.out: list[list[BoundStatement]] = []
        self.open: list[BoundStatement] = []
        self.partitions: set[bytes | None] = set()
        self.updates: set[tuple[str, bytes | None]] = set()  # (table, partition) in the chunk
        self.size = 0

    def add(self, bound: BoundStatement, size: int, table: str = "") -> None:
        """Add a row of `size` bytes (`RowCost`) of `table`; a new chunk starts when it would
        not fit."""
        key = bound.routing_key
        new_partition = key not in self.partitions
        new_update = (table, key) not in self.updates
        grown = size + (PARTITION_BYTES if new_update else 0)
        if self.open and (
            (new_partition and len(self.partitions) >= self.limits.partitions)
            or self.size + grown > self.limits.bytes
        ):
            self._flush()
            grown = size + PARTITION_BYTES
        self.open.append(bound)
        self.size += grown
        self.partitions.add(key)
        self.updates.add((table, key))

    def _flush(self) -> None:
        if self.open:
            self.out.append(self.open)
        self.open, self.partitions, self.updates, self.size = [], set(), set(), 0

    def finish(self) -> list[list[BoundStatement]]:
        """Every chunk, in the order the rows came."""
        self._flush()
        return self.out
