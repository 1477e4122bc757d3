"""Logs name an id bounded and printable: a 7 MB id with terminal escapes neither floods nor
forges the log (checked in a subprocess, as `alm` configures logging at start-up)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import structlog
from services.logsetup import configure
configure("info")
log = structlog.get_logger("alm.test")
huge = "10.1234/\\x1b[31m" + "a" * 7_000_000
log.warning("refresh_failed_for_good", work=huge, reason="http: " + "b" * 50_000, attempt=1)
try:
    raise ValueError(huge)
except ValueError:
    log.exception("step_failed", key=huge)
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_a_huge_hostile_id_is_logged_bounded_and_escaped(as_json: bool) -> None:
    """Each line stays under 25 kB (the id at most 200 characters), with no raw ESC."""
    env = {"ALM_LOG_JSON": "1"} if as_json else {}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env={**env, "PATH": ""},
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    err = done.stderr
    assert "\x1b" not in err
    assert len(err) < 25_000 * 2
    assert "refresh_failed_for_good" in err and "step_failed" in err
    assert "7000013 chars" in err
    if as_json:
        first = json.loads(err.splitlines()[0])
        assert len(first["work"]) <= 200
        assert first["work"].startswith("10.1234/\\x1b[31m")
        assert len(first["reason"]) <= 2000
