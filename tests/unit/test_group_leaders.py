"""A group's leaders (services/api/leaders.py) from the sources' boards: exactly the works with
the highest group figure (checked against every work's figure computed from its states), for
any page size, where the top of each board alone would be wrong; a walk cut short says so."""

from __future__ import annotations

import random

import pytest

from services.adapters.sqlite import SqliteStore
from services.api.leaders import boards, group_leaders
from services.core.catalog import Catalog
from services.core.metrics import Group, group_figures
from services.fetchers.registry import catalog as source_catalog
from tests.contracts.store import T0, apply, obs

CATALOG: Catalog = source_catalog()


async def brute_force(store: SqliteStore, works: list[str], group: Group) -> list[tuple[str, int]]:
    """Every work's figure from its states (what a work's page shows), best first."""
    states = await store.states_for(works)
    figures = {
        w: group_figures((CATALOG.specs(s.source), s.metrics) for s in rows)[group.value]
        for w, rows in states.items()
    }
    return sorted(((w, n) for w, n in figures.items() if n), key=lambda wn: (-wn[1], wn[0]))


def test_a_group_s_boards_are_its_counting_metrics_on_every_source() -> None:
    cited = boards(CATALOG, Group.CITED)
    assert ("crossref", "citations") in cited and ("datacite", "citations") in cited
    assert ("semanticscholar", "influential_citations") not in cited  # not in the total
    assert ("datacite", "views") in boards(CATALOG, Group.VIEWED)


async def test_the_leader_is_the_best_sum_not_the_best_single_board(sqlite: SqliteStore) -> None:
    # a: 10 + 10 = 20 tops neither board; b tops crossref (15), c tops openalex (16)
    await apply(
        sqlite,
        [
            obs("10.1/a", "crossref", T0, {"citations": 10}),
            obs("10.1/a", "openalex", T0, {"citations": 10}),
            obs("10.1/b", "crossref", T0, {"citations": 15}),
            obs("10.1/c", "openalex", T0, {"citations": 16}),
            obs("10.1/v", "counter", T0, {"investigations": 99}),  # viewed, not cited
        ],
    )
    for page in (1, 2, 20):
        found = await group_leaders(sqlite, CATALOG, Group.CITED, 2, page=page)
        assert found.works == [("10.1/a", 20), ("10.1/c", 16)] and found.exact
    viewed = await group_leaders(sqlite, CATALOG, Group.VIEWED, 5)
    assert viewed.works == [("10.1/v", 99)]
    assert (await group_leaders(sqlite, CATALOG, Group.SAVED, 5)).works == []


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_leaders_equal_the_brute_force_order(sqlite: SqliteStore, seed: int) -> None:
    rng = random.Random(seed)
    works = [f"10.1/r{n:03d}" for n in range(60)]
    observations = []
    for w in works:
        for source, metric in [
            ("crossref", "citations"),
            ("openalex", "citations"),
            ("datacite", "citations"),
            ("datacite", "views"),
            ("wikipedia", "pages"),
            ("semanticscholar", "influential_citations"),
        ]:
            if rng.random() < 0.6:
                value = int(rng.paretovariate(1.2)) - 1  # skewed, many ties and zeros
                observations.append(obs(w, source, T0, {metric: value}))
    merged: dict[tuple[str, str], dict[str, int]] = {}
    for o in observations:
        merged.setdefault((o.work_id, o.source), {}).update(o.metrics)
    await apply(sqlite, [obs(w, s, T0, m) for (w, s), m in merged.items()])
    for group in (Group.CITED, Group.VIEWED, Group.DISCUSSED):
        expected = await brute_force(sqlite, works, group)
        for page in (1, 3, 10):
            found = await group_leaders(sqlite, CATALOG, group, 5, page=page)
            assert found.exact
            # ties at the cut may be broken either way: the figures and the sure ones agree
            assert [n for _, n in found.works] == [n for _, n in expected[:5]]
            cut = expected[4][1] if len(expected) >= 5 else 0
            assert {w for w, n in expected[:5] if n > cut} <= {w for w, _ in found.works}


async def test_a_walk_cut_short_is_marked_inexact(sqlite: SqliteStore) -> None:
    await apply(
        sqlite,
        [obs(f"10.1/f{n}", "crossref", T0, {"citations": 5}) for n in range(6)]
        + [obs(f"10.1/f{n}", "openalex", T0, {"citations": 5}) for n in range(6)],
    )
    found = await group_leaders(sqlite, CATALOG, Group.CITED, 3, page=1, max_depth=1)
    assert not found.exact and len(found.works) <= 3
    assert (await group_leaders(sqlite, CATALOG, Group.CITED, 3, page=1)).exact
