"""The `works_newest` contract (ALM v5's listing without `ids`): works by publication date,
newest first, undated last, then by work id; pages disjoint and complete; a date learned or
changed later moves the work. tests/unit/test_works_newest.py runs it against SqliteStore (a
file per test), tests/integration/test_works_newest.py against CassandraStore (the listing
spans every work, so a keyspace of that module's own); each gives the `store` fixture."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

from services.core.ports import Store
from services.core.works import Work

DATES = [date(1998, 3, 1), date(2003, 7, 9), date(2019, 12, 31), date(2020, 6, 1), None]


def uid() -> str:
    return uuid.uuid4().hex[:8]


def work(doi: str, issued: date | None) -> Work:
    return Work(doi, doi=doi, issued=issued)


def newest_first(w: Work) -> tuple[bool, int, str]:
    """The order Lagotto listed works in (the definition the stores are checked against)."""
    return (w.issued is None, -(w.issued.toordinal() if w.issued else 0), w.work_id)


async def every_work(store: Store) -> list[Work]:
    out, after = [], None
    while page := await store.works_after(after, 500):
        out += page
        after = page[-1].work_id
    return out


async def paged(store: Store, per_page: int) -> list[list[str]]:
    """Every page of `works_newest` up to the first empty one."""
    pages: list[list[str]] = []
    while page := await store.works_newest(len(pages) * per_page, per_page):
        assert len(page) <= per_page
        pages.append([w.work_id for w in page])
    return pages


async def check_listing(store: Store, per_page: int) -> list[str]:
    """The pages are disjoint, complete and newest first; the listing, as work ids."""
    pages = await paged(store, per_page)
    listed = [w for page in pages for w in page]
    assert all(len(p) == per_page for p in pages[:-1])
    assert len(set(listed)) == len(listed) == await store.count_works()
    assert listed == [w.work_id for w in sorted(await every_work(store), key=newest_first)]
    return listed


async def test_pages_newest_first_undated_last(store: Store) -> None:
    """Works of several years, several on one date, and undated ones: each page holds the next
    ones by date, newest first, ties and undated works by id."""
    u = uid()
    works = [work(f"10.5555/{u}.{n:02d}", DATES[n % len(DATES)]) for n in range(23)]
    await store.register(works[::2] + works[1::2])  # not in id order
    listed = await check_listing(store, 4)
    mine = [w for w in listed if u in w]
    assert mine[:5] == [f"10.5555/{u}.{n:02d}" for n in (3, 8, 13, 18, 2)]  # 2020, then 2019
    assert mine[-4:] == [f"10.5555/{u}.{n:02d}" for n in (4, 9, 14, 19)]  # undated
    assert [w.work_id for w in await store.works_newest(2, 3)] == listed[2:5]


async def test_a_date_learned_later_moves_the_work(store: Store) -> None:
    """A date learned later (update_works, or registering the work again with it) moves the
    work from the undated ones to its date; a corrected date moves it again; it is listed
    once each time."""
    u = uid()
    await store.register([work(f"10.5555/{u}.{n}", DATES[n]) for n in range(4)])  # 1998-2020
    late, merged = work(f"10.5555/{u}.late", None), work(f"10.5555/{u}.merge", None)
    await store.register([late, merged])
    listed = [w for w in await check_listing(store, 3) if u in w]
    assert listed[-2:] == [late.work_id, merged.work_id]

    await store.update_works([replace(late, title="Known", issued=date(2024, 5, 6))])
    await store.register([replace(merged, issued=date(2001, 1, 1))])
    listed = [w for w in await check_listing(store, 3) if u in w]
    ids = {n: f"10.5555/{u}.{n}" for n in range(4)}
    assert listed == [late.work_id, ids[3], ids[2], ids[1], merged.work_id, ids[0]]

    await store.update_works([replace(late, issued=date(1990, 1, 1))])
    listed = [w for w in await check_listing(store, 5) if u in w]
    assert listed == [ids[3], ids[2], ids[1], merged.work_id, ids[0], late.work_id]
