"""The pure parts of the change channels: event ids as positions, filters, the webhook
signature, which answers are retried and how long to wait; and the in-process feed."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.adapters.memory.bus import MemoryBus
from services.adapters.memory.feed import MemoryChangeFeed
from services.adapters.sqlite import SqliteStore
from services.bootstrap import make_catalog
from services.core.change_filter import ChangeFilter
from services.core.change_publishers import PublisherLookup
from services.core.changefeed import Gap, decode_position, encode_position
from services.core.delivery import (
    backoff,
    literal_private,
    outcome_of,
    retry_delay,
    signature,
    signature_header,
    verify,
)
from services.core.events import TOPIC_CHANGED
from services.core.webhooks import Outcome
from services.core.works import Work
from tests.unit.changes_kit import change, publish

CATALOG = make_catalog()


@given(st.dictionaries(st.integers(0, 1023), st.integers(0, 10**18 - 1), min_size=1))
def test_positions_round_trip(position: dict[int, int]) -> None:
    """An event id decodes to the position it encodes."""
    assert decode_position(encode_position(position)) == position


def test_position_text() -> None:
    """Pairs sorted by partition, `p:offset` joined by commas; a partition named twice takes
    the last offset."""
    assert encode_position({2: 7, 0: 12, 1: 0}) == "0:12,1:0,2:7"
    assert decode_position("0:12,1:0,0:3") == {0: 3, 1: 0}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "0:",
        ":5",
        "a:1",
        "0:-1",
        " 0:1",
        "0:1,",
        "01:5",
        "0:1;1:2",
        "0:1e3",
        "٣:1",
        "0:" + "9" * 19,
    ],
)
def test_malformed_positions_are_refused(text: str) -> None:
    """Anything but partition:offset pairs of plain digits (offsets under 2**63) is a
    ValueError with a message."""
    with pytest.raises(ValueError, match="event id"):
        decode_position(text)


def test_positions_are_bounded() -> None:
    """An id naming thousands of partitions is refused, not parsed into a large dict."""
    with pytest.raises(ValueError, match="at most"):
        decode_position(",".join(f"{p}:0" for p in range(5000)))


@pytest.mark.parametrize(
    ("flt", "matches"),
    [
        (ChangeFilter(), True),
        (ChangeFilter.of(sources=["crossref"]), True),
        (ChangeFilter.of(sources=["openalex"]), False),
        (ChangeFilter.of(groups=["cited"]), True),
        (ChangeFilter.of(groups=["viewed", "cited"]), True),
        (ChangeFilter.of(groups=["discussed"]), False),
        (ChangeFilter.of(works=["10.5555/w1"]), True),
        (ChangeFilter.of(works=["10.5555/w2"]), False),
        (ChangeFilter.of(publishers=["  PLOS   One "]), True),
        (ChangeFilter.of(publishers=["PLOS"]), False),
        (ChangeFilter.of(sources=["crossref"], groups=["discussed"]), False),
    ],
)
def test_filter_criteria(flt: ChangeFilter, matches: bool) -> None:
    """Any value within a criterion, every criterion, group from the metrics that changed,
    publishers without case or extra spaces."""
    body = change(1).to_dict()
    assert flt.matches(body, "PLOS one", CATALOG) is matches


def test_filter_needs_a_known_publisher() -> None:
    """A change whose work has no known publisher does not pass a publisher filter."""
    assert not ChangeFilter.of(publishers=["x"]).matches(change(1).to_dict(), None, CATALOG)


def test_filter_round_trips_as_json() -> None:
    """What a webhook stores is what it filters with."""
    flt = ChangeFilter.of(["crossref"], ["cited"], ["PLOS"], ["10.5555/w1"])
    assert ChangeFilter.from_dict(flt.to_dict()) == flt


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The documented construction, computed independently here."""
    body = b'{"a": 1}'
    expected = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_x", 1700000000, body) == expected
    assert signature_header("whsec_x", 1700000000, body) == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize(
    ("header", "body", "now", "ok"),
    [
        (signature_header("s", 1000, b"x"), b"x", 1000, True),
        (signature_header("s", 1000, b"x"), b"x", 1299, True),
        (signature_header("s", 1000, b"x"), b"x", 1301, False),  # too old: a replay
        (signature_header("s", 1000, b"x"), b"y", 1000, False),  # body changed
        (signature_header("t", 1000, b"x"), b"x", 1000, False),  # another secret
        (f"t=1000,v1=00,v1={signature('s', 1000, b'x')}", b"x", 1000, True),  # rotation
        ("v1=" + signature("s", 1000, b"x"), b"x", 1000, False),  # no timestamp
        ("t=abc,v1=00", b"x", 1000, False),
        ("", b"x", 1000, False),
    ],
)
def test_verify(header: str, body: bytes, now: int, ok: bool) -> None:
    """A receiver accepts exactly the right secret, body and a recent timestamp."""
    assert verify("s", header, body, now) is ok


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (301, Outcome.FAILED),
        (400, Outcome.FAILED),
        (404, Outcome.FAILED),
        (410, Outcome.FAILED),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
    ],
)
def test_which_answers_are_retried(status: int, outcome: Outcome) -> None:
    """2xx delivered; 5xx, 408 and 429 retried; other 4xx and redirects not."""
    assert outcome_of(status) is outcome


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    """Between half and all of base * 2^(attempt-1), never over the cap."""
    assert [backoff(a, 1.0, 60.0, 0.0) for a in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert [backoff(a, 1.0, 60.0, 0.999999) for a in (1, 2)] == pytest.approx([1.0, 2.0])
    assert backoff(30, 1.0, 60.0, 1.0) == 60.0
    assert backoff(10_000, 1.0, 60.0, 0.5) == 45.0


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    """A receiver asking for longer gets it, within the cap; a shorter ask does not hurry."""
    assert retry_delay(1, 1.0, 60.0, 0.0, 30.0) == 30.0
    assert retry_delay(1, 1.0, 60.0, 0.0, 3600.0) == 60.0
    assert retry_delay(3, 1.0, 60.0, 0.0, 0.1) == 2.0


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("http://127.0.0.1:8080/x", True),
        ("http://localhost/x", True),
        ("http://api.localhost/x", True),
        ("http://10.1.2.3/", True),
        ("http://169.254.169.254/latest/meta-data", True),
        ("http://[::1]/", True),
        ("http://[fd00::1]/", True),
        ("https://8.8.8.8/", False),
        ("https://hooks.example.org/alm", False),
    ],
)
def test_private_literals_are_recognised(url: str, private: bool) -> None:
    """Loopback names and non-public IP literals are refused without a lookup."""
    assert (literal_private(url) is not None) is private


async def test_memory_feed_reads_from_a_position_and_stops_at_until() -> None:
    """A reader starts where it is told, reports what retention dropped as a gap, and never
    passes `until`."""
    bus = MemoryBus(window=5, retained=(TOPIC_CHANGED,))
    feed = MemoryChangeFeed(bus)
    await publish(bus, *(change(n) for n in range(8)))
    assert await feed.end() == {0: 8}
    reader = feed.reader({0: 1})
    items, gaps = await reader.read(2, 0, until={0: 5})
    assert gaps == [Gap(0, 1, 3)]
    assert [i.offset for i in items] == [3, 4]
    assert await reader.read(10, 0, until={0: 5}) == ([], [])
    items, _ = await reader.read(10, 0)
    assert [i.offset for i in items] == [5, 6, 7]
    assert reader.position == {0: 8}


async def test_a_retained_topic_keeps_its_window_after_a_group_read_it() -> None:
    """The notifier's group committing alm.metrics.changed does not take from SSE clients
    the last `window` changes; other topics still drop what every group committed."""
    bus = MemoryBus(window=3, retained=(TOPIC_CHANGED,))
    group = bus.consumer([TOPIC_CHANGED, "other"], "g")
    await publish(bus, *(change(n) for n in range(5)))
    await bus.publish("other", [("k", {"n": 1})])
    await group.poll(100, 0)
    await group.commit()
    assert [m.offset for m in bus.read(TOPIC_CHANGED, 0, 10)] == [2, 3, 4]
    assert bus.read("other", 0, 10) == []


async def test_publisher_lookup_reads_each_missing_work_once(tmp_path: Path) -> None:
    """Events with a publisher field use it; others are looked up in one read, then cached."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    reads: list[list[str]] = []
    get_works = store.get_works

    async def counting(ids: Any) -> Any:
        reads.append(list(ids))
        return await get_works(ids)

    store.get_works = counting  # type: ignore[method-assign]
    try:
        await store.register([Work("10.5555/a", publisher="A"), Work("10.5555/b")])
        lookup = PublisherLookup(store, size=10)
        with_field = change(1, work="10.5555/a", publisher="From event").to_dict()
        old = [
            {k: v for k, v in change(n, work=w).to_dict().items() if k != "publisher"}
            for n, w in ((2, "10.5555/a"), (3, "10.5555/b"), (4, "10.5555/zz"))
        ]
        assert await lookup.resolve([with_field, *old]) == ["From event", "A", None, None]
        assert await lookup.resolve(old) == ["A", None, None]
        assert reads == [["10.5555/a", "10.5555/b", "10.5555/zz"]]
    finally:
        await store.close()
