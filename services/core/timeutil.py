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
