"""The provenance and data-quality adapters, run against SQLite and Cassandra: kept calls by
their refs, states carrying their calls, alerts stored once a day and listed in pages, the
fetchers' activity windows, and the scan for stale states. Same calls, same answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.adapters.sqlite_store import SqliteStore
from services.bootstrap import make_call_archive, make_checks
from services.core.activity import CheckStore, FetchWindow, StaleState, hour_of
from services.core.alerts import Alert, AlertKind, AlertQuery
from services.core.events import FetchError, Observation, Status
from services.core.ports import RawResponse, Store
from services.core.provenance import CallRef, identified, ref_of
from services.settings import Settings
from tests.integration.test_store_contract import apply, uid

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(
    params=["sqlite", pytest.param("cassandra", marks=pytest.mark.integration)],
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each Store adapter in turn."""
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "alm.sqlite")
        await sqlite.migrate()
        yield sqlite
        await sqlite.close()
    else:
        yield request.getfixturevalue("cassandra_store")


@pytest.fixture
def checks(store: Store) -> CheckStore:
    """The data-quality adapter over the store."""
    return make_checks(Settings(), store)


# -- provenance -----------------------------------------------------------------------------


async def test_kept_calls_are_found_by_their_refs(store: Store) -> None:
    """A kept call is found by its ref (id, digest, method, redacted flag and all); one past
    the TTL, another source's or an unknown id is not."""
    src, w = f"src{uid()}", f"10.1/p.{uid()}"
    kept = identified(
        RawResponse(src, NOW - timedelta(minutes=5), "https://u/k", 200, '{"n":1}', (w, "x"))
    )
    posted = identified(
        RawResponse(src, NOW - timedelta(days=2), "https://u/p", 404, "{}", (w,), method="POST")
    )
    old = identified(RawResponse(src, NOW - timedelta(days=9), "https://u/o", 200, "{}", (w,)))
    await store.add_raw_responses([kept, posted, old])
    archive = make_call_archive(store)
    refs = [ref_of(r) for r in (kept, posted, old)]
    unknown = CallRef("00000000-0000-5000-8000-00000000dead", NOW, 200, kept.digest)
    found = await archive.kept_calls(src, [*refs, unknown])
    assert found == {kept.raw_id: kept, posted.raw_id: posted}
    assert await archive.kept_calls(f"other{uid()}", refs) == {}


async def test_a_state_keeps_the_calls_of_its_numbers(store: Store) -> None:
    """The refs of the observation a state's totals come from are stored with it and read
    back exactly (microsecond times included); an error keeps them."""
    src, w = f"src{uid()}", f"10.1/c.{uid()}"
    refs = (
        CallRef(
            "5c1b0a52-3b1f-5d2e-9a1e-0f6c1d2e3f40",
            NOW + timedelta(microseconds=7),
            200,
            "sha256:" + "1" * 64,
        ),
        CallRef("5c1b0a52-3b1f-5d2e-9a1e-0f6c1d2e3f41", NOW, 404, "sha256:" + "2" * 64, "POST"),
    )
    ok = Observation(w, src, NOW, Status.OK, {"n": 3}, calls=refs)
    await apply(store, [ok])
    assert (await store.states([(w, src)]))[(w, src)].calls == refs
    failed = Observation(
        w, src, NOW + timedelta(hours=1), Status.ERROR, error=FetchError("http", "503")
    )
    await apply(store, [failed])
    assert (await store.states([(w, src)]))[(w, src)].calls == refs


# -- alerts ---------------------------------------------------------------------------------


def alert(kind: AlertKind, src: str, work: str | None, days_ago: int, message: str = "m") -> Alert:
    """An alert of `src` dated `days_ago` days before now."""
    return Alert(kind, NOW - timedelta(days=days_ago), message, src, work, {"n": days_ago})


async def test_an_alert_is_stored_once_a_day(checks: CheckStore) -> None:
    """The first alert of a (day, kind, source, work) is kept and reported new; the same key
    again, in the same call or a later one, is not; another day or work is another alert."""
    src = f"src{uid()}"
    first = alert(AlertKind.SPIKE, src, "10.1/a", 0, "first")
    again = alert(AlertKind.SPIKE, src, "10.1/a", 0, "again")
    other = alert(AlertKind.SPIKE, src, "10.1/b", 0)
    new = await checks.add_alerts([first, again, other])
    assert [a.message for a in new] == ["first", "m"]
    assert await checks.add_alerts([again]) == []
    yesterday = alert(AlertKind.SPIKE, src, "10.1/a", 1)
    assert await checks.add_alerts([yesterday]) == [yesterday]
    listed = await checks.alerts(AlertQuery(NOW - timedelta(days=3), source=src))
    assert [(a.day, a.work_id, a.message) for a in listed] == [
        (NOW.date(), "10.1/a", "first"),
        (NOW.date(), "10.1/b", "m"),
        (yesterday.day, "10.1/a", "m"),
    ]
    assert listed[0].details == {"n": 0} and listed[0].at == first.at


async def test_alerts_are_listed_in_pages_with_filters(checks: CheckStore) -> None:
    """Newest day first, then kind, source and work; a page ends where the next starts
    (keyset); kind, source and since filter."""
    src = f"src{uid()}"
    made = [
        alert(AlertKind.TOTAL_DECREASED, src, "10.1/z", 0),
        alert(AlertKind.MILESTONE, src, "10.1/b", 0),
        alert(AlertKind.MILESTONE, src, "10.1/a", 0),
        alert(AlertKind.SOURCE_SILENT, src, None, 1),
        alert(AlertKind.SPIKE, src, "10.1/c", 2),
        alert(AlertKind.SPIKE, src, "10.1/d", 5),
    ]
    await checks.add_alerts(made)
    expected = [made[2], made[1], made[0], made[3], made[4], made[5]]
    pages, after = [], None
    while True:
        query = AlertQuery(NOW - timedelta(days=10), source=src, limit=2, after=after)
        page = await checks.alerts(query)
        pages.append(page)
        if len(page) < 2:
            break
        after = page[-1].key
    assert [a.key for p in pages for a in p] == [a.key for a in expected]
    spikes = await checks.alerts(AlertQuery(NOW - timedelta(days=3), AlertKind.SPIKE, src))
    assert [a.work_id for a in spikes] == ["10.1/c"]
    assert await checks.alerts(AlertQuery(NOW - timedelta(days=3), source=f"none{uid()}")) == []


# -- fetch activity -------------------------------------------------------------------------


async def test_activity_windows_replace_and_read_back(checks: CheckStore) -> None:
    """A window written again by its instance replaces the earlier one; another instance's
    window is its own; windows before `since`'s hour are not read."""
    src = f"src{uid()}"
    hour = hour_of(NOW)
    w = FetchWindow(src, hour, "i1").with_calls([0.2, 31.0], 2, 1).with_refreshes(1, 1, NOW)
    await checks.record_activity([w])
    w2 = w.with_calls([0.3], 1, 0).with_refreshes(2, 0, NOW + timedelta(seconds=5))
    other = FetchWindow(src, hour, "i2").with_refreshes(0, 3, None)
    old = FetchWindow(src, hour - timedelta(hours=30), "i1").with_refreshes(
        4, 0, NOW - timedelta(hours=30)
    )
    await checks.record_activity([w2, other, old])
    mine = [x for x in await checks.activity(hour - timedelta(hours=2)) if x.source == src]
    assert mine == [w2, other]
    assert old in await checks.activity(hour - timedelta(hours=31))


# -- stale states ---------------------------------------------------------------------------


async def test_stale_states_oldest_first_and_counted(store: Store, checks: CheckStore) -> None:
    """The scan finds the states of each source refreshed before the cutoff, oldest first up
    to the limit per source, and counts them all; fresh states and failures without a success
    are not stale."""
    a, b = f"sa{uid()}", f"sb{uid()}"
    u = uid()
    observations = [
        Observation(f"10.1/s1.{u}", a, NOW - timedelta(days=50), Status.OK, {"n": 1}),
        Observation(f"10.1/s2.{u}", a, NOW - timedelta(days=70), Status.OK, {"n": 1}),
        Observation(f"10.1/s3.{u}", a, NOW - timedelta(days=45), Status.OK, {"n": 1}),
        Observation(f"10.1/s4.{u}", a, NOW - timedelta(days=2), Status.OK, {"n": 1}),
        Observation(f"10.1/s5.{u}", b, NOW - timedelta(days=41), Status.NOT_FOUND, {"n": 0}),
    ]
    await apply(store, observations)
    found, counts = await checks.stale_states(NOW - timedelta(days=40), 2)
    mine = [s for s in found if s.source in (a, b)]
    assert mine == [
        StaleState(f"10.1/s2.{u}", a, NOW - timedelta(days=70)),
        StaleState(f"10.1/s1.{u}", a, NOW - timedelta(days=50)),
        StaleState(f"10.1/s5.{u}", b, NOW - timedelta(days=41)),
    ]
    assert (counts[a], counts[b]) == (3, 1)
