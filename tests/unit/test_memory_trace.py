"""ALM_TRACE_MEMORY: the allocation growth a service logs names the line that grew; and freed
memory handed back to the kernel (malloc_trim) every ALM_MALLOC_TRIM_SECONDS."""

from __future__ import annotations

import time
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


# -- giving freed memory back


class FakeLibc:
    def __init__(self) -> None:
        self.trims: list[int] = []
        self.options: list[tuple[int, int]] = []

    def malloc_trim(self, pad: int) -> int:
        self.trims.append(pad)
        return 1

    def mallopt(self, option: int, value: int) -> int:
        self.options.append((option, value))
        return 1


def test_freed_memory_is_given_back_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = FakeLibc()
    monkeypatch.setattr(memory, "_glibc", lambda: libc)
    monkeypatch.setenv("ALM_MALLOC_TRIM_SECONDS", "0.01")
    stop = memory.give_back("test")
    assert stop is not None
    deadline = time.monotonic() + 5
    while len(libc.trims) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    assert libc.trims[:3] == [0, 0, 0]
    assert libc.options == [(memory.M_ARENA_MAX, memory.ARENAS)]


@pytest.mark.parametrize(("raw", "seconds"), [("", 30.0), ("0", 0.0), ("5", 5.0), ("soon", 30.0)])
def test_the_trim_interval_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, seconds: float
) -> None:
    monkeypatch.setenv("ALM_MALLOC_TRIM_SECONDS", raw)
    assert memory.trim_seconds() == seconds


def test_trimming_off_or_without_glibc_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = FakeLibc()
    monkeypatch.setattr(memory, "_glibc", lambda: libc)
    monkeypatch.setenv("ALM_MALLOC_TRIM_SECONDS", "0")
    assert memory.give_back("test") is None and not libc.options
    monkeypatch.setenv("ALM_MALLOC_TRIM_SECONDS", "1")
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    assert memory.give_back("test") is None


def test_this_machines_glibc_is_found_and_trims() -> None:
    libc = memory._glibc()
    assert libc is not None  # Linux with glibc, as the images and CI are
    assert libc.malloc_trim(0) in (0, 1)
