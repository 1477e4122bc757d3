"""ISO 8601 conversion for the UTC timestamps carried in events and rows."""

from __future__ import annotations

from datetime import UTC, date, datetime


def to_iso(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a `Z` suffix."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; ALM keeps every timestamp in UTC")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (with `Z` or an offset; naive means UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_date(text: str | None) -> date | None:
    """Parse `YYYY`, `YYYY-MM` or `YYYY-MM-DD` into a date (missing parts are 1); None passes."""
    if not text:
        return None
    parts = [int(p) for p in text[:10].split("-") if p]
    while len(parts) < 3:
        parts.append(1)
    return date(parts[0], parts[1], parts[2])


def to_alm_time(moment: datetime) -> str:
    """ALM's timestamp form, `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds): what v3/v5 clients
    parse with `strptime('%Y-%m-%dT%H:%M:%SZ')` (pyalm) or `new Date()` (almviz)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; ALM keeps every timestamp in UTC")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def alm_time_of(text: str | None) -> str | None:
    """An upstream's timestamp (ISO 8601, a date, or a Unix time) in ALM's form; None when it
    is absent or names less than a day (a year or a month is not a moment)."""
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:  # a year ("2021") is a number too: Unix times are far larger
        return to_alm_time(datetime.fromtimestamp(seconds, UTC)) if 1e8 < seconds < 1e11 else None
    if len(text) < 10:
        return None
    try:
        return to_alm_time(from_iso(text))
    except ValueError:
        return None
