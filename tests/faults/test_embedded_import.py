"""`alm works import` at a publisher's size: 200,000 works imported are 200,000 works in the
scheduler's intake, which the scheduler's intake makes due from every source that can fetch
them, and an import killed half-way leaves only whole chunks, each work in the intake, which
importing again completes. Prints how long the import and the intake took."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from services.settings import Settings
from tests.faults.embedded_oracle import (
    Alm,
    fetching_sources,
    reap,  # noqa: F401 (autouse: ends what a test left)
    synthetic_works,
    write_works,
)
from tests.intake_kit import take_intake, waiting

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def _schedule(db: Path) -> tuple[set[str], Counter[str], Counter[str]]:
    """The registered works, how many due entries each work has, and how many each source."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        works = {w for (w,) in conn.execute("SELECT work_id FROM works")}
        per_work = Counter(
            dict(conn.execute("SELECT work_id, count(*) FROM due GROUP BY work_id").fetchall())
        )
        per_source = Counter(
            dict(conn.execute("SELECT source, count(*) FROM due GROUP BY source").fetchall())
        )
    return works, per_work, per_source


def _wait_registered(db: Path, alm: Alm, count: int, timeout: float = 300) -> None:
    """Until `count` works are stored (the import is well under way)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if len(_schedule(db)[0]) >= count:
                return
        except sqlite3.OperationalError:  # not there or not migrated yet
            pass
        assert alm.proc.poll() is None, f"import ended first; {alm.describe()}"
        assert time.monotonic() < deadline, alm.describe()
        time.sleep(0.05)


def _import(tmp: Path, works: Path, name: str) -> Alm:
    return Alm.start(tmp / "data", "works", "import", str(works), log=tmp / f"{name}.log")


def test_importing_200000_works_schedules_every_one(tmp_path: Path) -> None:
    """Each of 200,000 imported DOIs is in the intake, then due from each of the sources once
    the scheduler has taken the intake in (one scheduler step used to index the first 1,000
    and leave 199,000 unscheduled for good)."""
    dois = synthetic_works(200_000, "import")
    works = write_works(tmp_path / "dois.txt", dois)

    started = time.monotonic()
    alm = _import(tmp_path, works, "import")
    assert alm.wait_exit(800) == 0, alm.describe()
    took = time.monotonic() - started
    db = tmp_path / "data" / "alm.sqlite"
    assert waiting(db) == set(dois)  # each in the intake
    started = time.monotonic()
    assert take_intake(db, Settings()) == len(dois)
    intake = time.monotonic() - started
    registered, per_work, per_source = _schedule(db)

    sources = fetching_sources()
    print(
        f"\n[faults] import of {len(dois):,} works with {len(sources)} sources: {took:.1f} s "
        f"({len(dois) / took:,.0f} works/s); the intake: {intake:.1f} s "
        f"({len(dois) / intake:,.0f} works/s, {sum(per_source.values()):,} due entries)"
    )
    assert "works: 200000 registered, 0 already known, 0 invalid" in alm.lines
    assert registered == set(dois)
    assert per_source == dict.fromkeys(sources, len(dois))
    assert set(per_work.values()) == {len(sources)}


def test_an_import_killed_half_way_leaves_whole_chunks_that_a_rerun_completes(
    tmp_path: Path,
) -> None:
    """kill -9 during an import: every work already stored is in the intake (works and their
    intake rows are written together, a chunk at a time); importing the file again answers
    the stored ones `already known` and registers the rest, and the intake schedules all."""
    dois = synthetic_works(200_000, "killed")  # chunks of BULK_CHUNK (50,000)
    works = write_works(tmp_path / "dois.txt", dois)
    db = tmp_path / "data" / "alm.sqlite"
    sources = fetching_sources()

    first = _import(tmp_path, works, "first")
    _wait_registered(db, first, 5_000)
    first.kill()
    registered, _, _ = _schedule(db)
    assert 0 < len(registered) < len(dois)
    assert waiting(db) == registered

    again = _import(tmp_path, works, "again")
    assert again.wait_exit(300) == 0, again.describe()

    summary = f"works: {len(dois) - len(registered)} registered, {len(registered)} already known"
    assert any(line.startswith(summary) for line in again.lines), again.describe()
    take_intake(db, Settings())
    registered, per_work, per_source = _schedule(db)
    assert registered == set(dois)
    assert per_source == dict.fromkeys(sources, len(dois))
    assert set(per_work.values()) == {len(sources)}


def test_sigterm_stops_an_import_between_chunks(tmp_path: Path) -> None:
    """SIGTERM during an import ends it between two chunks, saying how far it got; what it
    registered is in the intake, and importing again completes it."""
    dois = synthetic_works(200_000, "stopped")
    works = write_works(tmp_path / "dois.txt", dois)
    db = tmp_path / "data" / "alm.sqlite"

    first = _import(tmp_path, works, "first")
    _wait_registered(db, first, 5_000)
    first.signal(signal.SIGTERM)

    assert first.wait_exit(60) == 1, first.describe()
    assert any(line.startswith("works: stopped after ") for line in first.lines), first.lines
    registered, _, _ = _schedule(db)
    assert 0 < len(registered) < len(dois)
    assert waiting(db) == registered
    again = _import(tmp_path, works, "again")
    assert again.wait_exit(300) == 0, again.describe()
    assert _schedule(db)[0] == set(dois)
    assert waiting(db) == set(dois)
