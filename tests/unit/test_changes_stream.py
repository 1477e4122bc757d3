"""GET /api/v1/changes over the in-process bus: changes as Server-Sent Events, filtered, with ids
that let a client resume exactly, heartbeats, a bounded queue per client and a final event
whenever the server ends a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from services.api.state import HUB
from services.core.works import Work
from tests.sse_kit import Block, Reader
from tests.unit.changes_kit import Api, api, change, publish

WAIT = 10.0


@asynccontextmanager
async def stream(env: Api, query: str = "", **headers: str) -> AsyncIterator[Reader]:
    """An open stream, read up to the block that says where it starts."""
    resp = await env.client.get(f"/api/v1/changes{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    reader = Reader(resp)
    try:
        yield reader
    finally:
        resp.close()


async def take(reader: Reader, count: int, name: str = "metric_changed") -> list[Block]:
    """The next `count` dispatched events called `name` (failing after WAIT seconds)."""
    out: list[Block] = []
    async with asyncio.timeout(WAIT):
        async for block in reader.events(name):
            out.append(block)
            if len(out) == count:
                break
    return out


async def started(reader: Reader) -> Block:
    """Read up to the id-only block that opens a stream (after `retry:`)."""
    async with asyncio.timeout(WAIT):
        async for block in reader.blocks():
            if block.id is not None and not block.dispatched:
                return block
    raise AssertionError("the stream ended before saying where it starts")


async def test_live_changes_arrive_as_events_with_increasing_ids(tmp_path: Path) -> None:
    """A connected client gets `retry:`, an id-only block, then each change as a
    metric_changed event whose data is the topic's JSON and whose id is the position after it;
    the headers are an event stream's, not to be cached or buffered."""
    async with api(tmp_path, retry_ms=1234) as env, stream(env) as reader:
        headers = reader.response.headers
        assert headers["Content-Type"].startswith("text/event-stream")
        assert headers["Cache-Control"] == "no-cache"
        assert headers["X-Accel-Buffering"] == "no"
        first = await started(reader)
        assert reader.retry == 1234
        assert first.id == "0:0"
        changes = [change(n) for n in range(3)]
        await publish(env.bus, *changes)
        got = await take(reader, 3)
    assert [b.json for b in got] == [c.to_dict() for c in changes]
    assert [b.id for b in got] == ["0:1", "0:2", "0:3"]


async def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    """Events published while a client was away are sent first when it reconnects with the
    last id it got, then live ones follow, each exactly once."""
    async with api(tmp_path) as env:
        async with stream(env) as reader:
            await started(reader)
            await publish(env.bus, *(change(n) for n in range(3)))
            seen = await take(reader, 3)
        await publish(env.bus, *(change(n) for n in range(3, 8)))
        async with stream(env, **{"Last-Event-ID": reader.last_id}) as again:
            resumed = await take(again, 5)
            await publish(env.bus, change(8))
            live = await take(again, 1)
    works = [b.json["work_id"] for b in [*seen, *resumed, *live]]
    assert works == [f"10.5555/w{n}" for n in range(9)]


async def test_the_opening_id_alone_resumes_without_a_gap(tmp_path: Path) -> None:
    """A client that got no change before it lost the connection resumes from the id that
    opened its stream: what was published meanwhile is not lost. `?last_event_id=` works
    like the header (for clients that cannot set it)."""
    async with api(tmp_path) as env:
        await publish(env.bus, change(0))
        async with stream(env) as reader:
            opening = await started(reader)
        await publish(env.bus, change(1), change(2))
        async with stream(env, f"?last_event_id={opening.id}") as again:
            got = await take(again, 2)
    assert [b.json["work_id"] for b in got] == ["10.5555/w1", "10.5555/w2"]


async def test_an_id_from_another_process_restarts_at_the_oldest_kept(tmp_path: Path) -> None:
    """An id past the end (the bus of an embedded process that restarted began again at 0)
    resumes from the oldest change kept: nothing published since is lost."""
    async with api(tmp_path) as env:
        await publish(env.bus, change(0), change(1))
        async with stream(env, **{"Last-Event-ID": "0:5000"}) as reader:
            got = await take(reader, 2)
    assert [b.id for b in got] == ["0:1", "0:2"]


async def test_changes_no_longer_kept_are_announced_as_a_gap(tmp_path: Path) -> None:
    """Resuming from a position the topic no longer keeps gives a `gap` event naming the
    missed offsets, then everything kept."""
    async with api(tmp_path, window=10) as env:
        await publish(env.bus, *(change(n) for n in range(25)))
        async with stream(env, **{"Last-Event-ID": "0:5"}) as reader:
            gap = (await take(reader, 1, "gap"))[0]
            rest = await take(reader, 10)
    assert gap.json["from"] == 5
    assert gap.json["to"] == 15
    assert gap.json["missed"] == 10
    assert gap.id == "0:15"
    assert [b.json["work_id"] for b in rest] == [f"10.5555/w{n}" for n in range(15, 25)]


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("?source=openalex", [1]),
        ("?source=crossref,wikipedia", [0, 2, 3, 4]),
        ("?source=crossref&source=wikipedia", [0, 2, 3, 4]),
        ("?group=discussed", [2]),
        ("?group=cited&source=openalex", [1]),
        # a name repeated counts once: 150 listed values are 2 groups (the document allows
        # 100 comma lists of names)
        ("?" + "&".join(["group=discussed,cited"] * 75), [0, 1, 2, 3, 4]),
        ("?work=10.5555/W3", [3]),
        ("?work=https://doi.org/10.5555/w3&work=pmid:777", [3, 4]),
        ("?publisher=%20public%20LIBRARY%20of%20science%20", [0, 3]),
        ("?publisher=Public+Library+of+Science&source=openalex", []),
    ],
)
async def test_filters(tmp_path: Path, query: str, wanted: list[int]) -> None:
    """Only changes passing every criterion arrive: source, group (of a changed metric),
    work (any identifier form; a PMID finds the work registered by DOI), publisher (from the
    event, or for older events from the registry; no case, spaces collapsed)."""
    async with api(tmp_path, heartbeat=0.1) as env:
        await env.store.register([Work("10.5555/pm", pmid="777", publisher="Other")])
        await env.store.register([Work("10.5555/w3", publisher="Public Library of Science")])
        events = [
            change(0, publisher="Public Library of Science"),
            change(1, source="openalex"),
            change(2, source="wikipedia", delta={"pages": 2}),
            change(3, work="10.5555/w3"),
            change(4, work="10.5555/pm"),
        ]
        bodies = [c.to_dict() for c in events]
        del bodies[3]["publisher"]  # an event older than the field: looked up
        index = {b["work_id"]: n for n, b in enumerate(bodies)}
        async with stream(env, query) as reader:
            await started(reader)
            await env.bus.publish("alm.metrics.changed", [(b["work_id"], b) for b in bodies])
            got = []
            async with asyncio.timeout(WAIT):
                async for block in reader.blocks():  # until the id passes the last change
                    if block.event == "metric_changed":
                        got.append(index[block.json["work_id"]])
                    if block.id == "0:5":
                        break
    assert got == wanted


async def test_heartbeats_carry_the_position_past_filtered_changes(tmp_path: Path) -> None:
    """An idle stream gets a comment line every heartbeat; after changes the filter dropped,
    the heartbeat also moves the client's id past them (a reconnect does not read them
    again)."""
    async with api(tmp_path, heartbeat=0.1) as env, stream(env, "?source=openalex") as reader:
        await started(reader)
        await publish(env.bus, change(0), change(1))
        async with asyncio.timeout(WAIT):
            async for block in reader.blocks():
                if block.comments and block.id == "0:2":
                    break
        async with asyncio.timeout(WAIT):
            async for block in reader.blocks():
                if block.comments:
                    assert block.id is None  # nothing moved since: a bare comment
                    break


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?source=nope", {}),
        ("?group=liked", {}),
        ("?work=not-an-id", {}),
        ("", {"Last-Event-ID": "yesterday"}),
        ("", {"Last-Event-ID": "0:1,,0:2"}),
        ("?source=crossref,%20openalex", {}),
        ("?source=crossref,", {}),
        ("?work=", {}),
        ("?last_event_id=-1:4", {}),
    ],
)
async def test_bad_filters_and_ids_are_a_json_400(
    tmp_path: Path, query: str, headers: dict[str, str]
) -> None:
    """A wrong filter or a malformed Last-Event-ID is refused before the stream starts."""
    async with api(tmp_path) as env:
        resp = await env.client.get(f"/api/v1/changes{query}", headers=headers)
        assert resp.status == 400
        assert (await resp.json())["status"] == 400


async def test_a_stream_ends_after_its_maximum_duration_saying_why(tmp_path: Path) -> None:
    """After ALM_CHANGES_MAX_SECONDS the server sends `closing` (reason max_duration, the id to
    resume with) and ends the stream."""
    async with api(tmp_path, max_seconds=0.3) as env, stream(env) as reader:
        await started(reader)
        await publish(env.bus, change(0))
        closing = (await take(reader, 1, "closing"))[0]
        assert await reader.response.content.read() == b""
    assert closing.json["reason"] == "max_duration"
    assert closing.json["resume_with"] == closing.id == "0:1"


async def test_a_stream_outlives_the_deadline_of_a_request(tmp_path: Path) -> None:
    """Every API request has a deadline (3 x ALM_API_STORE_TIMEOUT, a JSON 503 past it); a
    stream lives past it, getting changes, until its own maximum duration."""
    async with (
        api(tmp_path, store_timeout=0.05, max_seconds=1.0, heartbeat=0.1) as env,
        stream(env) as reader,
    ):
        await started(reader)
        await asyncio.sleep(0.5)  # past the request deadline of 0.15 s
        await publish(env.bus, change(0))
        [got] = await take(reader, 1)
        closing = (await take(reader, 1, "closing"))[0]
    assert got.json == change(0).to_dict()
    assert closing.json["reason"] == "max_duration"


async def test_a_client_too_far_behind_is_closed_and_catches_up_on_reconnect(
    tmp_path: Path,
) -> None:
    """More changes than the client queue holds, faster than it takes them: the client is
    closed with reason slow_client rather than buffered for; reconnecting with the id it was
    given, it gets every change from the topic, none lost."""
    async with api(tmp_path, client_queue=5) as env:
        async with stream(env) as reader:
            await started(reader)
            await publish(env.bus, *(change(n) for n in range(40)))
            before: list[Block] = []
            async with asyncio.timeout(WAIT):
                async for block in reader.blocks():
                    if block.event == "closing":
                        closing = block
                        break
                    if block.event == "metric_changed":
                        before.append(block)
        assert closing.json["reason"] == "slow_client"
        async with stream(env, **{"Last-Event-ID": closing.json["resume_with"]}) as again:
            after = await take(again, 40 - len(before))
    works = [b.json["work_id"] for b in [*before, *after]]
    assert works == [f"10.5555/w{n}" for n in range(40)]


async def test_server_shutdown_says_so(tmp_path: Path) -> None:
    """When the API stops, each stream gets `closing` with reason shutdown."""
    async with api(tmp_path) as env, stream(env) as reader:
        await started(reader)
        await env.client.app[HUB].close()
        closing = (await take(reader, 1, "closing"))[0]
    assert closing.json["reason"] == "shutdown"


async def test_too_many_streams_is_a_503_with_retry_after(tmp_path: Path) -> None:
    """Past ALM_CHANGES_MAX_CLIENTS open streams, a new one is refused for now."""
    async with api(tmp_path, max_clients=1) as env, stream(env) as reader:
        await started(reader)
        resp = await env.client.get("/api/v1/changes")
        assert resp.status == 503
        assert resp.headers["Retry-After"]


async def test_head_answers_the_headers_without_holding_a_stream(tmp_path: Path) -> None:
    """HEAD gets an event stream's headers and returns at once."""
    async with api(tmp_path) as env:
        async with asyncio.timeout(WAIT):
            resp = await env.client.head("/api/v1/changes?source=crossref")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")


async def test_a_client_that_goes_away_is_forgotten(tmp_path: Path) -> None:
    """Closing the connection ends the handler: the hub counts one client less."""
    async with api(tmp_path, heartbeat=0.05) as env:
        async with stream(env) as reader:
            await started(reader)
            assert env.client.app[HUB].clients == 1
        async with asyncio.timeout(WAIT):
            while env.client.app[HUB].clients:  # noqa: ASYNC110 (a counter, not an event)
                await asyncio.sleep(0.02)


async def test_http_client_reads_it_with_plain_aiohttp(tmp_path: Path) -> None:
    """The stream is plain HTTP/1.1 chunks a client reads line by line (no framing of ours)."""
    async with api(tmp_path) as env:
        url = env.client.make_url("/api/v1/changes")
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            lines: list[bytes] = []
            async with asyncio.timeout(WAIT):
                while len(lines) < 2:
                    lines.append(await resp.content.readline())
    assert lines == [b"retry: 3000\n", b"\n"]


async def test_a_bad_query_id_is_refused_even_beside_a_good_header(tmp_path: Path) -> None:
    """The header wins over ?last_event_id=, but a malformed one is a 400 all the same."""
    async with api(tmp_path) as env:
        resp = await env.client.get(
            "/api/v1/changes?last_event_id=%C2%84", headers={"Last-Event-ID": "0:1"}
        )
        assert resp.status == 400
        assert "last_event_id" in (await resp.json())["error"]
