"""The per-source status counts contract (tests/contracts/summary.py) run against SqliteStore, a
file per test; the Cassandra run is tests/integration/test_summary.py. Also the pure part
(services/core/summary.py) and what is particular to SQLite: the migration counts the states
stored before it, and `alm db recount-summary`."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.migrations import MIGRATIONS
from services.aggregator.service import fold
from services.cli.main import main
from services.core.events import Status
from services.core.ports import Store
from services.core.summary import by_source, corrections, summary_changes, tally
from tests.contracts.store import T0, obs
from tests.contracts.summary import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
def store(sqlite: SqliteStore) -> Store:
    """The contract's store: a migrated SqliteStore (tests/unit/conftest.py)."""
    return sqlite


def test_summary_changes_are_each_keys_net_transition() -> None:
    """From the state before a key's first applied aggregate to its last state, one change a
    key that moves; none for a key that ends where it began."""
    known = fold([obs("w1", "s", T0, status=Status.ERROR)], {})[0].state
    items = fold(
        [
            obs("w1", "s", T0 + timedelta(hours=1), {"n": 1}),  # error -> ok
            obs("w1", "s", T0 + timedelta(hours=2), status=Status.ERROR),  # and back: no move
            obs("w2", "s", T0, status=Status.ERROR),  # new, error
            obs("w3", "s", T0, {"n": 1}),  # new, ok
            obs("w3", "s", T0, {"n": 1}),  # the same again: not applied
        ],
        {("w1", "s"): known},
    )
    found = {(c.work_id, c.works, c.errors) for c in summary_changes(items)}
    assert found == {("w2", 1, 1), ("w3", 1, 0)}
    recovered = fold([obs("w1", "s", T0 + timedelta(hours=1), {"n": 1})], {("w1", "s"): known})
    assert [(c.works, c.errors) for c in summary_changes(recovered)] == [(0, -1)]


def test_tally_corrections_and_by_source() -> None:
    truth = tally([("a", Status.OK), ("a", Status.ERROR), ("b", Status.OK), ("c", None)])
    assert truth == {"a": (2, 1), "b": (1, 0)}
    assert corrections(truth, {"a": (2, 1), "b": (3, 2), "d": (1, 0)}) == {
        "b": (-2, -2),
        "d": (-1, 0),
    }
    rows = [("b", 1, 0), ("a", 2, 1), ("a", 3, 0), ("z", 0, 0)]
    assert by_source(rows) == {"a": {"works": 5, "errors": 1}, "b": {"works": 1, "errors": 0}}


async def test_the_migration_counts_the_states_stored_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
    before = next(i for i, m in enumerate(MIGRATIONS) if "EXISTS source_summary (" in m)
    for version, script in enumerate(MIGRATIONS[:before], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
    states = [
        ("10.5555/x", "crossref", "error"),
        ("10.5555/y", "crossref", "ok"),
        ("10.5555/z", "crossref", "ok"),
        ("10.5555/x", "wikipedia", "ok"),
    ]
    for work, source, status in states:
        state = {"work_id": work, "source": source, "status": status}
        conn.execute("INSERT INTO source_totals VALUES (?,?,?)", (work, source, json.dumps(state)))
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.migrate()
    try:
        summary = await store.source_summary()
    finally:
        await store.close()
    assert summary == {
        "crossref": {"works": 3, "errors": 1},
        "wikipedia": {"works": 1, "errors": 0},
    }


def test_db_recount_summary_repairs_the_embedded_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm db recount-summary` on SQLite prints what each source was off by and fixes it."""
    assert main(["--data-dir", str(tmp_path), "db", "migrate"]) == 0
    with sqlite3.connect(tmp_path / "alm.sqlite") as conn:
        state = {"work_id": "10.5555/x", "source": "crossref", "status": "error"}
        conn.execute(
            "INSERT INTO source_totals VALUES (?,?,?)", ("10.5555/x", "crossref", json.dumps(state))
        )
        conn.execute("INSERT INTO source_summary VALUES ('pubmed', 2, 0)")
    capsys.readouterr()
    assert main(["--data-dir", str(tmp_path), "db", "recount-summary"]) == 0
    out = capsys.readouterr().out
    assert "crossref: works +1, errors +1" in out
    assert "pubmed: works -2, errors +0" in out
    assert "2 source(s) corrected" in out
    with sqlite3.connect(tmp_path / "alm.sqlite") as conn:
        rows = conn.execute("SELECT source, works, errors FROM source_summary").fetchall()
    assert by_source(rows) == {"crossref": {"works": 1, "errors": 1}}
