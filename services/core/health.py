"""When a source that keeps failing is paused: ALM disabled a source after more than 200 errors
in 24 hours; credentials refused (401/403) pause it at once. Pure: time is passed in.

Only the source's own failures count: 5xx and 408 answers, timeouts, refused connections,
malformed answers, a configuration it cannot run with, and a call the upstream refuses as such
(its error body says a parameter is not accepted: `Source.refused_call`). A 4xx about an
identifier the upstream refuses, a 404 and a 429 (handled by pacing) never do: otherwise anyone
able to register identifiers could switch a source off for everyone."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.core.events import FetchError
from services.core.text import ERROR_LIMIT, bounded


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Whether a source is paused, why and since when (shown by the API and `alm sources`)."""

    source: str
    paused: bool = False
    reason: str | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.reason is not None and len(self.reason) > ERROR_LIMIT:
            object.__setattr__(self, "reason", bounded(self.reason, ERROR_LIMIT))


# refused_call: the upstream refuses the call as such (a parameter or route it no longer takes)
OWN_FAILURES = frozenset({"timeout", "connection", "parse", "config", "refused_call"})


def source_failure(error: FetchError) -> bool:
    """Whether `error` is a failure of the source itself (counted toward pausing it)."""
    if error.kind == "http":
        status = error.http_status
        return status is None or status >= 500 or status == 408
    return error.kind in OWN_FAILURES


@dataclass(slots=True)
class ErrorWindow:
    """Failed refreshes of one source over a sliding window."""

    limit: int = 200  # 0: never pause for failures
    window: timedelta = timedelta(hours=24)
    times: deque[datetime] = field(default_factory=deque)

    def record(self, error: FetchError, at: datetime) -> str | None:
        """Count one failure if it is the source's own; returns the reason to pause the source,
        or None."""
        if error.http_status in (401, 403) and not error.retryable:
            return f"credentials refused (HTTP {error.http_status}): {error.message}"
        if not self.limit or not source_failure(error):
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
