"""How long a service takes to stop on SIGTERM, at most: the Kubernetes manifests'
terminationGracePeriodSeconds leave room for it (tests/deploy/test_deploy_manifests.py).

A worker service (scheduler, fetcher, aggregator, notifier) stops taking batches, lets the one in
progress finish and commit for up to DRAIN_SECONDS (then cancels it: never committed, so
redone by the next owner), then leaves its consumer group and closes its producer and store
connections for up to CLOSE_SECONDS. The API stops accepting connections and lets requests in
progress finish; each has a deadline of API_REQUEST_SECONDS at most (with the default
ALM_API_STORE_TIMEOUT; services/api/errors.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog

log = structlog.get_logger("alm.shutdown")

DRAIN_SECONDS = 20.0
CLOSE_SECONDS = 15.0
API_REQUEST_SECONDS = 9.0

WORKERS = ("scheduler", "fetcher", "aggregator", "notifier")


def bound(command: str) -> float:
    """Seconds `alm COMMAND` may take from SIGTERM to exit."""
    if command in WORKERS:
        return DRAIN_SECONDS + CLOSE_SECONDS
    if command == "api":
        return API_REQUEST_SECONDS + CLOSE_SECONDS
    return CLOSE_SECONDS


async def close_all(*closing: Awaitable[None], within: float = CLOSE_SECONDS) -> None:
    """Await `closing` together for up to `within` seconds: a broker or a store that is down
    must not hold the exit up; what is left then is abandoned, with a warning."""
    tasks = [asyncio.ensure_future(c) for c in closing]
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=within)
    for task in pending:
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.warning("close_failed", error=str(task.exception()))
    if pending:
        log.warning("close_abandoned", unfinished=len(pending), after_seconds=within)
