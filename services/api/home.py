"""`GET /api/v1/summary`: what the home page (`/`, services/site/home.py) shows, as JSON: how
many works and sources, each headline group's leaders (services/api/leaders.py) and the works
whose numbers changed last.

Every figure is a bounded read, kept for ALM_STATUS_CACHE_SECONDS per API process (the
TotalsCache): the works count, the leaders (a few pages of the group's boards), and the recent
changes: the last RECENT_TAIL events of every partition of `alm.metrics.changed`, read once
from there to the end (no scan of the states)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from services.api.leaders import Leaders, group_leaders
from services.api.state import CATALOG, HUB, STORE, TOTALS
from services.core.changefeed import ChangeFeed
from services.core.metrics import Group
from services.core.ports import Store

HEADLINE = (Group.CITED, Group.VIEWED, Group.DISCUSSED)  # the home page's group leaders
LEADERS = 5  # works a group
RECENT = 10  # recently changed works shown
RECENT_TAIL = 50  # events read from the end of each partition of the change topic
READ_WAIT = 1.0  # seconds a read of that tail may wait for its records


async def recent_changes(feed: ChangeFeed, limit: int = RECENT) -> list[dict[str, Any]]:
    """The last changes (work, source, when), newest first, one a work, from the tail of each
    partition of the change topic (at most RECENT_TAIL events a partition are read)."""
    end = await feed.end()
    start = {p: max(0, offset - RECENT_TAIL) for p, offset in end.items()}
    if start == end:
        return []  # nothing was ever published
    reader = feed.reader(start)
    items = []
    try:
        while True:  # a read waits up to READ_WAIT for the first records (a Kafka fetch)
            got, _ = await reader.read(RECENT_TAIL * len(end), READ_WAIT, until=end)
            items += got
            if not got or all(reader.position.get(p, 0) >= o for p, o in end.items()):
                break
    finally:
        await reader.close()
    latest: dict[str, dict[str, Any]] = {}
    for item in items:
        value = item.value
        work_id, at = value.get("work_id"), value.get("at")
        if not isinstance(work_id, str) or not isinstance(at, str):
            continue
        if work_id not in latest or at > latest[work_id]["at"]:
            latest[work_id] = {"id": work_id, "source": value.get("source"), "at": at}
    return sorted(latest.values(), key=lambda c: (c["at"], c["id"]), reverse=True)[:limit]


async def summary(app: web.Application) -> dict[str, Any]:
    """The home page's figures (each kept a few seconds: see the module's doc)."""
    store: Store = app[STORE]
    totals, catalog = app[TOTALS], app[CATALOG]

    async def leaders(group: Group) -> Leaders:
        found: Leaders = await totals.get(
            f"leaders:{group.value}", lambda: group_leaders(store, catalog, group, LEADERS)
        )
        return found

    works, boards, recent = await asyncio.gather(
        totals.works_total(store),
        asyncio.gather(*(leaders(g) for g in HEADLINE)),
        totals.get("recent", lambda: recent_changes(app[HUB].feed)),
    )
    ids = {w for b in boards for w, _ in b.works} | {c["id"] for c in recent}
    known = await store.get_works(sorted(ids))

    def work(work_id: str) -> dict[str, Any]:
        found = known.get(work_id)
        return {
            "id": work_id,
            "doi": found.doi if found else None,
            "title": found.title if found else None,
        }

    return {
        "works": works,
        "sources": len(catalog),
        "leaders": {
            b.group.value: {
                "exact": b.exact,
                "data": [{**work(w), "value": n} for w, n in b.works],
            }
            for b in boards
        },
        "recent": [{**work(c["id"]), "source": c["source"], "at": c["at"]} for c in recent],
    }


async def summary_json(request: web.Request) -> web.Response:
    """`GET /api/v1/summary`: the home page's figures."""
    return web.json_response(await summary(request.app))
