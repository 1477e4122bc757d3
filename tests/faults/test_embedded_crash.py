"""`alm run --offline` killed (kill -9) or stopped (SIGTERM) mid-way, then started again: every
registered work ends refreshed from every source that can fetch it, with the undisturbed run's
totals, one history point each, nothing left leased or unscheduled, nothing refreshed or
announced twice. Prints how long each recovery took."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.faults.embedded_oracle import (
    SUMMARY,
    Alm,
    Baseline,
    baseline,
    changes_in,
    fetching_sources,
    reap,  # noqa: F401 (autouse: ends what a test left)
    reconcile,
    stored_pairs,
    synthetic_works,
    write_works,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

WORKS = synthetic_works(800, "crash")
CLEAN = {"lost": 0, "wrong": 0, "stuck": 0, "duplicated or wrong history": 0}


@pytest.fixture(scope="module")
def want(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The undisturbed run of WORKS."""
    started = time.monotonic()
    found = asyncio.run(baseline(WORKS, tmp_path_factory.mktemp("baseline")))
    print(f"\n[faults] baseline: {len(found.states)} pairs in {time.monotonic() - started:.1f} s")
    return found


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(tmp: Path, name: str, *extra: str) -> Alm:
    works = tmp / "works.txt"
    if not works.exists():
        write_works(works, WORKS)
    args = ("run", "--offline", "--port", str(_port()), "--works", str(works), *extra)
    return Alm.start(tmp / "data", *args, log=tmp / f"{name}.log")


def _total() -> int:
    return len(WORKS) * len(fetching_sources())


def _wait_stored(tmp: Path, alm: Alm, share: float, timeout: float = 240) -> None:
    """Until `share` of the pairs have a state (the refresh is well under way)."""
    db, deadline = tmp / "data" / "alm.sqlite", time.monotonic() + timeout
    while len(stored_pairs(db)) < share * _total():
        assert alm.proc.poll() is None, alm.describe()
        assert time.monotonic() < deadline, f"refresh too slow; {alm.describe()}"
        time.sleep(0.2)


def _finish(tmp: Path, want: Baseline, before: set[tuple[str, str]], what: str) -> int:
    """Start again with --once; check it refreshes exactly what was left and that the file
    then reconciles. Returns the metric changes the restart published."""
    restarted = time.monotonic()
    again = _run(tmp, f"{what}-restart", "--once")
    summary = again.wait_line(lambda ln: ln.startswith(SUMMARY) and "requested" in ln, 400)
    recovered = time.monotonic() - restarted
    assert again.wait_exit(60) == 0, again.describe()
    left = _total() - len(before)
    print(
        f"\n[faults] {what}: {len(before)}/{_total()} pairs stored when it ended; the restart "
        f"refreshed the other {left} and was done in {recovered:.1f} s"
    )
    result = reconcile(tmp / "data" / "alm.sqlite", WORKS, want, datetime.now(UTC))
    assert result.problems() == CLEAN, str(result)
    assert summary.startswith(f"{SUMMARY}{left} requested, {left} done, 0 errors"), summary
    return changes_in(summary)


def test_kill_9_mid_refresh_then_restart(tmp_path: Path, want: Baseline) -> None:
    """kill -9 with refreshes in flight: the restart refreshes at once what was in flight (its
    leases are released) and what was not yet handed out, and nothing twice."""
    first = _run(tmp_path, "kill")
    first.wait_line(lambda ln: ln.startswith("works: "), 120)
    _wait_stored(tmp_path, first, 0.25)
    first.kill()
    stored = stored_pairs(tmp_path / "data" / "alm.sqlite")
    assert len(stored) < _total(), "the run ended before it was killed"

    changes = _finish(tmp_path, want, stored, "kill -9 mid-refresh")

    unstored = set(want.states) - stored
    assert changes == want.changing(unstored)  # none announced again


def test_kill_9_right_after_registration_then_restart(tmp_path: Path, want: Baseline) -> None:
    """kill -9 as soon as the works are reported registered: they were scheduled in the same
    write, so the restart (which finds them all known) refreshes every one."""
    first = _run(tmp_path, "registered")
    first.wait_line(lambda ln: ln.startswith("works: "), 120)
    first.kill()
    stored = stored_pairs(tmp_path / "data" / "alm.sqlite")

    _finish(tmp_path, want, stored, "kill -9 after registration")


def test_sigterm_mid_refresh_stops_cleanly_then_restart(tmp_path: Path, want: Baseline) -> None:
    """The API answers while the first refresh runs; SIGTERM mid-refresh exits 0 within the
    grace period, having recorded what it fetched; the restart does the rest, and every change
    is announced once over the two runs."""
    first = _run(tmp_path, "sigterm")
    api = first.wait_line(lambda ln: ln.startswith("API: "), 120).removeprefix("API: ")
    with urllib.request.urlopen(f"{api}?per_page=1", timeout=5) as resp:
        assert resp.status == 200
    _wait_stored(tmp_path, first, 0.25)
    assert not any(ln.startswith(SUMMARY) for ln in first.lines), "refresh already done"

    stopping = time.monotonic()
    first.signal(signal.SIGTERM)
    code = first.wait_exit(40)
    took = time.monotonic() - stopping
    stopped = first.wait_line(lambda ln: "stopped before done" in ln, 5)
    assert code == 0, first.describe()
    print(f"\n[faults] SIGTERM mid-refresh: stopped in {took:.1f} s (grace 10 s)")
    stored = stored_pairs(tmp_path / "data" / "alm.sqlite")

    changes = _finish(tmp_path, want, stored, "SIGTERM mid-refresh")

    assert changes_in(stopped) + changes == want.changing()


def test_sigterm_at_start_up_stops_cleanly_then_restart(tmp_path: Path, want: Baseline) -> None:
    """SIGTERM while the run is still starting (registering its works) is handled: a clean
    exit, and the restart refreshes every work."""
    first = _run(tmp_path, "early")
    first.wait_line(lambda ln: ln.startswith("ALM embedded: "), 120)
    first.signal(signal.SIGTERM)
    assert first.wait_exit(40) == 0, first.describe()
    stored = stored_pairs(tmp_path / "data" / "alm.sqlite")

    _finish(tmp_path, want, stored, "SIGTERM at start-up")
