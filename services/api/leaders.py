"""A group's leaders: the works with the highest group figure (the sum of the counting metrics
of that group over every source, as a work's page shows it), read from the sources' boards.

Why a merge of the boards and not a board per group: a group's figure spans sources, and each
source's numbers are written by the aggregator apart from the others' (in Cassandra without a
read), so a board row per group would need a read of the other sources' states on every write,
on the hot path, to stay exact. The per-(source, metric) boards are already kept exact on every
write, and Fagin's threshold algorithm finds the exact top k from them with bounded reads:
walk every board of the group a page at a time in parallel, read the exact figure of each new
candidate (`states_for`), and stop as soon as the k-th best figure found is at least the
threshold, the sum of the last value seen on every board not yet exhausted: a work not seen yet
is at most that on each board it is on (and on none it was not found on), so it cannot do
better. Skewed counts (what citations and views are) end it on the first page or two. The
walk is capped at MAX_DEPTH rows a board, so a pathological board costs a bounded read; a
result cut there is the best of the works it saw and is marked inexact."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.core.catalog import Catalog
from services.core.metrics import Group, group_figures
from services.core.ports import MetricStore

PAGE = 20  # rows read from each board a round
MAX_DEPTH = 400  # rows a board at most


@dataclass(frozen=True, slots=True)
class Leaders:
    """A group's top works, (work id, group figure), most first, ties by work id."""

    group: Group
    works: list[tuple[str, int]]
    exact: bool = True  # False: the walk hit MAX_DEPTH before the threshold proved the order


def boards(catalog: Catalog, group: Group) -> list[tuple[str, str]]:
    """The (source, metric) boards whose values add to `group`'s figure."""
    return [
        (name, spec.name)
        for name, info in catalog.items()
        for spec in info.metrics
        if spec.in_total and spec.group is group
    ]


async def group_leaders(
    store: MetricStore,
    catalog: Catalog,
    group: Group,
    k: int,
    page: int = PAGE,
    max_depth: int = MAX_DEPTH,
) -> Leaders:
    """The `k` works with the highest figure in `group` above zero (see the module's doc)."""
    live = boards(catalog, group)
    after: dict[tuple[str, str], tuple[int, str] | None] = dict.fromkeys(live)
    figures: dict[str, int] = {}
    depth = 0
    while live:
        pages = await asyncio.gather(*(store.top_works(s, m, page, after[(s, m)]) for s, m in live))
        last: dict[tuple[str, str], int] = {}
        fresh: set[str] = set()
        for board, rows in zip(live, pages, strict=True):
            fresh.update(w for w, _ in rows if w not in figures)
            if len(rows) == page:  # a short page: the board is exhausted, and dropped
                after[board] = (rows[-1][1], rows[-1][0])
                last[board] = rows[-1][1]
        if fresh:
            states = await store.states_for(sorted(fresh))
            for work_id, rows_of in states.items():
                shown = group_figures((catalog.specs(st.source), st.metrics) for st in rows_of)
                figures[work_id] = shown[group.value]
        live = [b for b in live if b in last]
        threshold = sum(last.values())
        best = _best(figures, k)
        depth += page
        if threshold == 0 or (len(best) == k and best[-1][1] >= threshold):
            return Leaders(group, best)
        if depth >= max_depth:
            return Leaders(group, best, exact=False)
    return Leaders(group, _best(figures, k))


def _best(figures: dict[str, int], k: int) -> list[tuple[str, int]]:
    ranked = sorted(((w, n) for w, n in figures.items() if n > 0), key=lambda wn: (-wn[1], wn[0]))
    return ranked[:k]
