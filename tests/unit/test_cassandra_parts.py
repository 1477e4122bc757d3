"""The parts of the Cassandra adapter that need no server: row conversions, the migrations on
disk, the injected clock, the due index's use of a Handoff, and `find_works`' batched reads
(over a recording stand-in for the session)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.adapters.cassandra import CassandraStore, migrations
from services.adapters.cassandra.due import CassandraDue
from services.adapters.cassandra.keyspace import Keyspace
from services.adapters.cassandra.rows import HOUR_US, dt, position, state, state_values, us
from services.adapters.cassandra.works import WORK_COLS, CassandraWorks
from services.core.aggregation import SourceState
from services.core.events import PeriodCount, Status
from services.core.identifiers import Identifier, IdType
from services.core.ports import DueEntry, Handoff
from services.core.provenance import CallRef
from services.settings import SecretEnv, Settings

T0 = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
STATE_COLS = (
    "work_id source metrics retrieved_at last_attempt_at status error events_url periods"
    " due_at due_attempt calls"
)
StateRow = namedtuple("StateRow", STATE_COLS)  # type: ignore[misc]
WorkRow = namedtuple("WorkRow", WORK_COLS.replace(",", " "))  # type: ignore[misc]
IdRow = namedtuple("IdRow", "work_id")
PositionRow = namedtuple("PositionRow", "work_id due_at due_attempt")


class FakeCql:
    """Records what the parts send; answers reads from `rows` (statement name -> rows, or a
    function of the parameters)."""

    keyspace = "alm"

    def __init__(self, rows: dict[str, Any] | None = None) -> None:
        self.rows = rows or {}
        self.sent: list[tuple[str, Sequence[Any]]] = []

    def _answer(self, name: str, params: Sequence[Any]) -> list[Any]:
        self.sent.append((name, params))
        found = self.rows.get(name, [])
        return list(found(params) if callable(found) else found)

    async def run(self, name: str, params: Sequence[Any]) -> list[Any]:
        return self._answer(name, params)

    async def run_many(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        return [self._answer(name, params) for name, params in calls]

    def batches(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[Any]:
        return list(calls)

    def read_groups(self, name: str, keys: Sequence[Any]) -> list[list[int]]:
        return [list(range(len(keys)))] if keys else []

    def bound_in(self, name: str, params: Sequence[Any], routing_of: Any) -> Any:
        return (name, params)

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]


def keyspace(cql: FakeCql, clock: Any = lambda: T0) -> Keyspace:
    ks = Keyspace(cql, clock)  # type: ignore[arg-type]
    ks._prepared = True  # the stand-in needs no schema check
    return ks


def test_microseconds_round_trip_exactly() -> None:
    for moment in (T0, T0 + timedelta(microseconds=1), datetime(1970, 1, 1, tzinfo=UTC)):
        assert dt(us(moment)) == moment
    assert dt(None) is None


def test_a_state_round_trips_through_its_row_with_its_position() -> None:
    st = SourceState(
        "10.1/a",
        "crossref",
        {"citations": 4},
        T0,
        T0 + timedelta(seconds=1),
        Status.OK,
        None,
        "https://e/x",
        (PeriodCount("citations", "2026-11", 4),),
        (CallRef("raw", T0, 200, "d" * 64, "GET"),),
    )
    values = state_values(st, DueEntry("10.1/a", T0 + timedelta(days=1), 2))
    row = StateRow(*values)
    assert state(row) == st
    assert position(row) == (us(T0 + timedelta(days=1)), 2)
    assert position(None) is None


def test_migrations_on_disk_are_numbered_without_a_gap() -> None:
    found = migrations.migration_files()
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1))
    assert all(statements for _, _, statements in found)


def test_the_store_and_its_parts_share_the_injected_clock() -> None:
    clock = lambda: T0  # noqa: E731
    store = CassandraStore(["127.0.0.1"], 9042, "Alm_Test", clock=clock)
    assert store.keyspace == "alm_test"
    assert store.clock is clock
    with pytest.raises(ValueError, match="keyspace"):
        CassandraStore(["127.0.0.1"], 9042, "alm-test")


async def test_a_write_with_the_handoff_of_its_read_reads_no_position() -> None:
    """`due` puts the positions of what it hands out in the Handoff; the lease's `set_due`
    with it replaces those rows without reading the positions again, and leaves it empty."""
    at = T0 - timedelta(minutes=5)
    scan = namedtuple("Scan", "at work_id attempt leased written")
    hour = us(at) // HOUR_US
    cql = FakeCql(
        {
            "bucket_list": [namedtuple("Bucket", "bucket")(hour)],
            "positions_in": [PositionRow("10.1/a", us(at), 1)],
        }
    )

    async def pages(stmt: Any, params: Any, fetch_size: int = 0) -> Any:
        yield [scan(us(at), "10.1/a", 1, False, us(T0))]

    cql.pages = pages  # type: ignore[attr-defined]
    cql.stmt = lambda name: name  # type: ignore[attr-defined]
    due = CassandraDue(keyspace(cql))
    handoff = Handoff()
    assert await due.due("crossref", T0, 10, handoff) == [DueEntry("10.1/a", at)]
    assert handoff.positions == {("10.1/a", "crossref"): (us(at), 1)}
    assert handoff.scans  # where the next scan starts once these are leased
    cql.sent.clear()
    lease = DueEntry("10.1/a", T0 + timedelta(hours=1), 1, leased=True)
    await due.set_due("crossref", [lease], handoff)
    assert "positions_in" not in cql.names()  # taken from the handoff
    assert ("due_del", ("crossref", hour, us(at), "10.1/a")) in cql.sent
    assert handoff.positions == {} and handoff.scans == {}
    cql.sent.clear()
    await due.set_due("crossref", [DueEntry("10.1/a", T0 + timedelta(hours=2))])
    assert "positions_in" in cql.names()  # no handoff: the position is read


async def test_find_works_reads_the_index_then_the_works_in_one_batch() -> None:
    doi, pmid, unknown = (
        Identifier(IdType.DOI, "10.1/a"),
        Identifier(IdType.PMID, "123"),
        Identifier(IdType.DOI, "10.1/none"),
    )
    index = {("doi", "10.1/a"): "10.1/a", ("pmid", "123"): "10.1/a"}
    cql = FakeCql(
        {
            "id_get": lambda p: [IdRow(index[tuple(p)])] if tuple(p) in index else [],
            "works_in": [WorkRow("10.1/a", "10.1/a", "123", *[None] * 7)],
        }
    )
    ks = keyspace(cql)
    works = CassandraWorks(ks, CassandraDue(ks))
    found = await works.find_works([doi, pmid, unknown, doi])
    assert set(found) == {doi, pmid}
    assert found[doi] == found[pmid] and found[doi].pmid == "123"
    assert cql.names().count("id_get") == 3  # each identifier once
    assert cql.names().count("works_in") == 1  # the works in one read
    assert await works.find_works([]) == {}


def test_settings_keep_the_connection_variables_without_showing_a_password() -> None:
    env = {
        "ALM_CASSANDRA_USERNAME": "alm-user",
        "ALM_CASSANDRA_PASSWORD": "hunter2-secret",
        "ALM_CASSANDRA_TLS": "true",
        "ALM_CASSANDRA_HOSTS": "10.0.0.1",
    }
    settings = Settings.from_env(env)
    assert dict(settings.cassandra_env) == {
        k: v for k, v in env.items() if k != "ALM_CASSANDRA_HOSTS"
    }
    assert settings.cassandra_hosts == ("10.0.0.1",)
    assert "hunter2-secret" not in repr(SecretEnv(env)) and "alm-user" in repr(settings)
