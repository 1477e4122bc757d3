"""The wall clock production runs with (tests pass their own)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time in UTC (the clock every service gets)."""
    return datetime.now(UTC)
