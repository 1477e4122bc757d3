"""`alm publishers import` killed with SIGKILL half-way through a catalogue (the real process,
against the stub upstream's Crossref catalogue), then run again: every work exactly once, with
its metadata and every due entry it is owed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.settings import REPO_ROOT
from tests.publishers_kit import (
    CATALOGUE,
    Upstream,
    exactly_once,
    safe_works,
    upstream_fixture,  # noqa: F401 (the `upstream` fixture)
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def test_a_kill_9_half_way_then_a_rerun_registers_every_work_once(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The real thing: `alm publishers import` killed with SIGKILL while it imports, then run
    again, ends with every work exactly once."""
    env = {**os.environ, "ALM_CROSSREF_RATE": "15", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "services.cli.main", "--data-dir", str(tmp_path)]
    command += ["publishers", "import", "--member", "340", "--rows", "50"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (tmp_path / "alm.sqlite").exists() and len(safe_works(tmp_path)) >= 400:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert 0 < len(safe_works(tmp_path)) < CATALOGUE
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming the import of member:340" in done.stderr
    exactly_once(tmp_path, upstream)
