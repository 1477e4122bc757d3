"""Aggregation: folding observations into per-source state, and the aggregator's `fold`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import pytest

from services.aggregator.service import fold, learned_works
from services.core.aggregation import Aggregate, HistoryPoint, SourceState, aggregate
from services.core.events import FetchError, Observation, PeriodCount, SourceEvent, Status
from services.core.works import Work

WORK = "10.1371/journal.pcbi.1000204"
SOURCE = "crossref"
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)
T3 = T0 + timedelta(days=3)
TIMEOUT = FetchError("timeout", "upstream took 30 s", retryable=True)


def ok(
    at: datetime,
    metrics: Mapping[str, int],
    status: Status = Status.OK,
    work_id: str = WORK,
    source: str = SOURCE,
    **extra: object,
) -> Observation:
    """A successful (or not-found) observation."""
    return Observation(work_id, source, at, status, dict(metrics), **extra)  # type: ignore[arg-type]


def failed(at: datetime, error: FetchError | None = TIMEOUT, work_id: str = WORK) -> Observation:
    """A failed fetch."""
    return Observation(work_id, SOURCE, at, Status.ERROR, error=error)


def state_after(*observations: Observation) -> SourceState:
    """The state left by aggregating `observations` in order from nothing."""
    state: SourceState | None = None
    for obs in observations:
        state = aggregate(obs, state).state
    assert state is not None
    return state


def test_first_observation_records_totals_history_and_change() -> None:
    """A first observation is applied, written to history and announced with its full delta."""
    result = aggregate(ok(T0, {"citations": 5}), None)

    assert result.applied
    assert result.state == SourceState(
        WORK, SOURCE, {"citations": 5}, retrieved_at=T0, last_attempt_at=T0, status=Status.OK
    )
    assert result.history == HistoryPoint(WORK, SOURCE, date(2024, 5, 1), {"citations": 5})
    assert result.changed is not None
    assert result.changed.work_id == WORK
    assert result.changed.source == SOURCE
    assert dict(result.changed.previous) == {}
    assert dict(result.changed.current) == {"citations": 5}
    assert dict(result.changed.delta) == {"citations": 5}
    assert result.changed.at == T0


def test_first_observation_keeps_events_url_periods_and_events() -> None:
    """The state keeps the events link and periods; the aggregate carries the events to store."""
    events = (SourceEvent("e1", "2024-04-30T00:00:00Z", "https://x.org/1"),)
    periods = (PeriodCount("citations", "2024", 5),)
    obs = ok(T0, {"citations": 5}, events=events, periods=periods, events_url="https://x.org")

    result = aggregate(obs, None)

    assert result.state.events_url == "https://x.org"
    assert result.state.periods == periods
    assert result.events == events


def test_identical_reobservation_later_changes_nothing_visible() -> None:
    """The same totals seen later move retrieved_at on but emit no change and no history."""
    first = aggregate(ok(T0, {"citations": 5}), None)

    again = aggregate(ok(T1, {"citations": 5}), first.state)

    assert again.applied
    assert again.changed is None
    assert again.history is None
    assert again.state.metrics == {"citations": 5}
    assert again.state.retrieved_at == T1
    assert again.state.last_attempt_at == T1


def test_changed_totals_report_previous_current_and_delta() -> None:
    """A new total yields a change event with previous, current, delta and a history point."""
    first = aggregate(ok(T0, {"citations": 5, "references": 40}), None)

    result = aggregate(ok(T1, {"citations": 8, "references": 40}), first.state)

    assert result.changed is not None
    assert dict(result.changed.previous) == {"citations": 5, "references": 40}
    assert dict(result.changed.current) == {"citations": 8, "references": 40}
    assert dict(result.changed.delta) == {"citations": 3}
    assert result.changed.at == T1
    assert result.history == HistoryPoint(
        WORK, SOURCE, date(2024, 5, 2), {"citations": 8, "references": 40}
    )


@pytest.mark.parametrize(
    ("before", "after", "delta"),
    [
        ({"citations": 9}, {"citations": 4}, {"citations": -5}),
        ({"pdf": 1, "html": 2}, {"pdf": 1, "html": 5, "likes": 2}, {"html": 3, "likes": 2}),
        ({"pdf": 3, "html": 1}, {"html": 1}, {"pdf": -3}),
    ],
)
def test_delta_covers_decreases_new_and_vanished_metrics(
    before: dict[str, int], after: dict[str, int], delta: dict[str, int]
) -> None:
    """The delta lists exactly the metrics that moved, counting a missing metric as 0."""
    first = aggregate(ok(T0, before), None)
    result = aggregate(ok(T1, after), first.state)
    assert result.changed is not None
    assert dict(result.changed.delta) == delta


def test_redelivered_observation_is_ignored() -> None:
    """The same observation delivered twice is applied once; the second emits nothing."""
    obs = ok(T0, {"citations": 5}, events=(SourceEvent("e1"),))
    first = aggregate(obs, None)

    again = aggregate(obs, first.state)

    assert again == Aggregate(first.state, applied=False)


def test_older_observation_never_overwrites_newer() -> None:
    """An observation older than the stored one (late delivery) changes nothing."""
    newer = aggregate(ok(T1, {"citations": 8}), None)

    late = aggregate(ok(T0, {"citations": 5}), newer.state)

    assert not late.applied
    assert late.state == newer.state
    assert late.changed is None
    assert late.history is None
    assert late.events == ()


def test_error_leaves_metrics_and_records_status_and_error() -> None:
    """A failed fetch keeps the totals and their time, and records the error and attempt time."""
    first = aggregate(ok(T0, {"citations": 5}), None)

    result = aggregate(failed(T1), first.state)

    assert result.applied
    assert result.changed is None
    assert result.history is None
    assert result.state.metrics == {"citations": 5}
    assert result.state.retrieved_at == T0
    assert result.state.last_attempt_at == T1
    assert result.state.status is Status.ERROR
    assert result.state.error is not None
    assert "timeout" in result.state.error
    assert "upstream took 30 s" in result.state.error


def test_error_without_details_still_records_a_message() -> None:
    """An error observation carrying no FetchError still leaves a non-empty error text."""
    result = aggregate(failed(T0, error=None), None)
    assert result.state.status is Status.ERROR
    assert result.state.error


def test_first_ever_observation_an_error() -> None:
    """An error as first observation gives a state with no metrics and no retrieval time."""
    result = aggregate(failed(T0), None)

    assert result.applied
    assert result.state.metrics == {}
    assert result.state.retrieved_at is None
    assert result.state.last_attempt_at == T0
    assert result.state.status is Status.ERROR
    assert result.changed is None
    assert result.history is None


def test_redelivered_error_is_ignored() -> None:
    """The same error observation delivered twice is applied once."""
    state = state_after(ok(T0, {"citations": 5}), failed(T1))
    again = aggregate(failed(T1), state)
    assert not again.applied
    assert again.state == state


def test_older_error_after_newer_success_keeps_status() -> None:
    """An error older than the latest success does not flip the status to error."""
    success = aggregate(ok(T1, {"citations": 8}), None)

    late_error = aggregate(failed(T0), success.state)

    assert not late_error.applied
    assert late_error.state.status is Status.OK
    assert late_error.state.error is None
    assert late_error.state.last_attempt_at == T1


def test_not_found_stores_zero_without_error() -> None:
    """NOT_FOUND is stored as zeros with status not_found and no error (not a failure)."""
    result = aggregate(ok(T0, {"citations": 0}, status=Status.NOT_FOUND), None)

    assert result.applied
    assert result.state.metrics == {"citations": 0}
    assert result.state.status is Status.NOT_FOUND
    assert result.state.error is None
    assert result.state.retrieved_at == T0
    assert result.changed is None  # nothing moved from zero
    assert result.history == HistoryPoint(WORK, SOURCE, date(2024, 5, 1), {"citations": 0})


def test_not_found_after_counts_drops_to_zero() -> None:
    """An upstream that loses a record brings the stored total to 0, announced as a decrease."""
    first = aggregate(ok(T0, {"citations": 5}), None)

    result = aggregate(ok(T1, {"citations": 0}, status=Status.NOT_FOUND), first.state)

    assert result.state.metrics == {"citations": 0}
    assert result.changed is not None
    assert dict(result.changed.delta) == {"citations": -5}


def test_success_after_error_clears_the_error() -> None:
    """A success newer than the failure sets status ok, clears the error and stores totals."""
    state = state_after(ok(T0, {"citations": 5}), failed(T1), ok(T2, {"citations": 6}))

    assert state.status is Status.OK
    assert state.error is None
    assert state.metrics == {"citations": 6}
    assert state.retrieved_at == T2
    assert state.last_attempt_at == T2


def test_late_success_older_than_error_updates_totals_but_not_status() -> None:
    """A success newer than the totals but older than the last failure updates only totals."""
    state = state_after(ok(T0, {"citations": 5}), failed(T2), ok(T1, {"citations": 7}))

    assert state.metrics == {"citations": 7}
    assert state.retrieved_at == T1
    assert state.status is Status.ERROR
    assert state.error is not None
    assert state.last_attempt_at == T2


def test_events_url_and_periods_survive_an_observation_without_them() -> None:
    """A later observation that omits the events link or periods keeps the earlier ones."""
    periods = (PeriodCount("citations", "2024", 5),)
    first = aggregate(ok(T0, {"citations": 5}, events_url="https://x.org", periods=periods), None)

    result = aggregate(ok(T1, {"citations": 5}), first.state)

    assert result.state.events_url == "https://x.org"
    assert result.state.periods == periods


def test_new_events_pass_through_when_totals_do_not_change() -> None:
    """Events reach the store even when the totals are unchanged (the store dedupes them)."""
    first = aggregate(ok(T0, {"citations": 1}, events=(SourceEvent("e1"),)), None)
    events = (SourceEvent("e1"), SourceEvent("e2"))

    result = aggregate(ok(T1, {"citations": 1}, events=events), first.state)

    assert result.changed is None
    assert result.events == events


@pytest.mark.parametrize(
    "state",
    [
        SourceState(WORK, SOURCE),
        SourceState(
            WORK,
            SOURCE,
            metrics={"citations": 5, "references": 0},
            retrieved_at=T0,
            last_attempt_at=T1,
            status=Status.ERROR,
            error="timeout: upstream took 30 s",
            events_url="https://x.org",
            periods=(PeriodCount("citations", "2023", 2), PeriodCount("citations", "2024", 3)),
        ),
        SourceState("pmid:1", "openalex", {"citations": 0}, T0, T0, Status.NOT_FOUND),
    ],
)
def test_source_state_dict_round_trip(state: SourceState) -> None:
    """SourceState.from_dict(to_dict()) gives the same state, also through JSON text."""
    assert SourceState.from_dict(state.to_dict()) == state
    assert SourceState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_fold_applies_a_sequence_for_one_key() -> None:
    """fold aggregates each observation on the state the previous one left."""
    observations = [
        ok(T0, {"citations": 5}),
        ok(T1, {"citations": 5}),
        ok(T2, {"citations": 8}),
        ok(T1, {"citations": 5}),  # redelivered late
        failed(T3),
    ]
    states: dict[tuple[str, str], SourceState] = {}

    results = fold(observations, states)

    assert [r.applied for r in results] == [True, True, True, False, True]
    assert [r.changed is not None for r in results] == [True, False, True, False, False]
    assert [r.history is not None for r in results] == [True, False, True, False, False]
    final = states[(WORK, SOURCE)]
    assert final == results[-1].state
    assert final.metrics == {"citations": 8}
    assert final.retrieved_at == T2
    assert final.status is Status.ERROR


def test_fold_starts_from_the_given_states() -> None:
    """fold builds on stored state: an observation older than it is not applied."""
    stored = state_after(ok(T2, {"citations": 8}))
    states = {(WORK, SOURCE): stored}

    results = fold([ok(T1, {"citations": 5}), ok(T3, {"citations": 9})], states)

    assert [r.applied for r in results] == [False, True]
    assert results[1].changed is not None
    assert dict(results[1].changed.delta) == {"citations": 1}
    assert states[(WORK, SOURCE)].metrics == {"citations": 9}


def test_fold_keeps_keys_apart() -> None:
    """Observations of different works or sources do not affect each other's state."""
    other = "10.1371/other"
    observations = [
        ok(T0, {"citations": 5}),
        ok(T0, {"citations": 1}, work_id=other),
        ok(T0, {"citations": 7}, source="openalex"),
        ok(T1, {"citations": 6}),
    ]
    states: dict[tuple[str, str], SourceState] = {}

    results = fold(observations, states)

    assert all(r.applied for r in results)
    assert {k: s.metrics for k, s in states.items()} == {
        (WORK, SOURCE): {"citations": 6},
        (other, SOURCE): {"citations": 1},
        (WORK, "openalex"): {"citations": 7},
    }


def test_learned_works_fills_missing_metadata() -> None:
    """Metadata an upstream reports completes a known work (issued parsed into a date)."""
    known = {WORK: Work(WORK, doi=WORK)}
    obs = ok(T0, {}, work_meta={"title": "A paper", "issued": "2008-10-31", "pmid": "18974831"})

    assert learned_works([obs], known) == [
        Work(WORK, doi=WORK, pmid="18974831", title="A paper", issued=date(2008, 10, 31))
    ]


def test_learned_works_never_overwrites_known_fields() -> None:
    """A work whose fields are all known already is not reported, whatever upstreams say."""
    known = {WORK: Work(WORK, doi=WORK, title="Original", issued=date(2008, 10, 31))}
    obs = ok(T0, {}, work_meta={"title": "Other", "issued": "2009-01-01"})

    assert learned_works([obs], known) == []


def test_learned_works_combines_observations_of_one_work() -> None:
    """Two sources each completing part of a work give one merged work."""
    known = {WORK: Work(WORK, doi=WORK)}
    observations = [
        ok(T0, {}, work_meta={"title": "A paper"}),
        ok(T0, {}, source="europepmc", work_meta={"pmcid": "PMC2568856", "title": "Ignored"}),
    ]

    assert learned_works(observations, known) == [
        Work(WORK, doi=WORK, pmcid="PMC2568856", title="A paper")
    ]


def test_learned_works_skips_unknown_works_and_observations_without_metadata() -> None:
    """Only registered works are completed, and only by observations carrying metadata."""
    known = {WORK: Work(WORK, doi=WORK)}
    observations = [
        ok(T0, {"citations": 1}),
        ok(T0, {}, work_id="10.1371/unregistered", work_meta={"title": "Stray"}),
    ]

    assert learned_works(observations, known) == []
