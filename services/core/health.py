"""When a source that keeps failing is paused: ALM disabled a source after more than 200 errors
in 24 hours; credentials refused (401/403) pause it at once. Pure: time is passed in."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.core.events import FetchError


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Whether a source is paused, why and since when (shown by the API and `alm sources`)."""

    source: str
    paused: bool = False
    reason: str | None = None
    since: datetime | None = None


@dataclass(slots=True)
class ErrorWindow:
    """Failed refreshes of one source over a sliding window."""

    limit: int = 200  # 0: never pause for failures
    window: timedelta = timedelta(hours=24)
    times: deque[datetime] = field(default_factory=deque)

    def record(self, error: FetchError, at: datetime) -> str | None:
        """Count one failure; returns the reason to pause the source, or None."""
        if error.http_status in (401, 403) and not error.retryable:
            return f"credentials refused (HTTP {error.http_status}): {error.message}"
        if not self.limit:
            return None
        self.times.append(at)
        while self.times and self.times[0] <= at - self.window:
            self.times.popleft()
        if len(self.times) > self.limit:
            hours = self.window.total_seconds() / 3600
            last = f"{error.kind}: {error.message}"
            return f"{len(self.times)} failed refreshes in {hours:g} h; last: {last}"
        return None

    def reset(self) -> None:
        """Forget past failures (after an operator resumes the source)."""
        self.times.clear()
