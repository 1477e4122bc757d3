"""The leaderboard contract (`top_works` with a keyset cursor): pages in board order (value
down, ties by work id), disjoint and complete, each from the cursor the previous one ended at;
a value that changes moves its work. tests/unit/test_leaderboard.py runs it against SqliteStore,
tests/integration/test_leaderboard.py against CassandraStore; each gives the `store` fixture.
Every test uses a source of its own, so a shared keyspace does not disturb it."""

from __future__ import annotations

from datetime import timedelta

from services.core.ports import Store
from tests.contracts.store import T0, apply, obs, uid


async def board(
    store: Store, source: str, metric: str, per_page: int
) -> list[list[tuple[str, int]]]:
    """Every page of the board, each read from the last row of the one before."""
    pages: list[list[tuple[str, int]]] = []
    after: tuple[int, str] | None = None
    while page := await store.top_works(source, metric, per_page, after):
        assert len(page) <= per_page and len(pages) < 100  # a cursor that moves on ends
        pages.append(page)
        after = (page[-1][1], page[-1][0])
    return pages


async def test_pages_follow_the_board_order_through_ties(store: Store) -> None:
    """Values with many ties (more than a page of one value): the pages, joined, are every work
    by value down then work id, none twice, every page full but the last."""
    src, u = f"src{uid()}", uid()
    values = [5, 3, 3, 3, 3, 3, 9, 0, 3, 1, 9, 7, 3, 0, 2]
    works = [f"10.1/b.{n:02d}.{u}" for n in range(len(values))]
    await apply(
        store, [obs(w, src, T0, {"x": v, "y": -v}) for w, v in zip(works, values, strict=True)]
    )
    expected = sorted(zip(works, values, strict=True), key=lambda wv: (-wv[1], wv[0]))
    for per_page in (1, 2, 4, 7, 50):
        pages = await board(store, src, "x", per_page)
        assert [row for page in pages for row in page] == expected
        assert all(len(page) == per_page for page in pages[:-1])
    # another metric of the same source is a board of its own
    zeros = sorted(w for w, v in zip(works, values, strict=True) if v == 0)
    assert await store.top_works(src, "y", 2) == [(zeros[0], 0), (zeros[1], 0)]
    assert await store.top_works(f"none{uid()}", "x", 5) == []


async def test_a_changed_value_moves_the_work_between_pages(store: Store) -> None:
    """A work whose value rises appears before the cursor, once, and no longer after it."""
    src, u = f"src{uid()}", uid()
    works = [f"10.1/m.{n}.{u}" for n in range(6)]
    await apply(store, [obs(w, src, T0, {"x": 10 * (n + 1)}) for n, w in enumerate(works)])
    first = await store.top_works(src, "x", 3)
    assert first == [(works[5], 60), (works[4], 50), (works[3], 40)]
    await apply(store, [obs(works[0], src, T0 + timedelta(hours=1), {"x": 100})])
    rest = await store.top_works(src, "x", 10, after=(40, works[3]))
    assert rest == [(works[2], 30), (works[1], 20)]
    assert (await store.top_works(src, "x", 1)) == [(works[0], 100)]
