"""ALM_TRACE_MEMORY: the allocation growth a service logs names the line that grew."""

from __future__ import annotations

import tracemalloc

import pytest

from services.telemetry import memory


def test_growth_names_the_line_that_allocated() -> None:
    tracemalloc.start(memory.FRAMES)
    try:
        baseline = tracemalloc.take_snapshot()
        kept = [bytearray(4096) for _ in range(500)]  # about 2 MB held from this line
        lines = memory.growth(baseline, tracemalloc.take_snapshot(), 3)
    finally:
        tracemalloc.stop()
    assert len(kept) == 500
    top = lines[0]
    assert top.startswith(f"{__file__}:")
    assert int(top.split(" +")[1].split(" KiB")[0]) >= 1900


@pytest.mark.parametrize(
    ("raw", "want"), [("", None), ("120", 120.0), ("0", None), ("soon", None), (" 5 ", 5.0)]
)
def test_interval_reads_seconds_and_refuses_the_rest(
    raw: str, want: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALM_TRACE_MEMORY", raw)
    assert memory.interval() == want
