"""Cassandra adapters of the data-quality ports (services/core/alerts.py,
services/core/activity.py), sharing the CassandraStore's session (tables: migration 007).

- Alerts: partitions by day; an alert is a conditional insert (`IF NOT EXISTS`, LWT), so the
  first of a (day, kind, source, work) is kept and the caller learns which were new (alerts
  are few: a lightweight transaction each is affordable). A listing reads the day partitions
  newest first (no further back than the alerts' TTL), page by page, and stops once it has a
  page.
- Fetch activity: partitions by day, a row per (hour, source, instance), default TTL 8 days.
- Stale states: a paged scan of `source_totals` (every row once, 5,000 a page), keeping the
  `per_source` oldest of each source in a bounded heap: O(states) reads, O(sources x
  per_source) memory. The periodic checks run it once a day (ALM_CHECKS_STALE_INTERVAL).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cassandra.query import UNSET_VALUE

from services.adapters.cassandra.extension import Extension
from services.adapters.cassandra.rows import dt as _dt
from services.adapters.cassandra.rows import dt_required as _dt_required
from services.adapters.cassandra.rows import us as _us
from services.adapters.cassandra.session import Row
from services.adapters.cassandra.store import CassandraStore
from services.core.activity import FetchWindow, StaleState, hour_of
from services.core.alerts import Alert, AlertQuery, details_json, key_after

STATEMENTS = {
    "alert_put": "INSERT INTO alerts (day, kind, source, work_id, at, message, details)"
    " VALUES (?,?,?,?,?,?,?) IF NOT EXISTS USING TTL ?",
    "alerts_of_day": "SELECT kind, source, work_id, at, message, details FROM alerts WHERE day=?",
    "activity_put": "INSERT INTO fetch_activity (day, hour, source, instance, calls, unanswered,"
    " latency, refreshes, failed, last_ok) VALUES (?,?,?,?,?,?,?,?,?,?)",
    "activity_of_day": "SELECT hour, source, instance, calls, unanswered, latency, refreshes,"
    " failed, last_ok FROM fetch_activity WHERE day=? AND hour>=?",
    "states_scan": "SELECT work_id, source, retrieved_at, status FROM source_totals",
}
PAGE = 1000  # alert rows read at a time


class CassandraChecks(Extension):
    """AlertStore, ActivityStore and StaleScan over a CassandraStore's session."""

    def __init__(self, store: CassandraStore, alert_ttl: timedelta = timedelta(days=90)) -> None:
        super().__init__(store, STATEMENTS)
        self._alert_ttl = alert_ttl

    # -- alerts -------------------------------------------------------------------------

    async def add_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store the alerts whose (day, kind, source, work) is new; returns those."""
        cql = await self._cql()
        ttl = int(self._alert_ttl.total_seconds())
        first: dict[tuple[date, str, str, str], Alert] = {}
        for alert in alerts:
            first.setdefault(alert.key, alert)
        unique = list(first.values())
        calls = [
            ("alert_put", (*a.key, _us(a.at), a.message, details_json(a), ttl)) for a in unique
        ]
        results = await cql.run_many(calls)
        return [a for a, rows in zip(unique, results, strict=True) if rows and rows[0][0]]

    async def alerts(self, query: AlertQuery) -> list[Alert]:
        """A page of alerts, newest day first, then by kind, source and work."""
        cql = await self._cql()
        today = self.store.clock().astimezone(UTC).date()
        oldest = max(query.since.date(), today - self._alert_ttl - timedelta(days=1))
        day = min(today, query.after[0]) if query.after is not None else today
        out: list[Alert] = []
        while day >= oldest and len(out) < query.limit:
            async for rows in cql.pages(cql.stmt("alerts_of_day"), (day,), fetch_size=PAGE):
                out += [a for a in map(_alert, rows) if _wanted(a, query)]
                if len(out) >= query.limit:
                    break
            day -= timedelta(days=1)
        return out[: query.limit]

    # -- fetch activity -----------------------------------------------------------------

    async def record_activity(self, windows: Sequence[FetchWindow]) -> None:
        """Store each window, replacing what its instance stored for that hour."""
        cql = await self._cql()
        await cql.run_many(cql.batches(("activity_put", _activity_row(w)) for w in windows))

    async def activity(self, since: datetime) -> list[FetchWindow]:
        """Every window of an hour starting at or after `since`'s hour."""
        cql = await self._cql()
        start = hour_of(since)
        days: list[date] = []
        day = start.date()
        while day <= self.store.clock().astimezone(UTC).date():
            days.append(day)
            day += timedelta(days=1)
        pages = await cql.run_many(("activity_of_day", (d, _us(start))) for d in days)
        return sorted(
            (_window(r) for rows in pages for r in rows),
            key=lambda w: (w.hour, w.source, w.instance),
        )

    # -- stale states -------------------------------------------------------------------

    async def stale_states(
        self, before: datetime, per_source: int
    ) -> tuple[list[StaleState], dict[str, int]]:
        """Up to `per_source` states of each source last refreshed before `before` (oldest
        first), and how many each source has in all: one paged pass over source_totals."""
        cql = await self._cql()
        cutoff = _us(before)
        heaps: dict[str, list[tuple[int, str]]] = {}  # per source: (-retrieved_at, work)
        counts: dict[str, int] = {}
        async for rows in cql.pages(cql.stmt("states_scan"), (), fetch_size=5000):
            for r in rows:
                if not r.status or r.retrieved_at is None or r.retrieved_at >= cutoff:
                    continue
                counts[r.source] = counts.get(r.source, 0) + 1
                heap = heaps.setdefault(r.source, [])
                item = (-int(r.retrieved_at), r.work_id)
                if len(heap) < per_source:
                    heapq.heappush(heap, item)
                elif per_source and item > heap[0]:
                    heapq.heapreplace(heap, item)
        found = [
            StaleState(work, source, _dt_required(-neg))
            for source in sorted(heaps)
            for neg, work in sorted(heaps[source], reverse=True)
        ]
        return found, counts


def _alert(row: Row) -> Alert:
    return Alert.from_row(
        row.kind, _dt_required(row.at), row.message, row.source, row.work_id, row.details
    )


def _wanted(alert: Alert, query: AlertQuery) -> bool:
    return query.admits(alert) and key_after(alert.key, query.after)


def _activity_row(w: FetchWindow) -> tuple[Any, ...]:
    return (
        w.hour.date(),
        _us(w.hour),
        w.source,
        w.instance,
        w.calls,
        w.unanswered,
        list(w.latency),
        w.refreshes,
        w.failed,
        _us(w.last_ok) if w.last_ok else UNSET_VALUE,
    )


def _window(row: Row) -> FetchWindow:
    return FetchWindow(
        row.source,
        _dt_required(row.hour),
        row.instance,
        row.calls,
        row.unanswered,
        tuple(row.latency),
        row.refreshes,
        row.failed,
        _dt(row.last_ok),
    )
