"""SQLite adapters of the data-quality ports (services/core/alerts.py, services/core/activity.py):
stored alerts, the fetchers' hourly activity and the scan for stale states, in the embedded
store's file (tables from migrations.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.adapters.sqlite.connection import SqliteFile, sortable
from services.core.activity import FetchWindow, StaleState
from services.core.alerts import Alert, AlertQuery, details_json
from services.core.timeutil import from_iso

ACTIVITY_DAYS = 8  # windows older than this are dropped on write


class SqliteChecks:
    """AlertStore, ActivityStore and StaleScan over the store file's connection."""

    def __init__(self, store: SqliteFile, alert_ttl: timedelta = timedelta(days=90)) -> None:
        self._store = store
        self._alert_ttl = alert_ttl

    # -- alerts -------------------------------------------------------------------------

    async def add_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store the alerts whose (day, kind, source, work) is new; returns those. Alerts past
        their TTL are dropped here."""
        oldest = (datetime.now(UTC) - self._alert_ttl).date().isoformat()

        def write(conn: sqlite3.Connection) -> list[Alert]:
            conn.execute("DELETE FROM alerts WHERE day < ?", (oldest,))
            new = []
            for alert in alerts:
                day, kind, source, work = alert.key
                cur = conn.execute(
                    "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?)",
                    (
                        day.isoformat(),
                        kind,
                        source,
                        work,
                        sortable(alert.at),
                        alert.message,
                        details_json(alert),
                    ),
                )
                if cur.rowcount:
                    new.append(alert)
            return new

        return await self._store.run(write)

    async def alerts(self, query: AlertQuery) -> list[Alert]:
        """A page of alerts, newest day first, then by kind, source and work."""
        sql = (
            "SELECT day, kind, source, work_id, at, message, details FROM alerts"
            " WHERE day >= ? AND at >= ?"
        )
        args: list[str | int] = [query.since.date().isoformat(), sortable(query.since)]
        if query.kind is not None:
            sql += " AND kind = ?"
            args.append(query.kind.value)
        if query.source is not None:
            sql += " AND source = ?"
            args.append(query.source)
        if query.after is not None:
            day, kind, source, work = query.after
            sql += " AND (day < ? OR (day = ? AND (kind, source, work_id) > (?, ?, ?)))"
            args += [day.isoformat(), day.isoformat(), kind, source, work]
        sql += " ORDER BY day DESC, kind, source, work_id LIMIT ?"
        args.append(query.limit)

        def read(conn: sqlite3.Connection) -> list[Alert]:
            return [
                Alert.from_row(kind, from_iso(at), message, source, work, details)
                for _, kind, source, work, at, message, details in conn.execute(sql, args)
            ]

        return await self._store.run(read)

    # -- fetch activity -----------------------------------------------------------------

    async def record_activity(self, windows: Sequence[FetchWindow]) -> None:
        """Store each window, replacing what its instance stored for that hour."""
        oldest = sortable(datetime.now(UTC) - timedelta(days=ACTIVITY_DAYS))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM fetch_activity WHERE hour < ?", (oldest,))
            conn.executemany(
                "INSERT OR REPLACE INTO fetch_activity VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        sortable(w.hour),
                        w.source,
                        w.instance,
                        w.calls,
                        w.unanswered,
                        json.dumps(list(w.latency)),
                        w.refreshes,
                        w.failed,
                        sortable(w.last_ok) if w.last_ok else None,
                    )
                    for w in windows
                ],
            )

        await self._store.run(write)

    async def activity(self, since: datetime) -> list[FetchWindow]:
        """Every window of an hour starting at or after `since`'s hour."""
        start = sortable(since.astimezone(UTC).replace(minute=0, second=0, microsecond=0))

        def read(conn: sqlite3.Connection) -> list[FetchWindow]:
            rows = conn.execute(
                "SELECT source, hour, instance, calls, unanswered, latency, refreshes, failed,"
                " last_ok FROM fetch_activity WHERE hour >= ? ORDER BY hour, source, instance",
                (start,),
            )
            return [_window(row) for row in rows]

        return await self._store.run(read)

    # -- stale states -------------------------------------------------------------------

    async def stale_states(
        self, before: datetime, per_source: int
    ) -> tuple[list[StaleState], dict[str, int]]:
        """Up to `per_source` states of each source last refreshed before `before` (oldest
        first), and how many each source has in all."""
        cutoff = sortable(before)
        at = "julianday(json_extract(state, '$.retrieved_at'))"

        def read(conn: sqlite3.Connection) -> tuple[list[StaleState], dict[str, int]]:
            rows = conn.execute(
                "SELECT work_id, source, at FROM (SELECT work_id, source,"
                f" json_extract(state, '$.retrieved_at') AS at, ROW_NUMBER() OVER"
                f" (PARTITION BY source ORDER BY {at}, work_id) AS n FROM source_totals"
                f" WHERE {at} < julianday(?)) WHERE n <= ? ORDER BY source, n",
                (cutoff, per_source),
            )
            found = [StaleState(w, s, from_iso(a)) for w, s, a in rows]
            counts = conn.execute(
                f"SELECT source, count(*) FROM source_totals WHERE {at} < julianday(?)"
                " GROUP BY source",
                (cutoff,),
            )
            return found, {s: int(n) for s, n in counts}

        return await self._store.run(read)


def _window(row: Sequence[Any]) -> FetchWindow:
    source, hour, instance, calls, unanswered, latency, refreshes, failed, last_ok = row
    return FetchWindow(
        source,
        from_iso(hour),
        instance,
        calls,
        unanswered,
        tuple(json.loads(latency)),
        refreshes,
        failed,
        from_iso(last_ok) if last_ok else None,
    )
