"""`alm publishers import` end to end in the embedded mode (SQLite) against the stub upstream:
PLOS (member 340) imported whole, interrupted half-way (an outage, a crash mid-page, a stop)
and resumed with every work exactly once, then kept up to date with `--since` (the kill -9 of
the real process is in tests/faults/test_embedded_publishers_import.py)."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.publishers import SqlitePublishers
from services.bootstrap import make_caller, make_scheduling
from services.catalogue_import import Importer, ImportOptions
from services.cli import publishers as publishers_cli
from services.cli.main import main
from services.cli.progress import Progress
from services.core.catalogue_state import ImportState, Scope
from services.core.publishers import Publisher
from services.fetchers.catalogue import CatalogueClient
from services.fetchers.http import HttpSettings
from services.fetchers.registry import get_source
from services.settings import Settings
from services.stub.crossref_catalogue import PageFault
from tests.publishers_kit import (
    CATALOGUE,
    Upstream,
    exactly_once,
    import_state,
    upstream_fixture,  # noqa: F401 (the `upstream` fixture)
    works_of,
)


def _alm(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_member_is_imported_whole_with_its_metadata_and_schedule(
    upstream: Upstream,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every PLOS work is registered once with title, date, type, publisher and member id,
    and scheduled from every source; the progress shows count, share, rate and time left."""
    original = Progress.__init__

    def every_step(self: Progress, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "every": 0.0})

    monkeypatch.setattr(Progress, "__init__", every_step)
    code, out, err = _alm(
        capsys, tmp_path, "publishers", "import", "--member", "340", "--rows", "500"
    )
    assert code == 0, err
    assert "member 340: Public Library of Science (PLoS) (10.1371, 2,504 works at Crossref)" in out
    assert "member:340: import complete, 2,504 works: 2,504 registered, 0 already known" in out
    assert "importing: 500 of 2,504 (19%) works" in err and " left" in err
    exactly_once(tmp_path, upstream)
    assert import_state(tmp_path).complete


def test_an_outage_half_way_stops_the_import_and_the_next_run_finishes_it(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pages failing from the middle on stop the import (exit 1, resumable); the next run
    resumes it and ends with every work exactly once."""
    upstream.stub.fault = PageFault(after=3)
    code, out, err = _alm(
        capsys, tmp_path, "publishers", "import", "--member", "340", "--rows", "200"
    )
    assert code == 1
    assert "import stopped" in err and "run the command again to resume" in err
    assert "starting the window again" in err
    half = len(works_of(tmp_path))
    assert 0 < half < CATALOGUE
    assert not import_state(tmp_path).complete
    code, out, _ = _alm(capsys, tmp_path, "publishers", "list")
    assert "unfinished" in out
    upstream.stub.fault = None
    code, out, err = _alm(
        capsys, tmp_path, "publishers", "import", "--member", "340", "--rows", "200"
    )
    assert code == 0, err
    assert "resuming the import of member:340" in err
    exactly_once(tmp_path, upstream)


def test_a_429_asks_the_same_page_again_after_retry_after(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Crossref's 429 was not acted on: the page is asked for again with the same cursor once
    Retry-After has passed, no window starts again, nothing is asked twice."""
    upstream.stub.fault = PageFault(after=2, times=2, status=429, retry_after=1)
    started = time.monotonic()
    args = ("publishers", "import", "--member", "340", "--rows", "500")
    code, _, err = _alm(capsys, tmp_path, *args)
    assert code == 0, err
    assert err.count("asking again") == 2 and "Too Many Requests" in err
    assert time.monotonic() - started >= 1.0
    assert upstream.stub.pages_served == CATALOGUE // 500 + 1
    assert import_state(tmp_path).restarts == 0
    exactly_once(tmp_path, upstream)


def test_a_crash_mid_page_restarts_only_that_window(
    upstream: Upstream,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that dies between asking for a page and registering it (the cursor moved on,
    the page lost) resumes by asking its window again from `*`; windows done stay done."""
    small = functools.partial(ImportOptions, backoff=0.01, window_works=800)
    monkeypatch.setattr(publishers_cli, "ImportOptions", small)
    from services import catalogue_import

    real = catalogue_import.register_works
    calls = 0

    async def dies_on_the_sixth_page(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise KeyboardInterrupt  # as abrupt as a kill: nothing after it runs
        return await real(*args, **kwargs)

    monkeypatch.setattr(catalogue_import, "register_works", dies_on_the_sixth_page)
    args = ("publishers", "import", "--member", "340", "--rows", "100")
    code, _, _ = _alm(capsys, tmp_path, *args)
    assert code == 130
    crashed = import_state(tmp_path)
    assert crashed.in_flight and crashed.cursor and len(crashed.windows) >= 3
    assert crashed.window >= 1 and crashed.before > 0  # a window was done before the crash
    monkeypatch.setattr(catalogue_import, "register_works", real)
    served = upstream.stub.pages_served
    code, _, err = _alm(capsys, tmp_path, *args)
    assert code == 0, err
    assert "a page was in flight when it stopped: its window starts again" in err
    whole_import = sum((w.expected or 0) // 100 + 1 for w in crashed.windows)
    done_before = sum((w.expected or 0) // 100 + 1 for w in crashed.windows[: crashed.window])
    assert upstream.stub.pages_served - served == whole_import - done_before
    exactly_once(tmp_path, upstream)
    assert import_state(tmp_path).restarts == 1


def test_since_imports_what_was_indexed_since_and_updates_what_changed(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The next run asks only for works indexed since the last complete import started: new
    works are registered, re-indexed ones with changed metadata updated."""
    assert _alm(capsys, tmp_path, "publishers", "import", "--member", "340")[0] == 0
    today = datetime.now(UTC).date()
    catalogue = upstream.stub.catalogues["340"]
    added = catalogue.add(7, today)
    catalogue.recorded[0] = {**catalogue.recorded[0], "title": ["A corrected title"]}
    catalogue.reindex([0, 1, 2], today)
    code, out, err = _alm(capsys, tmp_path, "publishers", "import", "--member", "340")
    assert code == 0, err
    assert f"10 works indexed from {today.isoformat()} to {today.isoformat()}" in out
    assert "10 works: 7 registered, 3 already known, 1 updated, 0 invalid" in out
    works = {r[0]: r for r in works_of(tmp_path)}
    assert len(works) == CATALOGUE + 7 and {d.lower() for d in added} <= set(works)
    first = str(catalogue.item(0)["DOI"]).lower()
    assert works[first][1] == "A corrected title"
    code, out, _ = _alm(
        capsys, tmp_path, "publishers", "import", "--member", "340", "--since", "2026-11-01"
    )
    assert code == 0 and "works indexed from 2026-11-01" in out


def test_the_list_shows_publishers_their_works_and_imports(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm publishers list` (and --json): the member, its names and prefixes, its works here
    and at Crossref, each import's state; an import by prefix counts for its member."""
    assert _alm(capsys, tmp_path, "publishers", "list")[1].startswith("no publishers yet")
    assert _alm(capsys, tmp_path, "publishers", "import", "--prefix", "10.1371")[0] == 0
    code, out, _ = _alm(capsys, tmp_path, "publishers", "list")
    assert code == 0
    assert (
        "340  Public Library of Science (PLoS)  [10.1371]  2,504 works of 2,504 at Crossref" in out
    )
    assert "prefix:10.1371: complete" in out
    rows = json.loads(_alm(capsys, tmp_path, "publishers", "list", "--json")[1])
    assert rows[0]["member_id"] == "340" and rows[0]["works"] == CATALOGUE
    assert rows[0]["imports"][0]["last_import"] == datetime.now(UTC).date().isoformat()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--member", "PLOS"], "a Crossref member id is a number"),
        (["--prefix", "doi:10.1371"], "a DOI prefix is 10."),
        (["--member", "340", "--since", "2026-13-01"], "--since takes a day as YYYY-MM-DD"),
        (["--member", "340", "--since", "2999-01-01"], "is in the future"),
        (["--member", "340", "--rows", "1001"], "--rows takes 1 to 1000"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_asked(
    upstream: Upstream,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """A usage error names what to change (exit 2) and asks Crossref nothing."""
    code, _, err = _alm(capsys, tmp_path, "publishers", "import", *args)
    assert code == 2 and message in err
    assert upstream.stub.pages_served == 0


def test_unknown_members_and_conflicting_imports_are_told_clearly(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A member Crossref does not know stops with its reason; `--since` while an import is
    unfinished is refused (resume or --restart), and --restart starts anew."""
    code, _, err = _alm(capsys, tmp_path, "publishers", "import", "--member", "999")
    assert code == 1 and "Crossref knows no member 999" in err
    upstream.stub.fault = PageFault(after=2)
    assert (
        _alm(capsys, tmp_path, "publishers", "import", "--member", "340", "--rows", "500")[0] == 1
    )
    upstream.stub.fault = None
    code, _, err = _alm(
        capsys, tmp_path, "publishers", "import", "--member", "340", "--since", "2026-01-01"
    )
    assert code == 2 and "is unfinished" in err and "--restart" in err
    code, out, _ = _alm(
        capsys,
        tmp_path,
        "publishers",
        "import",
        "--member",
        "340",
        "--since",
        "2026-11-01",
        "--restart",
    )
    assert code == 0 and "indexed from 2026-11-01" in out


def test_offline_starts_the_bundled_stub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--offline` needs nothing running: it serves the recorded catalogue itself."""
    code, out, err = _alm(capsys, tmp_path, "publishers", "import", "--member", "340", "--offline")
    assert code == 0, err
    assert "2,504 registered" in out


class _Quiet:
    def __init__(self, stop_after: int | None = None) -> None:
        self.stop = asyncio.Event()
        self.stop_after = stop_after
        self.pages = 0
        self.notes: list[str] = []

    def found(self, publisher: Publisher) -> None:
        pass

    def planned(self, state: ImportState) -> None:
        pass

    def advanced(self, state: ImportState) -> None:
        self.pages += 1
        if self.pages == self.stop_after:
            self.stop.set()

    def note(self, text: str) -> None:
        self.notes.append(text)


@pytest.mark.parametrize(
    ("later", "restarts"), [(timedelta(seconds=20), 0), (timedelta(minutes=5), 1)]
)
async def test_a_stop_between_pages_goes_on_with_the_cursor_while_it_lives(
    upstream: Upstream, tmp_path: Path, later: timedelta, restarts: int
) -> None:
    """Stopped between pages, an import resumed within four minutes goes on with its cursor
    (no page asked twice); resumed later, its window starts again; exactly once either way."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    now = [datetime.now(UTC)]
    settings = Settings(upstream_root=upstream.root, rates={"crossref": 1000.0})
    crossref = get_source("crossref")
    async with make_caller(
        settings, [crossref], HttpSettings(retries=0, rates=settings.rates)
    ) as caller:
        client = CatalogueClient(caller, crossref, settings.source_config("crossref"))

        def importer(watcher: _Quiet) -> Importer:
            return Importer(
                client,
                store,
                SqlitePublishers(store),
                MemoryBus(window=0),
                make_scheduling(settings),
                lambda: now[0],
                watcher,
                ImportOptions(rows=250),
            )

        first = _Quiet(stop_after=4)
        stopped = await importer(first).run(Scope.member("340"), None, False, first.stop)
        assert not stopped.complete and stopped.cursor and not stopped.in_flight
        assert stopped.within in (1000, 1250)  # the page asked for ahead is registered too
        upstream.stub.clock = lambda: time.monotonic() + later.total_seconds()
        now[0] += later
        second = _Quiet()
        state = await importer(second).run(Scope.member("340"), None, False, second.stop)
    assert state.complete and state.restarts == restarts
    assert upstream.stub.pages_served == CATALOGUE // 250 + 1 + stopped.within // 250 * restarts
    await store.close()
    exactly_once(tmp_path, upstream)
