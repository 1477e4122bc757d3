"""The stub upstream's Crossref catalogue on loopback for `alm publishers import` tests, and the
checks on what an import left in the embedded store (the unit tests in
tests/e2e/test_publishers_import.py and the kill -9 scenario in tests/faults/)."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.bootstrap import make_scheduling
from services.catalogue_import import ImportOptions
from services.cli import publishers as publishers_cli
from services.core.catalogue_state import ImportState
from services.fetchers.registry import SOURCES
from services.settings import FIXTURES, Settings
from services.stub import server as stub_server
from services.stub.crossref_catalogue import CatalogueStub
from tests.intake_kit import take_intake, waiting

CATALOGUE = 2504  # PLOS in the stub: 4 recorded works and 2,500 generated ones


@dataclass
class Upstream:
    """The stub upstream, served from a thread of its own so it outlives each command."""

    stub: CatalogueStub
    root: str

    def dois(self) -> set[str]:
        catalogue = self.stub.catalogues["340"]
        return {str(catalogue.item(p)["DOI"]).lower() for p in range(catalogue.size)}


@pytest.fixture(name="upstream")
def upstream_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    """The stub upstream on loopback; commands reach it through ALM_UPSTREAM_ROOT, without
    Crossref's pacing (ALM_CROSSREF_RATE), and retry after failures at once."""
    app = stub_server.init_app(SOURCES, FIXTURES)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner, root = asyncio.run_coroutine_threadsafe(stub_server.start(app), loop).result()
    monkeypatch.setenv("ALM_UPSTREAM_ROOT", root)
    monkeypatch.setenv("ALM_CROSSREF_RATE", "1000")
    monkeypatch.setenv("ALM_GC_THRESHOLD", "python")
    quick = functools.partial(ImportOptions, backoff=0.01, max_backoff=0.01)
    monkeypatch.setattr(publishers_cli, "ImportOptions", quick)
    try:
        yield Upstream(app[stub_server.STUBS]["crossref"].catalogue, root)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def works_of(data: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data / "alm.sqlite") as conn:
        return conn.execute(
            "SELECT work_id, title, issued, work_type, publisher, publisher_id FROM works"
        ).fetchall()


def import_state(data: Path, scope: str = "member:340") -> ImportState:
    with sqlite3.connect(data / "alm.sqlite") as conn:
        row = conn.execute("SELECT state FROM catalogue_imports WHERE scope=?", (scope,))
        return ImportState.from_dict(json.loads(row.fetchone()[0]))


def exactly_once(data: Path, upstream: Upstream) -> None:
    """Every catalogue work registered once, with its metadata, in the intake (or due), and
    with every due entry it is owed once the scheduler has taken the intake in."""
    rows = works_of(data)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) == CATALOGUE
    assert set(ids) == upstream.dois()
    assert all(r[1] and r[2] and r[3] and r[4] and r[5] == "340" for r in rows)
    scheduling = make_scheduling(Settings())
    owed = {s.name for s in scheduling.sources if s.fetchable(_ref(ids[0]))}
    assert waiting(data / "alm.sqlite") >= set(ids)  # each in the intake or due
    take_intake(data / "alm.sqlite", Settings())
    with sqlite3.connect(data / "alm.sqlite") as conn:
        per_source = dict(conn.execute("SELECT source, count(*) FROM due GROUP BY source"))
    assert per_source == dict.fromkeys(owed, CATALOGUE)


def _ref(doi: str) -> Any:
    from services.core.works import WorkRef

    return WorkRef(doi, doi=doi)


def safe_works(data: Path) -> list[Any]:
    try:
        return works_of(data)
    except sqlite3.Error:
        return []
