"""The progress display of long CLI jobs: a line rewritten in place on a terminal, plain
periodic lines elsewhere, nothing for a job shorter than one update."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from services import registration
from services.cli.main import main
from services.cli.progress import Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_every_few_seconds_with_count_share_and_rate() -> None:
    """Not on a terminal: one full line per period, then the final count and duration."""
    clock, out = Clock(), io.StringIO()
    with Progress(
        "registering", "works", total=100_000, stream=out, interactive=False, clock=clock
    ) as p:
        for _ in range(20):
            clock.now += 1.0
            p.advance(2_500)
    lines = out.getvalue().splitlines()
    assert lines[0] == "registering: 12,500 of 100,000 (12%) works, 2,500/s, 35s left"
    assert len(lines) == 5  # at 5, 10, 15, 20 s, and the final line
    assert lines[-1] == "registering: 50,000 of 100,000 (50%) works, 2,500/s in 20.0 s"
    assert "\r" not in out.getvalue()


def test_terminal_line_is_rewritten_in_place() -> None:
    """On a terminal the line is redrawn (carriage return, erase) and ended once."""
    clock, out = Clock(), io.StringIO()
    with Progress("importing", "lines", stream=out, interactive=True, clock=clock) as p:
        for _ in range(10):
            clock.now += 0.5
            p.advance(10)
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 11
    assert text.count("\n") == 1
    assert text.rstrip("\n").endswith("importing: 100 lines, 20/s in 5.0 s")


def test_a_short_job_shows_nothing() -> None:
    """A job done before the first update is due prints nothing at all."""
    out = io.StringIO()
    with Progress(
        "registering", "works", total=3, stream=out, interactive=False, clock=Clock()
    ) as p:
        p.advance(3)
    assert out.getvalue() == ""


def test_a_large_import_shows_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alm works import` of a large file prints progress lines with count, share and rate."""
    path = tmp_path / "many.txt"
    path.write_text("".join(f"10.5555/w{i}\n" for i in range(3000)))
    original = Progress.__init__

    def every_step(self: Progress, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "every": 0.0})

    monkeypatch.setattr(registration, "BULK_CHUNK", 500)
    monkeypatch.setattr(Progress, "__init__", every_step)
    code = main(["--data-dir", str(tmp_path / "data"), "works", "import", str(path)])
    err = capsys.readouterr().err
    assert code == 0
    assert "registering: 500 of 3,000 (16%) works" in err
    assert "registering: 3,000 of 3,000 (100%) works" in err


def test_on_a_terminal_a_bar_with_the_time_left() -> None:
    """With a total, the terminal line has a bar, the share, the rate and the time left; the
    final line drops the bar and the time left."""
    clock, out = Clock(), io.StringIO()
    with Progress(
        "importing", "works", total=1000, stream=out, interactive=True, clock=clock, every=1.0
    ) as p:
        clock.now += 2.0
        p.advance(250)
    frames = [f for f in out.getvalue().split("\r\x1b[K") if f]
    assert frames[0] == (
        "importing [######..................] 250 of 1,000 (25%) works, 125/s, 6s left"
    )
    assert frames[-1] == "importing: 250 of 1,000 (25%) works, 125/s in 2.0 s\n"


def test_a_resumed_job_counts_only_its_own_rate_and_can_go_back() -> None:
    """Started at `done=`, the rate is this run's; `moveto` may go back (a window started
    again) and the time left follows; a total learned late is used from then on."""
    clock, out = Clock(), io.StringIO()
    p = Progress("importing", "works", stream=out, interactive=False, clock=clock, done=4000)
    clock.now += 10.0
    p.moveto(5000)
    assert p.rate() == 100.0 and p.left() is None
    p.total = 10_000
    assert p.left() == 50.0
    p.moveto(4500)
    assert p.line() == "importing: 4,500 of 10,000 (45%) works, 50/s, 1m50s left"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (59.4, "59s"), (61, "1m01s"), (3599, "59m59s"), (3600 * 26 + 125, "26h02m")],
)
def test_time_left_is_shown_to_the_precision_that_matters(seconds: float, shown: str) -> None:
    """Seconds under a minute, minutes and seconds under an hour, then hours and minutes."""
    assert duration(seconds) == shown


def test_a_note_gets_a_line_of_its_own() -> None:
    """A note clears the progress line on a terminal and is never overwritten by it."""
    clock, out = Clock(), io.StringIO()
    p = Progress("importing", "works", total=10, stream=out, interactive=True, clock=clock)
    clock.now += 1.0
    p.advance(1)
    p.note("  window 2 of 5: starting it again")
    assert out.getvalue().endswith("\r\x1b[K  window 2 of 5: starting it again\n")
    p.advance(1)  # redrawn at once after a note
    assert out.getvalue().endswith("2 of 10 (20%) works, 2/s, 4s left")
