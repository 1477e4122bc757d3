"""The periodic data-quality checks: slow upstream, failed refreshes and silent sources from
the fetchers' hourly activity, and works not updated for `stale_days` from a scan of the
states; found alerts are stored (one per day, kind, source and work) and counted.

Where they run: in the scheduler process of the distributed mode (one replica, so one pass at a
time; a second runner would only find the same alerts, which are stored once), in `alm run`
alongside the embedded services, and once with `alm checks` (e.g. from cron). The checks on one
observation run in the aggregator (services/core/alerts.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog

from services.core.activity import CheckStore, source_checks, stale_alerts
from services.core.alerts import DEFAULT_LIMITS, Alert, Thresholds
from services.core.ports import SourceControl
from services.telemetry import alerts as alert_metrics

log = structlog.get_logger("alm.checks")

LOOKBACK = timedelta(days=7)  # windows read: the silence check needs to see older ones too
PER_SOURCE = 1000  # not_updated alerts raised per source and pass (the count says the rest)


class Checker:
    """Runs the periodic checks over the stored activity and states."""

    def __init__(
        self,
        checks: CheckStore,
        control: SourceControl,
        sources: Sequence[str],
        clock: Callable[[], datetime],
        limits: Thresholds = DEFAULT_LIMITS,
        stale_every: timedelta = timedelta(days=1),
    ) -> None:
        self.checks = checks
        self.control = control
        self.sources = list(sources)
        self.clock = clock
        self.limits = limits
        self.stale_every = stale_every
        self.last_stale_scan: datetime | None = None

    def stale_due(self, now: datetime) -> bool:
        """Whether the scan for states not updated is due (it reads every state)."""
        return self.last_stale_scan is None or now - self.last_stale_scan >= self.stale_every

    async def run_once(self, stale: bool | None = None) -> list[Alert]:
        """One pass; with `stale` None the stale scan runs when due. Returns the alerts that
        were new (stored now)."""
        now = self.clock()
        windows = await self.checks.activity(now - LOOKBACK)
        statuses = await self.control.source_statuses()
        paused = [name for name, status in statuses.items() if status.paused]
        found = source_checks(windows, now, self.sources, paused, self.limits)
        if stale if stale is not None else self.stale_due(now):
            before = now - timedelta(days=self.limits.stale_days)
            rows, counts = await self.checks.stale_states(before, PER_SOURCE)
            found += stale_alerts(rows, counts, now, self.limits)
            self.last_stale_scan = now
            if counts:
                log.warning("stale_states", before=before.isoformat(), per_source=counts)
        new = await self.checks.add_alerts(found) if found else []
        alert_metrics.count(new)
        alert_metrics.CHECKS_RUN.set(time.time())
        log.info("checks_done", found=len(found), new=len(new))
        return new
