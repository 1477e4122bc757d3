"""CSL-JSON for the items that cite or mention a work (ALM's `events_csl`), and per-period counts
derived from event dates."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from services.core.events import PeriodCount

_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")


def date_parts(text: Any) -> list[int] | None:
    """`[year, month?, day?]` of an ISO date or date-time prefix (`2021`, `2021-03-10T...`)."""
    match = _DATE.match(str(text or ""))
    if not match:
        return None
    parts = [int(g) for g in match.groups() if g is not None]
    if len(parts) > 1 and not 1 <= parts[1] <= 12:
        return parts[:1]
    return parts


def csl_item(
    *,
    title: Any = None,
    authors: Iterable[str] = (),
    container: Any = None,
    issued: Any = None,
    url: str | None = None,
    doi: str | None = None,
    kind: str = "article-journal",
) -> dict[str, Any]:
    """A CSL-JSON item from what an upstream tells about a citing/mentioning item."""
    item: dict[str, Any] = {"type": kind}
    if isinstance(title, str) and title.strip():
        item["title"] = " ".join(title.split())
    names = [{"literal": a.strip()} for a in authors if isinstance(a, str) and a.strip()]
    if names:
        item["author"] = names
    if isinstance(container, str) and container.strip():
        item["container-title"] = container.strip()
    parts = date_parts(issued)
    if parts:
        item["issued"] = {"date-parts": [parts]}
    if doi:
        item["DOI"] = doi
    if url:
        item["URL"] = url
    return item


def year_periods(metric: str, dates: Iterable[Any]) -> tuple[PeriodCount, ...]:
    """Counts per year (`YYYY`) of the dated events; undated events count in no period."""
    years = Counter(f"{parts[0]:04d}" for parts in map(date_parts, dates) if parts)
    return tuple(PeriodCount(metric, year, n) for year, n in sorted(years.items()))
