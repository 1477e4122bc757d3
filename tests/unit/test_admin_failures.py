"""The operators' pages of what failed: `GET /admin/failures` with its JSON twin
`/api/v1/failures` (the store's failed-refresh listing), `GET /admin/deadletters` with
`/api/v1/deadletters` (the tail of alm.deadletter on the in-process bus): admin only, paged,
escaped, malformed letters shown as such."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.adapters.memory.bus import MemoryBus
from services.adapters.memory.reader import MemoryPartitionReader
from services.adapters.sqlite.keys import SqliteKeyStore
from services.aggregator.service import fold
from services.api.access import Access
from services.api.routes import ACCESS
from services.core.deadletter_log import DeadLetter, newest_first
from services.core.deadletters import refused, unreadable
from services.core.events import TOPIC_DEADLETTER, FetchError, Observation, Status
from services.core.keys import Role
from services.keyring import create_key
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>'
ROUTES = ("/admin/failures", "/api/v1/failures", "/admin/deadletters", "/api/v1/deadletters")


async def fail(kit: Kit, work: str, source: str, at: datetime, message: str = "boom") -> None:
    """Store what the aggregator stores for a failed refresh of `work` from `source`."""
    error = FetchError("http", message, True, 500)
    observation = Observation(work, source, at, Status.ERROR, error=error)
    await kit.store.write_aggregates(fold([observation], await kit.store.states([(work, source)])))


def test_the_pages_are_admin_routes() -> None:
    for path in ROUTES:
        assert ACCESS[("GET", path)] is Access.ADMIN


async def test_no_key_is_401_and_a_reader_key_403(tmp_path: Path) -> None:
    async with pipeline_kit(tmp_path) as kit:
        _, reader = await create_key(SqliteKeyStore(kit.store), "r", Role.READER, kit.clock())
        async with api_client(kit, tmp_path) as client:
            anonymous = [await client.get(path) for path in ROUTES]
            as_reader = [
                await client.get(path, headers={"Authorization": f"Bearer {reader}"})
                for path in ROUTES
            ]
            bodies = [await r.json() for r in anonymous + as_reader]
    assert [r.status for r in anonymous] == [401] * 4
    assert [r.status for r in as_reader] == [403] * 4
    assert [b["status"] for b in bodies] == [401] * 4 + [403] * 4


async def test_failures_are_listed_newest_first_and_paged(tmp_path: Path) -> None:
    """Three failures over two sources: newest first, two pages of two and one following
    `next`, by work id on request, filtered by source; a recovery leaves the listing."""
    async with pipeline_kit(tmp_path) as kit:
        await fail(kit, "10.1/a", "crossref", T0)
        await fail(kit, "10.1/b", "openalex", T0 + timedelta(minutes=2), "timeout")
        await fail(kit, "10.1/c", "crossref", T0 + timedelta(minutes=1))
        ok = Observation("10.1/c", "crossref", T0 + timedelta(hours=1), Status.OK, {"total": 2})
        async with api_client(kit, tmp_path, admin=True) as client:
            first = await (await client.get("/api/v1/failures?per_page=2")).json()
            second = await (await client.get(first["next"])).json()
            by_work = await (await client.get("/api/v1/failures?order=work")).json()
            crossref = await (await client.get("/api/v1/failures?source=crossref")).json()
            html = await client.get("/admin/failures?per_page=2")
            page = await html.text()
            later = await client.get("/admin/failures?" + first["next"].split("?")[1])
            later_page = await later.text()
            await kit.store.write_aggregates(
                fold([ok], await kit.store.states([("10.1/c", "crossref")]))
            )
            healed = await (await client.get("/api/v1/failures")).json()
            bad = [
                await client.get(f"/api/v1/failures?{q}")
                for q in ("order=x", "source=nope", "cursor=x", "per_page=0")
            ]
            # a cursor of the other order (no time) newest first: from the first page
            other = await (await client.get("/api/v1/failures?cursor=-.a.b")).json()
    listed = [f["work_id"] for f in first["data"] + second["data"]]
    assert listed == ["10.1/b", "10.1/c", "10.1/a"] and second["next"] is None
    assert first["data"][0] == {
        "work_id": "10.1/b",
        "source": "openalex",
        "failed_at": "2026-11-25T12:02:00Z",
        "error": "http: timeout",
        "attempt": None,
    }
    assert [f["work_id"] for f in by_work["data"]] == ["10.1/a", "10.1/b", "10.1/c"]
    assert [f["work_id"] for f in crossref["data"]] == ["10.1/c", "10.1/a"]
    assert [f["work_id"] for f in healed["data"]] == ["10.1/b", "10.1/a"]
    assert [r.status for r in bad] == [400] * 4
    assert other["data"] == healed["data"]
    assert html.status == 200 and html.content_type == "text/html"
    assert html.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert '<a href="/works/10.1/b">10.1/b</a>' in page and ">http: timeout<" in page
    assert 'rel="next" href="/admin/failures?per_page=2&amp;cursor=' in page
    assert '<a href="/works/10.1/a">10.1/a</a>' in later_page and 'rel="next"' not in later_page
    assert '<a href="/admin/deadletters">Dead letters</a>' in page


async def test_the_failures_page_escapes_hostile_error_text(tmp_path: Path) -> None:
    async with pipeline_kit(tmp_path) as kit:
        await fail(kit, f'10.1/"{HOSTILE}', "crossref", T0, HOSTILE)
        async with api_client(kit, tmp_path, admin=True) as client:
            page = await (await client.get("/admin/failures")).text()
    assert "<script>" not in page
    assert "http: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "/works/10.1/%22%3Cscript%3E" in page


def letter(work: str, source: str, at: datetime, reason: str) -> dict[str, Any]:
    request = {"work_id": work, "source": source, "requested_at": "2026-11-25T11:00:00Z"}
    return refused(f"alm.refresh.{source}", work, request, reason, at) | {"bad_event": request}


async def test_dead_letters_newest_first_paged_back_and_malformed_shown(tmp_path: Path) -> None:
    """Letters of the scheduler and fetchers, newest first, with reason, source, work, topic
    and time; a record that is no letter is listed as malformed; `next` pages back."""
    async with pipeline_kit(tmp_path) as kit:
        bus = kit.bus
        await bus.publish(TOPIC_DEADLETTER, [("10.1/a", letter("10.1/a", "crossref", T0, "r1"))])
        bad = unreadable("alm.works", "k", "{not json", "not JSON", T0 + timedelta(minutes=1))
        await bus.publish(TOPIC_DEADLETTER, [("k", bad)])
        await bus.publish(TOPIC_DEADLETTER, [("junk", {"hello": HOSTILE})])
        later = letter("10.1/b", "openalex", T0 + timedelta(minutes=3), HOSTILE)
        await bus.publish(TOPIC_DEADLETTER, [("10.1/b", later)])
        async with api_client(kit, tmp_path, admin=True) as client:
            first = await (await client.get("/api/v1/deadletters?per_page=2")).json()
            second = await (await client.get(first["next"])).json()
            resp = await client.get("/admin/deadletters")
            page = await resp.text()
            bad_before = await client.get("/api/v1/deadletters?before=0")
    rows = first["data"] + second["data"]
    assert [(r["offset"], r["work_id"]) for r in rows] == [
        (3, "10.1/b"),
        (2, None),
        (1, "k"),
        (0, "10.1/a"),
    ]
    newest = rows[0]
    assert (newest["source"], newest["topic"], newest["reason"]) == (
        "openalex",
        "alm.refresh.openalex",
        HOSTILE,
    )
    assert newest["failed_at"] == "2026-11-25T12:03:00Z" and newest["malformed"] is None
    assert rows[2]["topic"] == "alm.works" and rows[2]["malformed"] is None
    assert rows[1]["malformed"].startswith("not a letter") and rows[1]["key"] == "junk"
    assert second["next"] is None and "before=0:2" in first["next"]
    assert resp.status == 200 and "<script>" not in page
    assert "&lt;script&gt;" in page and "malformed: not a letter" in page
    assert '<a href="/works/10.1/b">10.1/b</a>' in page
    assert bad_before.status == 400


async def test_the_embedded_bus_keeps_dead_letters_its_scheduler_has_read() -> None:
    """alm.deadletter is retained on the in-process bus (bootstrap): once the scheduler's
    group has committed its letters they are still there to read."""
    from services.bootstrap.adapters import make_bus
    from services.settings import Settings

    bus = make_bus(Settings(data_dir=Path("/nonexistent")))
    assert isinstance(bus, MemoryBus)
    consumer = bus.consumer([TOPIC_DEADLETTER], "alm-scheduler")
    await bus.publish(TOPIC_DEADLETTER, [("w", {"n": n}) for n in range(3)])
    await consumer.poll(10, 0.1)
    await consumer.commit()
    reader = MemoryPartitionReader(bus)
    end = await reader.end_offsets(TOPIC_DEADLETTER, [0])
    found = await reader.read(TOPIC_DEADLETTER, {0: (1, end[0])})
    assert end == {0: 3} and [m.value for m in found] == [{"n": 1}, {"n": 2}]


def dead(partition: int, offset: int, minute: int | None) -> DeadLetter:
    at = None if minute is None else T0 + timedelta(minutes=minute)
    return DeadLetter(partition, offset, "k", "w", None, None, None, at)


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 10])
def test_newest_first_takes_each_partitions_top_and_pages_back(limit: int) -> None:
    """Over two partitions: newest first by each partition's top letter (what a page takes of a
    partition is its top slice, so `before` can page back), pages disjoint and complete
    whatever their size; a letter with no readable time is taken once on top."""
    letters = {0: [dead(0, 5, 1), dead(0, 6, 4), dead(0, 7, None)], 1: [dead(1, 2, 3)]}
    letters[1] += [dead(1, 3, 2), dead(1, 4, 5)]
    before = {0: 8, 1: 5}
    seen: list[tuple[int, int]] = []
    while True:
        left = {p: [d for d in rows if d.offset < before[p]] for p, rows in letters.items()}
        page, before = newest_first(left, before, limit)
        if not page:
            break
        assert len(page) <= limit
        seen += [(d.partition, d.offset) for d in page]
    assert seen == [(0, 7), (1, 4), (0, 6), (1, 3), (1, 2), (0, 5)]


def test_a_letter_that_is_json_but_no_object_is_malformed() -> None:
    from services.core.deadletter_log import letter_of
    from services.core.ports import Message

    value: Any = json.loads("[1]")
    found = letter_of(Message(TOPIC_DEADLETTER, "k", value, 0, 9), lambda v: None)
    assert found.malformed == "not a JSON object" and found.offset == 9
