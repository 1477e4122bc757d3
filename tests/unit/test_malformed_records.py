"""Malformed records on every topic go to `alm.deadletter` with their topic and reason and do
not stop the consumer: the fetcher (refresh requests), the aggregator (observations, embedded
and in the faust agent), the scheduler (works, retries); unreadable dead letters are counted,
never re-published. A plug-in that lets a malformed answer through fails its works, not the
fetcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.aggregator import agents
from services.core.deadletters import MAX_BAD_EVENT_CHARS, unreadable
from services.core.events import (
    TOPIC_DEADLETTER,
    TOPIC_RAW,
    TOPIC_RETRY,
    TOPIC_WORKS,
    Observation,
    SourceEvent,
    Status,
    refresh_topic,
)
from services.core.packing import value_of
from services.core.ports import Consumer
from services.core.schema_check import check
from services.embedded import refresh_until_idle
from services.fetchers.outcomes import well_formed
from tests.unit.pipeline_kit import Kit, pipeline_kit

PEERJ = "10.7717/peerj.4375"
T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
VALID_OBSERVATION = Observation(PEERJ, "crossref", T0, Status.OK, {"citations": 3}).to_dict()


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path, sources=("crossref",)) as k:
        yield k


def _watch(kit: Kit) -> Consumer:
    """A consumer group of its own on alm.deadletter (joined before anything is published)."""
    return kit.bus.consumer([TOPIC_DEADLETTER], "test-dead-letters")


async def _dead_letters(watch: Consumer) -> list[dict[str, Any]]:
    return [dict(m.value) for m in await watch.poll(1000, 0)]


BAD_RECORDS = [
    (refresh_topic("crossref"), "k1", {"garbage": True}),
    (refresh_topic("crossref"), "10.1234/x", {**{"schema_version": 1}, "work_id": "10.\uff11/x"}),
    (TOPIC_RAW, PEERJ, {**VALID_OBSERVATION, "metrics": {"citations": "many"}}),
    (
        TOPIC_RAW,
        "10.1234/" + "a" * 10_000,
        {**VALID_OBSERVATION, "work_id": "10.1234/" + "a" * 10_000},
    ),
    (TOPIC_WORKS, "w", {"schema_version": 1, "work_id": "10.1234/\x1b", "event": "registered"}),
    (TOPIC_RETRY, "r", {"schema_version": 1, "work_id": PEERJ, "reason": 5}),
]


async def test_every_consumer_dead_letters_what_it_cannot_read(kit: Kit) -> None:
    """Each bad record becomes one dead letter naming its topic, bounded key and reason; a
    valid work registered among them is still refreshed."""
    watch = _watch(kit)
    for topic, key, value in BAD_RECORDS:
        await kit.bus.publish(topic, [(key, value)])
    await kit.register([PEERJ])
    await refresh_until_idle(kit.pipeline)
    letters = await _dead_letters(watch)
    assert sorted(letter["topic"] for letter in letters) == sorted(t for t, _, _ in BAD_RECORDS)
    for letter in letters:
        assert check("failed_refresh", letter)
        assert letter["reason"].startswith(f"unreadable {letter['topic']} record: ")
        assert len(letter["work_id"]) <= 300
    [state] = (await kit.store.states_for([PEERJ]))[PEERJ]
    assert state.status is Status.OK


async def test_an_unreadable_dead_letter_is_counted_not_republished(kit: Kit) -> None:
    """The scheduler reads alm.deadletter too: what it cannot read there is counted, and never
    dead-lettered again (no loop)."""
    watch = _watch(kit)
    await kit.bus.publish(TOPIC_DEADLETTER, [("x", {"not": "a dead letter"})])
    await refresh_until_idle(kit.pipeline)
    assert kit.pipeline.scheduler.unreadable_dead_letters == 1
    assert len(await _dead_letters(watch)) == 1


def test_a_huge_bad_record_gives_a_bounded_dead_letter() -> None:
    """A 7 MB value is kept as the start of its JSON with its length; the key is bounded."""
    letter = unreadable(TOPIC_RAW, "k" * 7_000_000, {"blob": "x" * 7_000_000}, "bad", T0)
    assert letter["bad_event"]["chars"] > 7_000_000
    assert len(letter["bad_event"]["truncated_json"]) == MAX_BAD_EVENT_CHARS
    assert len(letter["work_id"]) <= 300
    assert check("failed_refresh", letter)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"\xe2\x1e", "utf-8"),
        (b"not json", "line 1"),
        (b"[1, 2]", "not a JSON object"),
        (b"", ""),
    ],
)
def test_record_values_that_are_not_json_objects_become_unreadable_events(
    raw: bytes, needle: str
) -> None:
    """Bytes that are not a JSON object become an event no schema accepts, with the reason (as
    the Kafka consumer and the faust agent read them)."""
    event = value_of(raw)
    assert set(event) == {"undecodable", "error"}
    assert needle.lower() in str(event["error"]).lower()
    assert agents._value(raw) == event


def test_a_malformed_answer_a_plugin_let_through_fails_its_work_not_the_fetcher() -> None:
    """An event whose url is not a string (a plug-in bug) turns the observation into a
    retryable parse error that the schema accepts."""
    bad = Observation(
        PEERJ,
        "hypothesis",
        T0,
        Status.OK,
        {"annotations": 1},
        events=(SourceEvent("hypothesis:1", None, True),),  # type: ignore[arg-type]
    )
    obs, event = well_formed(bad)
    assert obs.status is Status.ERROR and obs.error is not None
    assert (obs.error.kind, obs.error.retryable) == ("parse", True)
    assert "malformed hypothesis answer" in obs.error.message
    assert check("observation", event)
