"""The `search_works` contract (the WorkSearch port): works found by every word of a query in
their title or publisher's name, folded (case, diacritics); keyset pages disjoint and complete;
the publisher filter; registration and updates keep the index in step.
tests/unit/test_search_store.py runs it against SqliteStore, tests/integration/
test_search_store.py against CassandraStore; each gives the `store` fixture. Every test makes
words of its own (a shared keyspace holds other tests' works)."""

from __future__ import annotations

import uuid

from services.core.ports import Store
from services.core.search import words
from services.core.works import Work


def uid() -> str:
    return "w" + uuid.uuid4().hex[:8]


def work(doi: str, title: str, publisher: str = "", member: str | None = None) -> Work:
    return Work(doi, doi=doi, title=title, publisher=publisher or None, publisher_id=member)


async def every_page(
    store: Store, query: str, per_page: int, member: str | None = None
) -> list[list[str]]:
    """Every page of a search, following the cursors to the end."""
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        found, after = await store.search_works(words(query), after, per_page, member)
        assert len(found) <= per_page
        pages.append([w.work_id for w in found])
        if after is None:
            return pages
        assert len(pages) < 100, "the cursors do not end"


async def test_finds_by_title_words_folded_and_anded(store: Store) -> None:
    u = uid()
    await store.register(
        [
            work(f"10.5555/{u}.1", f"Coral Reefs of the Café {u}", "Public Library of Science"),
            work(f"10.5555/{u}.2", f"coral bleaching {u}", "Elsevier"),
            work(f"10.5555/{u}.3", f"Nothing of note {u}"),
        ]
    )
    found = sorted(w for p in await every_page(store, f"{u} CORAL", 10) for w in p)
    assert found == [f"10.5555/{u}.1", f"10.5555/{u}.2"]
    (only,) = (await store.search_works(words(f"cafe {u.upper()} reefs"), None, 10))[0]
    assert only.work_id == f"10.5555/{u}.1" and only.title == f"Coral Reefs of the Café {u}"
    by_publisher = (await store.search_works(words(f"{u} elsevier"), None, 10))[0]
    assert [w.work_id for w in by_publisher] == [f"10.5555/{u}.2"]
    assert (await store.search_works(words(f"{u} coral absent"), None, 10)) == ([], None)


async def test_pages_disjoint_and_complete(store: Store) -> None:
    u = uid()
    dois = [f"10.5555/{u}.{n:02d}" for n in range(11)]
    await store.register([work(d, f"Paged {u} number {n}") for n, d in enumerate(dois)])
    pages = await every_page(store, f"paged {u}", 4)
    listed = [w for p in pages for w in p]
    assert sorted(listed) == dois and len(set(listed)) == len(listed)
    assert [len(p) for p in pages[:3]] == [4, 4, 3]


async def test_exact_page_ends_with_an_empty_one(store: Store) -> None:
    u = uid()
    await store.register([work(f"10.5555/{u}.{n}", f"Even {u}") for n in range(4)])
    pages = await every_page(store, u, 2)
    assert [len(p) for p in pages] in ([2, 2, 0], [2, 2])
    assert sum(len(p) for p in pages) == 4


async def test_publisher_filter(store: Store) -> None:
    u = uid()
    await store.register(
        [
            work(
                f"10.5555/{u}.{n}", f"Filtered {u}", "PLOS" if n % 2 else "Other", str(340 + n % 2)
            )
            for n in range(6)
        ]
    )
    pages = await every_page(store, u, 2, member="341")
    assert sorted(w for p in pages for w in p) == [f"10.5555/{u}.{n}" for n in (1, 3, 5)]
    assert (await store.search_works(words(u), None, 5, "999999"))[0] == []


async def test_updates_and_merges_reindex(store: Store) -> None:
    u, v, x = uid(), uid(), uid()
    doi = f"10.5555/{u}"
    await store.register([work(doi, f"Before {u}")])
    await store.update_works([work(doi, f"After {v}")])
    assert (await store.search_works(words(u), None, 5))[0] == []
    assert [w.work_id for w in (await store.search_works(words(v), None, 5))[0]] == [doi]
    bare = Work(f"10.5555/{x}", doi=f"10.5555/{x}")
    await store.register([bare])
    assert (await store.search_works(words(x), None, 5))[0] == []
    await store.register([work(f"10.5555/{x}", f"Learned later {x}", "Hindawi")])
    found = (await store.search_works(words(f"{x} hindawi learned"), None, 5))[0]
    assert [w.work_id for w in found] == [f"10.5555/{x}"]
