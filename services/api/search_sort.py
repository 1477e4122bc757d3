"""Search results sorted by a source's count or a group's figure (`sort=`): every match is read
(at most SORT_LIMIT; more is a 400 asking for a narrower search), ranked by the count, highest
first (then by work id), and served a page at a time after a cursor `VALUE:WORK_ID` (the last
work's count and id). The work is bounded by SORT_LIMIT however many works are registered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from services.api.errors import BadParameter
from services.api.present import counting_total, figures
from services.core.aggregation import SourceState
from services.core.catalog import Catalog
from services.core.metrics import Group
from services.core.text import shown
from services.core.works import Work

SORT_LIMIT = 1000  # matches one sorted search may rank
READ = 500  # matches read from the index at once

Reader = Callable[[str | None, int], Awaitable[tuple[list[Work], str | None]]]
States = Callable[[Sequence[str]], Awaitable[dict[str, list[SourceState]]]]
Keep = Callable[[Work, list[SourceState]], bool]


def orders(catalog: Catalog) -> list[str]:
    """What `sort` takes: a source's name or a group's."""
    return sorted(catalog) + [g.value for g in Group]


def value_of(catalog: Catalog, order: str, states: Sequence[SourceState]) -> int:
    """The work's count from the source `order`, or its figure for the group `order`."""
    if order in catalog:
        mine = [s for s in states if s.source == order and s.retrieved_at is not None]
        return sum(counting_total(catalog.specs(order), s.metrics) for s in mine)
    return figures(catalog, states).get(order, 0)


def _cursor(raw: str | None) -> tuple[int, str] | None:
    if raw is None:
        return None
    value, sep, work_id = raw.partition(":")
    if not sep or not value.isdigit() or not work_id:
        raise BadParameter(f"parameter 'cursor': {shown(raw, 40)!r} is not one a sorted page gave")
    return int(value), work_id


async def sorted_page(
    catalog: Catalog,
    order: str,
    read: Reader,
    states_of: States,
    keep: Keep,
    after: str | None,
    per_page: int,
) -> tuple[list[Work], dict[str, list[SourceState]], str | None]:
    """A page of the matches `read` gives (those `keep` keeps), ranked by `order`, after the
    cursor `after`; and the next page's cursor."""
    start = _cursor(after)
    ranked: list[tuple[int, str, Work]] = []
    states: dict[str, list[SourceState]] = {}
    seen, cursor = 0, None
    while True:
        batch, cursor = await read(cursor, READ)
        seen += len(batch)
        if seen > SORT_LIMIT:
            raise BadParameter(
                f"parameter 'sort': more than {SORT_LIMIT} works match; narrow the search "
                "(more words, publisher_id or source) to sort them"
            )
        got = await states_of([w.work_id for w in batch])
        for work in batch:
            if keep(work, got[work.work_id]):
                states[work.work_id] = got[work.work_id]
                ranked.append((value_of(catalog, order, got[work.work_id]), work.work_id, work))
        if cursor is None:
            break
    ranked.sort(key=lambda r: (-r[0], r[1]))
    if start is not None:
        ranked = [r for r in ranked if (-r[0], r[1]) > (-start[0], start[1])]
    page = ranked[:per_page]
    more = len(ranked) > per_page
    next_cursor = f"{page[-1][0]}:{page[-1][1]}" if more else None
    return [r[2] for r in page], {r[1]: states[r[1]] for r in page}, next_cursor
