"""What a request reads of works from the store: a work by any accepted identifier, the works
an `ids=` list names (one batched read), and the sources of one work with their history and
events (what the v5 and v3 presenters show)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from services.api.errors import NotFound
from services.api.present import source_history
from services.api.state import CLOCK, STORE
from services.api.v5_present import SourceView
from services.core.aggregation import SourceState
from services.core.history import History, Period
from services.core.identifiers import Identifier, parse_identifier
from services.core.ports import Store
from services.core.works import Work

_DAY_MONTH: tuple[Period, ...] = ("day", "month")


async def find(request: web.Request, raw_id: str) -> Work:
    """The work any accepted form of `raw_id` names, or NotFound."""
    return await find_in(request.app[STORE], raw_id)


async def find_in(store: Store, raw_id: str) -> Work:
    """The work in `store` any accepted form of `raw_id` names, or NotFound."""
    ident = parse_identifier(raw_id)
    work = await store.find_work(ident)
    if work is None:
        raise NotFound(f"no work registered with {ident.type.value} {ident.value}")
    return work


async def find_named(store: Store, idents: Sequence[Identifier]) -> list[Work]:
    """The known works among `idents`, each once, in the order first named (one read)."""
    known = await store.find_works(idents)
    found: dict[str, Work] = {}
    for ident in idents:
        work = known.get(ident)
        if work is not None:
            found.setdefault(work.work_id, work)
    return list(found.values())


async def source_views(
    request: web.Request,
    work: Work,
    states: list[SourceState],
    listed: tuple[str, ...],
    with_events: bool,
) -> list[SourceView]:
    """The listed sources of one work, with their history and, if asked, their events. Years
    are worked out only where no month is known: v5 and v3 sum `by_year` from `by_month`
    otherwise (v5_present.histories)."""
    if not listed:
        return []
    store = request.app[STORE]
    today = request.app[CLOCK]().date()
    state_of = {s.source: s for s in states}
    history = await store.history(work.work_id, listed[0] if len(listed) == 1 else None)
    with_state = [name for name in listed if name in state_of] if with_events else []
    events_of = await store.events_by_source(work.work_id, with_state) if with_state else {}
    views = []
    for name in listed:
        state = state_of.get(name)
        points = [p for p in history if p.source == name]
        periods: dict[Period, History] = {
            p: source_history(state, name, points, p, today) for p in _DAY_MONTH
        }
        if not any(b.key is not None for b in periods["month"].buckets):
            periods["year"] = source_history(state, name, points, "year", today)
        events = events_of.get(name, []) if with_events and state else None
        views.append(SourceView(name, state, periods, events, points))
    return views
