"""What `/sources` and `/api/v1/sources` show of each source's recent work, read cheaply from
what is already kept: the fetchers' hourly activity windows (a week of them, one row per
source, hour and fetcher instance: services/core/activity.py) and the due index.

- last successful fetch: the newest `last_ok` of the source's windows (the week kept);
- error rate in 24 h: failed refreshes over refreshes, the last 24 hourly windows;
- calls per refresh: upstream calls over refreshes, the same windows (a batching source makes
  fewer calls than refreshes, a paging one more);
- works due: entries of the source due now, read from the due index up to DUE_CAP (shown as
  "at least" beyond it: the read is bounded, not a count of the whole index).

The whole set is one read of the windows and one bounded due read per source, kept for
ALM_STATUS_CACHE_SECONDS per API process (the TotalsCache)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from services.api.state import ACTIVITY, CATALOG, CLOCK, STORE, TOTALS
from services.core.activity import add_up

DUE_CAP = 1000  # due entries read per source at most
WEEK, DAY = timedelta(days=7), timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class SourceFigures:
    """One source's recent figures (None: not known, e.g. no activity kept)."""

    last_ok: datetime | None
    refreshes: int
    error_rate: float | None
    calls_per_refresh: float | None
    due: int
    due_capped: bool

    def json(self) -> dict[str, Any]:
        return {
            "last_success": self.last_ok.isoformat() if self.last_ok else None,
            "refreshes_24h": self.refreshes,
            "error_rate_24h": self.error_rate,
            "calls_per_refresh": self.calls_per_refresh,
            "works_due": self.due,
            "works_due_capped": self.due_capped,
        }


async def _compute(app: web.Application) -> dict[str, SourceFigures]:
    now = app[CLOCK]()
    store, names = app[STORE], [name for name in app[CATALOG]]
    activity = app.get(ACTIVITY)
    windows = await activity.activity(now - WEEK) if activity is not None else []
    week = add_up(windows)
    day = add_up(w for w in windows if w.hour > now - DAY)  # the 24 hours up to this one
    due = await asyncio.gather(*(store.due(name, now, DUE_CAP) for name in names))
    out = {}
    for name, entries in zip(names, due, strict=True):
        recent = day.get(name)
        refreshes = recent.refreshes if recent else 0
        out[name] = SourceFigures(
            last_ok=week[name].last_ok if name in week else None,
            refreshes=refreshes,
            error_rate=round(recent.failed / refreshes, 4) if recent and refreshes else None,
            calls_per_refresh=round(recent.calls / refreshes, 2) if recent and refreshes else None,
            due=len(entries),
            due_capped=len(entries) >= DUE_CAP,
        )
    return out


async def source_figures(app: web.Application) -> dict[str, SourceFigures]:
    """Every installed source's figures (kept a few seconds)."""
    figures: dict[str, SourceFigures] = await app[TOTALS].get(
        "source_figures", lambda: _compute(app)
    )
    return figures
