"""Works' answers kept as bytes (services/api/rendered.py): bounded, dropped when a change is
heard, never kept older than a change heard of, and what the API serves from them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.aggregator.service import fold
from services.api import hub as hub_module
from services.api import rendered as rendered_module
from services.api.app import init_app
from services.api.rendered import OVERHEAD, RenderedCache
from services.api.state import HUB, RENDERED
from services.bootstrap import api_context
from services.core.aggregation import SourceState
from services.core.changefeed import ChangeFeed, FeedReader, Position
from services.core.events import TOPIC_CHANGED, MetricChanged, Observation, Status
from services.core.works import Work
from services.settings import Settings
from tests.unit.changes_kit import Api, api, publish

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
DOI = "10.5555/kept.1"


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state(work: str, source: str, at: datetime | None) -> SourceState:
    return SourceState(work, source, {"citations": 1}, retrieved_at=at)


def heard(work: str, source: str, at: datetime) -> dict[str, Any]:
    return {"work_id": work, "source": source, "at": at.isoformat()}


# the cache alone


def following(cache: RenderedCache) -> RenderedCache:
    cache.live = True  # as the hub sets it once it follows the change topic
    return cache


def test_an_answer_is_kept_until_its_ttl_and_then_read_again() -> None:
    clock = Ticks()
    cache = following(RenderedCache(ttl=30, max_bytes=10_000, clock=clock))
    cache.put("k", "w", b"{}", [])
    entry = cache.get("k")
    assert entry is not None and entry.body == b"{}"
    clock.now = 29.9
    assert cache.get("k") is not None
    clock.now = 30.0
    assert cache.get("k") is None
    assert len(cache) == 0 and cache.size == 0


def test_memory_stays_within_its_bound_least_recently_used_first() -> None:
    body = b"x" * 800
    cache = following(RenderedCache(ttl=30, max_bytes=5 * (len(body) + OVERHEAD)))
    for n in range(5):
        cache.put(n, f"w{n}", body, [])
    assert cache.get(0) is not None  # 0 is now the most recently used
    for n in range(5, 50):
        cache.put(n, f"w{n}", body, [])
        assert cache.size <= cache.max_bytes
    assert len(cache) == 5
    assert cache.get(1) is None and cache.get(49) is not None
    assert cache.put("big", "w", b"x" * cache.max_bytes, []).body  # served, not kept
    assert cache.get("big") is None


def test_a_change_drops_every_answer_of_its_work_and_no_other() -> None:
    cache = following(RenderedCache(ttl=30, max_bytes=10_000))
    cache.put(("v1", "doi", "a"), "a", b"1", [])
    cache.put(("v1", "pmid", "1"), "a", b"1", [])
    cache.put(("v1", "doi", "b"), "b", b"2", [])
    cache.changed([heard("a", "crossref", AT)])
    assert cache.get(("v1", "doi", "a")) is None and cache.get(("v1", "pmid", "1")) is None
    assert cache.get(("v1", "doi", "b")) is not None
    cache.clear()
    assert len(cache) == 0 and cache.size == 0


def test_states_older_than_a_change_heard_are_served_but_not_kept() -> None:
    clock = Ticks()
    cache = following(RenderedCache(ttl=30, max_bytes=10_000, clock=clock))
    cache.changed([heard("a", "crossref", AT)])
    cache.put("k", "a", b"old", [state("a", "crossref", AT - timedelta(days=1))])
    assert cache.get("k") is None
    cache.put("k", "a", b"none", [state("a", "openalex", AT)])  # crossref not stored yet
    assert cache.get("k") is None
    cache.put("k", "a", b"new", [state("a", "crossref", AT), state("a", "openalex", None)])
    entry = cache.get("k")
    assert entry is not None and entry.body == b"new"
    clock.now = 31  # a change heard is remembered for the ttl: later answers expire anyway
    cache.changed([])
    cache.put("k2", "a", b"old", [state("a", "crossref", AT - timedelta(days=1))])
    assert cache.get("k2") is not None


def test_with_a_long_ttl_a_change_heard_is_remembered_for_heard_seconds() -> None:
    clock = Ticks()
    cache = following(RenderedCache(ttl=300, max_bytes=10_000, clock=clock))
    cache.changed([heard("a", "crossref", AT)])
    old = [state("a", "crossref", AT - timedelta(days=1))]
    clock.now = rendered_module.HEARD_SECONDS - 1
    cache.changed([])
    cache.put("k", "a", b"old", old)
    assert cache.get("k") is None  # still remembered: not kept
    clock.now = rendered_module.HEARD_SECONDS
    cache.changed([])
    cache.put("k", "a", b"old", old)
    assert cache.get("k") is not None and not cache._heard  # forgotten, within its bound


def test_what_is_remembered_of_changes_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendered_module, "MAX_HEARD", 3)
    cache = following(RenderedCache(ttl=30, max_bytes=10_000))
    cache.changed([heard(f"w{n}", "crossref", AT) for n in range(10)])
    cache.changed([{"work_id": "w", "source": "crossref", "at": "not a time"}, {"nothing": 1}])
    assert len(cache._heard) == 3
    old = [state("w9", "crossref", AT - timedelta(days=1))]
    assert cache.put("k9", "w9", b"{}", old) and cache.get("k9") is None
    assert cache.put("k0", "w0", b"{}", old) and cache.get("k0") is not None  # forgotten


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache = following(RenderedCache(ttl=0, max_bytes=10_000))
    assert cache.put("k", "w", b"{}", []).body == b"{}"
    assert cache.get("k") is None and not cache.enabled


class Held:
    """A background render that waits for `go`, counting its runs; it puts `body` under `key`
    or fails."""

    def __init__(self, cache: RenderedCache, key: str, body: bytes, fail: bool = False) -> None:
        self.cache, self.key, self.body, self.fail = cache, key, body, fail
        self.go = asyncio.Event()
        self.runs = 0

    async def __call__(self, keys: list[str]) -> None:
        assert keys == [self.key]
        self.runs += 1
        await self.go.wait()
        if self.fail:
            raise RuntimeError("store away")
        self.cache.put(self.key, "w", self.body, [])


async def _settled(cache: RenderedCache) -> None:
    await asyncio.gather(*list(cache._drains.values()))


async def test_an_answer_read_late_in_its_ttl_is_rendered_again_once_meanwhile_served() -> None:
    clock = Ticks()
    cache = following(RenderedCache(ttl=30, max_bytes=10_000, clock=clock))
    cache.put("k", "w", b"old", [])
    clock.now = 30 * rendered_module.REFRESH_AT - 0.1
    entry = cache.get("k")
    assert entry is not None and not cache.stale("k", entry)
    clock.now = 30 * rendered_module.REFRESH_AT
    render = Held(cache, "k", b"new")
    for _ in range(3):  # read three times while its render runs: one render
        entry = cache.get("k")
        assert entry is not None and entry.body == b"old"
        if cache.stale("k", entry):
            cache.refresh("kind", ["k"], render)
    await asyncio.sleep(0)
    render.go.set()
    await _settled(cache)
    assert render.runs == 1
    clock.now = 31  # past the first answer's ttl, within the new one's
    entry = cache.get("k")
    assert entry is not None and entry.body == b"new" and not cache.stale("k", entry)


async def test_answers_due_are_rendered_again_together_in_batches_per_kind() -> None:
    cache = following(RenderedCache(ttl=30, max_bytes=10**7))
    calls: list[tuple[str, list[Any]]] = []

    def render(kind: str) -> Any:
        async def run(keys: list[Any]) -> None:
            calls.append((kind, keys))

        return run

    cache.refresh("v1", range(150), render("v1"))
    cache.refresh("v1", range(100, 250), render("v1"))  # 100-149 queued already
    cache.refresh("page", ["p7"], render("page"))
    await _settled(cache)
    assert sorted(len(k) for kind, k in calls if kind == "v1") == [50, 100, 100]
    assert sorted(n for kind, k in calls if kind == "v1" for n in k) == list(range(250))
    assert ("page", ["p7"]) in calls and not cache._refreshing


async def test_a_failed_background_render_leaves_the_answer_to_expire() -> None:
    clock = Ticks()
    cache = following(RenderedCache(ttl=30, max_bytes=10_000, clock=clock))
    cache.put("k", "w", b"old", [])
    clock.now = 25
    failing = Held(cache, "k", b"new", fail=True)
    failing.go.set()
    cache.refresh("kind", ["k"], failing)
    await _settled(cache)
    entry = cache.get("k")
    assert entry is not None and entry.body == b"old" and cache.stale("k", entry)  # again
    clock.now = 30
    assert cache.get("k") is None


async def test_nothing_is_rendered_again_while_the_changes_are_not_followed() -> None:
    clock = Ticks()
    cache = following(RenderedCache(ttl=30, max_bytes=10_000, clock=clock))
    cache.put("k", "w", b"old", [])
    clock.now = 25
    entry = cache.get("k")
    cache.live = False
    assert entry is not None and not cache.stale("k", entry)


# through the API


async def _write(store: Any, citations: int, at: datetime) -> None:
    obs = Observation(DOI, "crossref", at, Status.OK, {"citations": citations})
    await store.write_aggregates(fold([obs], await store.states([(DOI, "crossref")])))


def _change(previous: int, current: int, at: datetime) -> MetricChanged:
    return MetricChanged(
        DOI,
        "crossref",
        {"citations": previous},
        {"citations": current},
        {"citations": current - previous},
        at,
    )


async def _citations(a: Api, path: str = f"/api/v1/works/{DOI}") -> int:
    resp = await a.client.get(path)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return int(body["sources"][0]["metrics"]["citations"])


async def _heard_all(a: Api) -> None:
    """Wait until the API's reader of the change topic has taken everything published."""
    hub = a.client.server.app[HUB]
    for _ in range(200):
        if sum(hub.position.values()) >= a.bus.topic(TOPIC_CHANGED).end:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the change was not heard")


async def _seeded(a: Api) -> None:
    await a.store.register([Work(DOI, doi=DOI, title="Kept")])
    await _write(a.store, 10, AT)
    assert await _citations(a) == 10
    assert len(a.client.server.app[RENDERED]) == 1


async def test_a_change_then_a_read_shows_the_new_numbers(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        await _seeded(a)
        await _write(a.store, 11, AT + timedelta(hours=1))
        assert await _citations(a) == 10  # no change heard: the kept answer, within its ttl
        await publish(a.bus, _change(10, 11, AT + timedelta(hours=1)))
        await _heard_all(a)
        assert await _citations(a) == 11


async def test_a_change_heard_before_it_is_stored_is_not_kept_out(tmp_path: Path) -> None:
    """The aggregator publishes a change, then stores it: a read in between must not keep
    the old numbers for the ttl."""
    async with api(tmp_path) as a:
        await _seeded(a)
        later = AT + timedelta(hours=1)
        await publish(a.bus, _change(10, 12, later))
        await _heard_all(a)
        assert await _citations(a) == 10  # what the store holds yet
        await _write(a.store, 12, later)
        assert await _citations(a) == 12
        assert await _citations(a) == 12  # and now kept
        assert len(a.client.server.app[RENDERED]) == 1


async def test_a_repeat_with_the_etag_is_a_304_until_the_numbers_change(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        await _seeded(a)
        first = await a.client.get(f"/api/v1/works/{DOI}")
        etag = first.headers["ETag"]
        again = await a.client.get(f"/api/v1/works/{DOI}", headers={"If-None-Match": etag})
        assert again.status == 304 and again.headers["ETag"] == etag
        later = AT + timedelta(hours=1)
        await publish(a.bus, _change(10, 13, later))
        await _write(a.store, 13, later)
        await _heard_all(a)
        changed = await a.client.get(f"/api/v1/works/{DOI}", headers={"If-None-Match": etag})
        assert changed.status == 200 and changed.headers["ETag"] != etag
        assert (await changed.json())["sources"][0]["metrics"]["citations"] == 13


async def test_a_batch_is_the_works_as_read_one_by_one(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        await _seeded(a)
        other = "10.5555/kept.2"
        await a.store.register([Work(other, doi=other, title="Other")])
        one = await (await a.client.get(f"/api/v1/works/{DOI}")).json()
        two = await (await a.client.get(f"/api/v1/works/{other}")).json()
        resp = await a.client.get(f"/api/v1/works?ids={other},10.5555/none,{DOI},{other}")
        assert resp.status == 200
        assert await resp.json() == {
            "total": 3,
            "missing": ["10.5555/none"],
            "data": [two, one, two],
        }
        later = AT + timedelta(hours=1)
        await publish(a.bus, _change(10, 14, later))
        await _write(a.store, 14, later)
        await _heard_all(a)
        batch = await (await a.client.get(f"/api/v1/works?ids={DOI}")).json()
        assert batch["data"][0]["sources"][0]["metrics"]["citations"] == 14


async def test_every_form_a_work_was_asked_by_shows_its_change(tmp_path: Path) -> None:
    """Answers are kept by the entry as given; a change drops them all, and an entry that
    names no identifier is a 400 even beside kept ones."""
    async with api(tmp_path) as a:
        await _seeded(a)
        forms = [f"/api/v1/works/https://doi.org/{DOI}", f"/api/v1/works?ids=doi:{DOI.upper()}"]
        assert await _citations(a, forms[0]) == 10
        assert (await (await a.client.get(forms[1])).json())["total"] == 1
        assert len(a.client.server.app[RENDERED]) == 3
        bad = await a.client.get(f"/api/v1/works?ids={DOI},not-an-id")
        assert bad.status == 400 and "not-an-id" in (await bad.json())["error"]
        later = AT + timedelta(hours=1)
        await publish(a.bus, _change(10, 15, later))
        await _write(a.store, 15, later)
        await _heard_all(a)
        assert len(a.client.server.app[RENDERED]) == 0
        assert await _citations(a, forms[0]) == 15
        batch = await (await a.client.get(forms[1])).json()
        assert batch["data"][0]["sources"][0]["metrics"]["citations"] == 15


async def test_the_work_page_is_kept_with_its_headers_and_shows_a_change(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        await _seeded(a)
        first = await a.client.get(f"/works/{DOI}")
        again = await a.client.get(f"/works/{DOI}")
        assert first.status == again.status == 200
        assert await first.read() == await again.read()
        for name in ("Content-Type", "Content-Security-Policy", "X-Content-Type-Options"):
            assert again.headers[name] == first.headers[name]
        assert len(a.client.server.app[RENDERED]) == 2  # the JSON and the page
        other = await a.client.get(f"/works/{DOI}", headers={"Host": "alm.example.org"})
        assert "http://alm.example.org/badge/" in await other.text()  # its own origin's snippet
        later = AT + timedelta(hours=1)
        await publish(a.bus, _change(10, 16, later))
        await _write(a.store, 16, later)
        await _heard_all(a)
        assert ">16<" in await (await a.client.get(f"/works/{DOI}")).text()


def test_nothing_is_kept_while_the_changes_are_not_followed() -> None:
    cache = RenderedCache(ttl=30, max_bytes=10_000)
    assert cache.put("k", "w", b"{}", []).body == b"{}"
    assert cache.get("k") is None


class AwayAtFirst:
    """A change feed whose broker does not answer the first `away` times it is asked."""

    def __init__(self, feed: ChangeFeed, away: int) -> None:
        self.feed, self.away = feed, away

    async def end(self) -> Position:
        if self.away > 0:
            self.away -= 1
            raise ConnectionError("broker away")
        return await self.feed.end()

    def reader(self, start: Mapping[int, int]) -> FeedReader:
        return self.feed.reader(start)


async def test_a_broker_away_at_start_up_serves_without_keeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API starts and answers with the change topic away, keeps nothing until it follows
    the topic, then keeps answers and drops them on a change as usual."""
    monkeypatch.setattr(hub_module, "RETRY", 0.2)
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    bus = MemoryBus(retained=(TOPIC_CHANGED,))
    context = api_context(Settings(data_dir=tmp_path), store=store, bus=bus)
    feed = AwayAtFirst(context.feed, away=2)
    app = init_app(replace(context, feed=feed))
    try:
        async with TestClient(TestServer(app)) as client:
            a = Api(client, bus, store, Settings(data_dir=tmp_path), {})
            await a.store.register([Work(DOI, doi=DOI, title="Kept")])
            await _write(a.store, 10, AT)
            assert await _citations(a) == 10
            assert len(app[RENDERED]) == 0 and feed.away > 0
            for _ in range(100):
                if app[RENDERED].live:
                    break
                await asyncio.sleep(0.05)
            assert await _citations(a) == 10 and len(app[RENDERED]) == 1
            later = AT + timedelta(hours=1)
            await publish(a.bus, _change(10, 17, later))
            await _write(a.store, 17, later)
            await _heard_all(a)
            assert await _citations(a) == 17
    finally:
        await store.close()


def test_the_settings_size_the_cache(tmp_path: Path) -> None:
    env = {"ALM_DATA_DIR": str(tmp_path), "ALM_API_WORK_CACHE_SECONDS": "0"}
    settings = Settings.from_env({**env, "ALM_API_WORK_CACHE_MB": "8"})
    context = api_context(settings, store=SqliteStore(tmp_path / "a.sqlite"), bus=MemoryBus())
    assert (context.work_cache_seconds, context.work_cache_bytes) == (0, 8 * 1024 * 1024)
    assert not init_app(context)[RENDERED].enabled
    default = api_context(Settings.from_env({"ALM_DATA_DIR": str(tmp_path)}), bus=MemoryBus())
    assert (default.work_cache_seconds, default.work_cache_bytes) == (300, 64 * 1024 * 1024)


async def test_answers_read_late_are_rendered_again_without_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What no change event says (here numbers stored without one) reaches a work read often
    before its answers' ttl: the one work, a batch and the page are served as kept and
    rendered again behind the read."""
    monkeypatch.setattr(rendered_module, "REFRESH_AT", 0.0)  # every read is late
    async with api(tmp_path) as a:
        await _seeded(a)
        cache = a.client.server.app[RENDERED]
        batch = f"/api/v1/works?ids=doi:{DOI}"  # kept apart from the one work's answer
        assert (await a.client.get(batch)).status == 200
        assert ">10<" in await (await a.client.get(f"/works/{DOI}")).text()
        await _settled(cache)
        await _write(a.store, 18, AT + timedelta(hours=1))  # no change published
        assert await _citations(a) == 10  # kept, and rendered again behind it
        kept = await (await a.client.get(batch)).json()
        assert kept["data"][0]["sources"][0]["metrics"]["citations"] == 10
        assert ">10<" in await (await a.client.get(f"/works/{DOI}")).text()
        await _settled(cache)
        assert await _citations(a) == 18
        again = await (await a.client.get(batch)).json()
        assert again["data"][0]["sources"][0]["metrics"]["citations"] == 18
        assert ">18<" in await (await a.client.get(f"/works/{DOI}")).text()
        assert len(cache) == 3
