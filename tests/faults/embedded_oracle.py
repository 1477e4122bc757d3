"""The embedded mode under faults: the real `alm run --offline` process (its stub upstream
answers synthetic 10.5555/ works deterministically), killed or stopped at awkward moments, and
a reconciliation oracle that says what the SQLite file must hold when it is done.

The expectation is an undisturbed run of the same works through the same pipeline in-process
(`baseline`): whatever a faulted run went through, it must end where that run ends. Counted by
`reconcile`:

- lost: a (work, fetchable source) with no stored state;
- wrong: stored totals or status that differ from the undisturbed run's;
- stuck: a last fetch that failed, a lease still held, or no due entry for the next refresh;
- history: (work, source) whose daily points are not exactly one point holding the totals
  (a refresh handled twice must not add one);
- changes: how many metric-change events the runs published, against the undisturbed run's
  (`expected_changes` narrows it to the pairs a crash left without a state).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.bootstrap import make_pipeline, selected_sources
from services.core.works import WorkRef
from services.embedded import refresh_until_idle
from services.fetchers.http import HttpSettings
from services.fetchers.registry import SOURCES
from services.registration import register
from services.settings import FIXTURES, Settings
from services.stub import server as stub_server

REPO = Path(__file__).resolve().parents[2]
Pair = tuple[str, str]  # (work id, source)
SUMMARY = "refreshes: "


def synthetic_works(n: int, tag: str) -> list[str]:
    """`n` DOIs under the test prefix the stub answers deterministically."""
    return [f"10.5555/{tag}.{i}" for i in range(n)]


def write_works(path: Path, dois: list[str]) -> Path:
    """One DOI a line."""
    path.write_text("".join(f"{d}\n" for d in dois))
    return path


def alm_env(**extra: str) -> dict[str, str]:
    """The environment of an `alm` process of the fault suite: none of the caller's ALM_*
    settings, every source of the offline stub unthrottled (1,000 requests/s), quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALM_")}
    env.update({f"ALM_{name.upper()}_RATE": "1000" for name in SOURCES})
    env.update(ALM_LOG_LEVEL="warning", ALM_SHUTDOWN_GRACE="10", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def fetching_sources() -> list[str]:
    """The sources `alm run` uses with `alm_env()` (those that need no credentials)."""
    return [s.name for s in selected_sources(Settings())]


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def reap() -> Iterator[None]:
    """Kill (by its pid) every `alm` process a test started and left running, pass or fail
    (a test module imports this fixture to use it)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class Alm:
    """An `alm` process whose output lines the test can wait for."""

    proc: subprocess.Popen[str]
    log: Path
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, data: Path, *args: str, log: Path, **env: str) -> Alm:
        """`alm --data-dir DATA ARGS...`, stderr to `log`."""
        with log.open("a") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli.main", "--data-dir", str(data), *args],
                cwd=REPO,
                env=alm_env(**env),
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        _STARTED.append(proc)
        alm = cls(proc, log)
        alm.reader = threading.Thread(target=alm._read, daemon=True)
        alm.reader.start()
        return alm

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, match: Callable[[str], bool], timeout: float) -> str:
        """The first output line `match` accepts; AssertionError naming what came instead if
        none within `timeout` seconds or the process ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((ln for ln in self.lines if match(ln)), None)
            if found is not None:
                return found
            if self.proc.poll() is not None and self.reader and not self.reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no such line within {timeout} s; {self.describe()}")

    def wait_exit(self, timeout: float) -> int:
        """The exit code once all its output is read; AssertionError if it has not ended
        within `timeout` seconds (it is killed then)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout} s; {self.describe()}") from None
        self._close()
        return code

    def _close(self) -> None:
        if self.reader is not None:
            self.reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def signal(self, sig: int) -> None:
        """Send `sig` (SIGKILL: the process dies at once, nothing runs)."""
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill -9, and wait for the process to be gone."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._close()

    def describe(self) -> str:
        """Output and log tail, for failure messages."""
        log = self.log.read_text(errors="replace").splitlines()[-30:] if self.log.exists() else []
        return (
            f"exit {self.proc.poll()}\n--- stdout ---\n"
            + "\n".join(self.lines[-30:])
            + f"\n--- {self.log.name} ---\n"
            + "\n".join(line[:300] for line in log)
        )


def changes_in(line: str) -> int:
    """The metric changes a `refreshes: ...` summary line reports."""
    return int(line.split("; ")[1].split(" metric changes")[0])


@dataclass(frozen=True)
class Baseline:
    """What an undisturbed run stores: per (work, source) the status and totals."""

    states: dict[Pair, tuple[str, dict[str, int]]]
    changes: int  # metric-change events it published

    def changing(self, pairs: set[Pair] | None = None) -> int:
        """How many of `pairs` (all if None) publish a change when first refreshed: those
        whose totals are not all zero."""
        return sum(
            any(m.values())
            for pair, (_, m) in self.states.items()
            if pairs is None or pair in pairs
        )


_BASELINES: dict[tuple[str, ...], Baseline] = {}


async def baseline(dois: list[str], tmp: Path) -> Baseline:
    """The undisturbed run of `dois` (computed once per set of works and kept)."""
    key = tuple(dois)
    if key not in _BASELINES:
        _BASELINES[key] = await _undisturbed(dois, tmp)
    return _BASELINES[key]


async def _undisturbed(dois: list[str], tmp: Path) -> Baseline:
    app = stub_server.init_app(SOURCES, FIXTURES, synthetic=True)
    runner, root = await stub_server.start(app)
    store = SqliteStore(tmp / "baseline.sqlite")
    try:
        await store.migrate()
        bus = MemoryBus()
        settings = Settings(data_dir=tmp, upstream_root=root, sources=tuple(fetching_sources()))
        http = HttpSettings(retries=0, rates={name: 1000.0 for name in SOURCES})
        pipeline = make_pipeline(settings, bus, store, rng=random.Random(3), http=http)
        async with pipeline.caller:
            scheduling = pipeline.scheduler.scheduling
            await register(dois, store, bus, datetime.now(UTC), scheduling)
            await refresh_until_idle(pipeline)
        rows = await store.states_for(dois)
        states = {
            (w, s.source): (s.status.value if s.status else "", dict(s.metrics))
            for w, found in rows.items()
            for s in found
        }
        return Baseline(states, pipeline.aggregator.changes)
    finally:
        await store.close()
        await runner.cleanup()


def stored_pairs(db: Path) -> set[Pair]:
    """The (work, source) pairs with a stored state (read while another process writes)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return {(w, s) for w, s in conn.execute("SELECT work_id, source FROM source_totals")}


@dataclass
class Reconciliation:
    """What a run left, against the undisturbed run."""

    pairs: int = 0
    lost: list[Pair] = field(default_factory=list)
    wrong: list[Pair] = field(default_factory=list)
    stuck: list[tuple[Pair, str]] = field(default_factory=list)
    history: list[Pair] = field(default_factory=list)

    def problems(self) -> dict[str, int]:
        """Counts of each kind of problem (all zero when the run lost nothing)."""
        return {
            "lost": len(self.lost),
            "wrong": len(self.wrong),
            "stuck": len(self.stuck),
            "duplicated or wrong history": len(self.history),
        }

    def __str__(self) -> str:
        examples = {
            "lost": self.lost[:5],
            "wrong": self.wrong[:5],
            "stuck": self.stuck[:5],
            "history": self.history[:5],
        }
        return f"{self.pairs} pairs: {self.problems()}; e.g. {examples}"


def reconcile(db: Path, dois: list[str], want: Baseline, now: datetime) -> Reconciliation:
    """Compare the SQLite file `db` with the undisturbed run, pair by pair."""
    sources = [SOURCES[name] for name in fetching_sources()]
    expected = [(d, s.name) for d in dois for s in sources if s.fetchable(WorkRef(d, doi=d))]
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        states = {
            (w, s): json.loads(raw)
            for w, s, raw in conn.execute("SELECT work_id, source, state FROM source_totals")
        }
        history: dict[Pair, list[dict[str, int]]] = {}
        for w, s, metrics in conn.execute("SELECT work_id, source, metrics FROM source_history"):
            history.setdefault((w, s), []).append(json.loads(metrics))
        columns = {row[1] for row in conn.execute("PRAGMA table_info(due)")}
        leased = "leased" if "leased" in columns else "0"  # a file from before leases
        due = {
            (w, s): (at, bool(held))
            for s, w, at, held in conn.execute(f"SELECT source, work_id, due_at, {leased} FROM due")
        }
    out = Reconciliation(pairs=len(expected))
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for pair in expected:
        state = states.get(pair)
        if state is None:
            out.lost.append(pair)
            continue
        status, metrics = state.get("status"), state.get("metrics")
        if (status, metrics) != want.states.get(pair):
            out.wrong.append(pair)
        entry = due.get(pair)
        if status == "error":
            out.stuck.append((pair, f"error: {state.get('error')}"))
        elif entry is None:
            out.stuck.append((pair, "no due entry"))
        elif entry[1]:
            out.stuck.append((pair, f"still leased until {entry[0]}"))
        elif entry[0] <= stamp:
            out.stuck.append((pair, f"due at {entry[0]}, not refreshed"))
        if history.get(pair) != [metrics]:
            out.history.append(pair)
    return out
