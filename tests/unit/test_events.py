"""Event records: JSON round trips and their checks against the schemas in `schemas/`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.core.events import (
    FailedRefresh,
    FetchError,
    MetricChanged,
    Observation,
    PeriodCount,
    RefreshRequest,
    SourceEvent,
    Status,
    refresh_topic,
)
from services.core.schema_check import SchemaViolation, check
from services.core.works import WorkRef

WORK = "10.1371/journal.pcbi.1000204"
AT = datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)

OBS_MINIMAL = Observation(WORK, "crossref", AT, Status.OK, {"citations": 27})
OBS_FULL = Observation(
    WORK,
    "openalex",
    AT,
    Status.OK,
    {"citations": 27, "references": 0},
    periods=(PeriodCount("citations", "2023", 20), PeriodCount("citations", "2024-05", 7)),
    events=(
        SourceEvent(
            "W123",
            "2024-04-30T00:00:00Z",
            "https://openalex.org/W123",
            {"title": "Citing paper", "issued": {"date-parts": [[2024, 4, 30]]}},
        ),
        SourceEvent("W124"),
    ),
    events_url="https://openalex.org/works?filter=cites:W1",
    request_url="https://api.openalex.org/works?filter=doi:10.1371/x",
    work_meta={"title": "A paper", "issued": "2008-10-31", "pmid": "18974831"},
)
OBS_NOT_FOUND = Observation(WORK, "europepmc", AT, Status.NOT_FOUND, {"citations": 0})
OBS_ERROR = Observation(
    WORK,
    "crossref",
    AT,
    Status.ERROR,
    error=FetchError("http", "503 Service Unavailable", retryable=True, http_status=503),
)
OBS_ERROR_FATAL = Observation(
    "pmid:18974831",
    "crossref",
    AT,
    Status.ERROR,
    error=FetchError("config", "no api key", retryable=False),
)
REQUEST = RefreshRequest(
    WorkRef(WORK, WORK, "18974831", "PMC2568856"), "crossref", AT, "scheduled", 0, 1
)
REQUEST_RETRY = RefreshRequest(
    WorkRef("pmid:18974831", pmid="18974831"),
    "europepmc",
    AT,
    reason="retry",
    priority=5,
    attempt=3,
    not_before=AT + timedelta(minutes=20),
)
CHANGED = MetricChanged(
    WORK, "crossref", {"citations": 5}, {"citations": 8, "x": 0}, {"citations": 3, "x": 0}, AT
)
FAILED = FailedRefresh(REQUEST_RETRY, "timeout: upstream took 30 s", AT + timedelta(seconds=31))

ROUND_TRIPS: list[tuple[str, Any, Callable[[Any], Any]]] = [
    ("observation", OBS_MINIMAL, Observation.from_dict),
    ("observation", OBS_FULL, Observation.from_dict),
    ("observation", OBS_NOT_FOUND, Observation.from_dict),
    ("observation", OBS_ERROR, Observation.from_dict),
    ("observation", OBS_ERROR_FATAL, Observation.from_dict),
    ("refresh_request", REQUEST, RefreshRequest.from_dict),
    ("refresh_request", REQUEST_RETRY, RefreshRequest.from_dict),
    ("metric_changed", CHANGED, MetricChanged.from_dict),
    ("failed_refresh", FAILED, FailedRefresh.from_dict),
]


@pytest.mark.parametrize(("schema", "event", "from_dict"), ROUND_TRIPS)
def test_round_trip_through_json(schema: str, event: Any, from_dict: Callable[[Any], Any]) -> None:
    """from_dict(to_dict()) gives back the same record, also after a trip through JSON text."""
    assert from_dict(event.to_dict()) == event
    assert from_dict(json.loads(json.dumps(event.to_dict()))) == event


@pytest.mark.parametrize(("schema", "event", "from_dict"), ROUND_TRIPS)
def test_to_dict_passes_its_schema(
    schema: str, event: Any, from_dict: Callable[[Any], Any]
) -> None:
    """Every record's JSON form is valid against its schema, and check returns it unchanged."""
    body = event.to_dict()
    assert check(schema, body) is body


def test_timestamps_are_utc_iso_with_z() -> None:
    """Times travel as ISO 8601 UTC with a Z suffix, whatever the offset they were made in."""
    plus_two = AT.astimezone(timezone(timedelta(hours=2)))
    body = Observation(WORK, "crossref", plus_two, Status.OK).to_dict()
    assert body["retrieved_at"] == "2024-05-01T12:30:15.250000Z"


def test_refresh_request_defaults_when_optional_fields_are_absent() -> None:
    """A refresh request without reason, priority, attempt or not_before gets the defaults."""
    request = RefreshRequest.from_dict(
        {"work_id": WORK, "source": "crossref", "requested_at": "2024-05-01T12:00:00Z"}
    )
    assert request == RefreshRequest(
        WorkRef(WORK), "crossref", datetime(2024, 5, 1, 12, tzinfo=UTC), "scheduled", 0, 1, None
    )


def test_refresh_topic_is_per_source() -> None:
    """Each source has its own refresh topic."""
    assert refresh_topic("crossref") == "alm.refresh.crossref"


def observation(**changes: Any) -> dict[str, Any]:
    """A valid observation body with `changes` applied (a None value deletes the key)."""
    body = OBS_FULL.to_dict()
    for key, value in changes.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (observation(metrics={"citations": -1}), "metrics/citations"),
        (observation(metrics={"citations": 1.5}), "metrics/citations"),
        (observation(metrics={"citations": "3"}), "metrics/citations"),
        (observation(status="pending"), "status"),
        (observation(work_id=None), "work_id"),
        (observation(work_id=""), "work_id"),
        (observation(source="CrossRef"), "source"),
        (observation(schema_version=2), "schema_version"),
        (observation(retrieved_at="yesterday"), "retrieved_at"),
        (observation(metrics=None), "metrics"),
        (observation(unexpected=1), "unexpected"),
        (observation(periods=[{"metric": "c", "period": "May 2024", "count": 1}]), "periods/0"),
        (observation(events=[{"event_id": ""}]), "events/0/event_id"),
        (observation(work_meta={"pmid": "0123"}), "work_meta/pmid"),
        (Observation(WORK, "crossref", AT, Status.ERROR).to_dict(), "error"),
        (
            Observation(
                WORK, "crossref", AT, Status.ERROR, error=FetchError("boom", "x")
            ).to_dict(),
            "error/kind",
        ),
    ],
)
def test_invalid_observation_names_the_field(body: dict[str, Any], field: str) -> None:
    """An invalid observation raises SchemaViolation whose message names the offending field."""
    with pytest.raises(SchemaViolation) as info:
        check("observation", body)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason": "whenever"}, "reason"),
        ({"attempt": 0}, "attempt"),
        ({"priority": "high"}, "priority"),
        ({"work_id": ""}, "work_id"),
        ({"source": "europe-pmc"}, "source"),
    ],
)
def test_invalid_refresh_request_names_the_field(changes: dict[str, Any], field: str) -> None:
    """A refresh request with a bad field is rejected, naming that field."""
    with pytest.raises(SchemaViolation, match=field):
        check("refresh_request", {**REQUEST.to_dict(), **changes})


def test_invalid_metric_changed_names_the_field() -> None:
    """A change event with a non-integer delta is rejected at that delta entry."""
    body = {**CHANGED.to_dict(), "delta": {"citations": 0.5}}
    with pytest.raises(SchemaViolation, match="delta/citations"):
        check("metric_changed", body)


def test_failed_refresh_needs_the_request_or_the_bad_event() -> None:
    """A failed refresh without the request it failed (nor the unreadable event) is invalid."""
    body = FAILED.to_dict()
    del body["request"]
    with pytest.raises(SchemaViolation):
        check("failed_refresh", body)
    assert check("failed_refresh", {**body, "bad_event": {"garbage": True}})


def test_failed_refresh_checks_the_embedded_request() -> None:
    """The request inside a failed refresh is checked against the refresh request schema."""
    body = FAILED.to_dict()
    body["request"]["attempt"] = 0
    with pytest.raises(SchemaViolation, match="request/attempt"):
        check("failed_refresh", body)


def test_schema_violation_is_a_value_error() -> None:
    """Consumers that skip ValueError also skip schema violations."""
    assert issubclass(SchemaViolation, ValueError)
