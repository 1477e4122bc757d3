"""The change event's contract is additive only: every published revision of a schema in
schemas/history/ is compared with the current one, structurally (services/core/schema_compat.py)
and by validating generated events both ways (old events under the new schema; new events, as a
tolerant old reader sees them, under the old one)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.events import MetricChanged, change_event_id
from services.core.schema_check import SCHEMA_DIR, check
from services.core.schema_compat import breaking_changes, known_fields
from services.core.timeutil import to_iso

HISTORY = SCHEMA_DIR / "history"
# The first published revision, frozen: this digest changes only if someone edits history.
HISTORY_DIGEST = "d4f93f1dfa8abb1d946b01b5085aa1dfb0495150d0b069e0bcef96769fa72390"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _pairs() -> list[tuple[str, Path, Path]]:
    """(name, old revision, current schema) for every file of schemas/history/."""
    out = []
    for path in sorted(HISTORY.glob("*.schema.json")):
        name = path.name.split(".v", 1)[0]
        out.append((path.name, path, SCHEMA_DIR / f"{name}.schema.json"))
    return out


OLD_CHANGED = _load(HISTORY / "metric_changed.v1.0.schema.json")
NEW_CHANGED = _load(SCHEMA_DIR / "metric_changed.schema.json")


def test_history_is_frozen() -> None:
    """The published revision 1.0 is byte for byte what it was (sha256 pinned here)."""
    digest = hashlib.sha256((HISTORY / "metric_changed.v1.0.schema.json").read_bytes())
    assert digest.hexdigest() == HISTORY_DIGEST


@pytest.mark.parametrize(("name", "old", "new"), _pairs())
def test_every_revision_is_additive_over_the_history(name: str, old: Path, new: Path) -> None:
    """The current schema breaks none of the rules against any published revision."""
    assert breaking_changes(_load(old), _load(new)) == [], name


BASE: dict[str, Any] = {
    "type": "object",
    "required": ["a", "n"],
    "additionalProperties": False,
    "properties": {
        "a": {"type": "string", "pattern": "^x"},
        "n": {"type": "integer"},
        "m": {"type": "object", "additionalProperties": {"type": "integer"}},
        "o": {"type": "string", "description": "optional"},
    },
}


def _edit(**props: Any) -> dict[str, Any]:
    return {**BASE, "properties": {**BASE["properties"], **props}}


def _without(name: str) -> dict[str, Any]:
    return {**BASE, "properties": {k: v for k, v in BASE["properties"].items() if k != name}}


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        (_without("o"), "/o: removed"),
        (_without("a"), "/a: removed"),
        (_edit(n={"type": "number"}), "/n: its schema changed"),
        (_edit(n={"type": "string"}), "/n: its schema changed"),
        (_edit(a={"type": "string", "pattern": "^xy"}), "/a: its schema changed"),
        (_edit(a={"type": "string"}), "/a: its schema changed"),
        (_edit(m={"type": "object", "additionalProperties": {"type": "number"}}), "/m: its"),
        ({**BASE, "required": ["a", "n", "o"]}, "newly required ['o']"),
        ({**BASE, "required": ["a"]}, "no longer required ['n']"),
        ({**BASE, "type": ["object", "null"]}, "besides its properties"),
    ],
)
def test_breaking_changes_are_found(new: dict[str, Any], problem: str) -> None:
    """Removing, renaming, retyping, narrowing or widening a field, requiring a new one or no
    longer requiring an old one each break the rule, and the report names it."""
    found = breaking_changes(BASE, new)
    assert any(problem in p for p in found), found


def test_closing_an_open_object_breaks() -> None:
    """An object that accepted other fields may not start refusing them."""
    opened = {k: v for k, v in BASE.items() if k != "additionalProperties"}
    assert breaking_changes(opened, BASE) == [
        "(top): closed to fields it accepted (additionalProperties false)"
    ]


@pytest.mark.parametrize(
    "new",
    [
        _edit(extra={"type": "integer"}),
        {k: v for k, v in BASE.items() if k != "additionalProperties"},
        _edit(o={"type": "string", "description": "reworded", "examples": ["x"]}),
        {**_edit(extra={"type": "boolean"}), "title": "renamed title"},
    ],
)
def test_additive_changes_pass(new: dict[str, Any]) -> None:
    """A new optional field, opening the object, and changed annotations are additive."""
    assert breaking_changes(BASE, new) == []


# -- generated events ------------------------------------------------------------------------


def events_of(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Events valid under `schema` (the keywords the change schemas use), optional fields
    present or not, open maps with any metric names."""
    props = schema["properties"]
    required = {k: _value(v) for k, v in props.items() if k in schema["required"]}
    optional = {k: _value(v) for k, v in props.items() if k not in schema["required"]}
    return st.fixed_dictionaries(required, optional=optional)


def _value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "const" in schema:
        return st.just(schema["const"])
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return st.one_of(*(_typed(t, schema) for t in types))


def _typed(kind: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "integer":
        return st.integers(-(2**53), 2**53)
    if kind == "object":
        return st.dictionaries(st.text(max_size=20), _value(schema["additionalProperties"]))
    if schema.get("format") == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(to_iso)
    pattern = schema.get("pattern")
    found = st.text() if pattern is None else st.from_regex(pattern, fullmatch=True)
    return found.filter(lambda s: len(s) <= schema.get("maxLength", len(s)))


VALIDATORS = {id(s): jsonschema_rs.validator_for(s) for s in (OLD_CHANGED, NEW_CHANGED)}


def _valid(schema: dict[str, Any], event: dict[str, Any]) -> bool:
    return bool(VALIDATORS[id(schema)].is_valid(event))


@given(events_of(OLD_CHANGED))
def test_old_events_are_valid_under_the_new_schema(event: dict[str, Any]) -> None:
    """Any event a revision-1.0 producer could write (still on the topic after an upgrade)
    is valid under the current schema: new readers read old events."""
    assert _valid(OLD_CHANGED, event)
    assert _valid(NEW_CHANGED, event)


@given(events_of(NEW_CHANGED))
def test_new_events_read_by_an_old_reader_are_valid_under_the_old_schema(
    event: dict[str, Any],
) -> None:
    """Any event valid under the current schema, as a tolerant revision-1.0 reader sees it
    (ignoring fields it does not know), is valid under revision 1.0: old readers read new
    events."""
    assert _valid(NEW_CHANGED, event)
    assert _valid(OLD_CHANGED, known_fields(OLD_CHANGED, event))


@given(
    st.sampled_from(["10.1371/journal.pone.0000308", "pmid:18974831", "pmcid:PMC2568856"]),
    st.dictionaries(st.sampled_from(["citations", "readers", "pdf"]), st.integers(0, 10**9)),
    st.dictionaries(st.sampled_from(["citations", "readers", "pdf"]), st.integers(0, 10**9)),
    st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)),
    st.none() | st.text(max_size=500),
)
def test_events_the_code_writes_pass_both_revisions(
    work: str, before: dict[str, int], after: dict[str, int], at: datetime, publisher: str | None
) -> None:
    """What the aggregator publishes is valid under the current schema and, read by an old
    reader, under revision 1.0; its event_id is the documented UUIDv5."""
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in {*before, *after}}
    change = MetricChanged(work, "crossref", before, after, delta, at, publisher)
    body = change.to_dict()
    assert check("metric_changed", body) is body
    assert _valid(OLD_CHANGED, known_fields(OLD_CHANGED, body))
    assert body["event_id"] == change_event_id(work, "crossref", body["at"])
    assert set(body) == set(NEW_CHANGED["properties"])


def test_event_id_is_stable_and_distinct() -> None:
    """The id depends on work, source and time only, and differs when any of them does."""
    at = "2024-05-01T12:00:00Z"
    one = change_event_id("10.1/a", "crossref", at)
    assert one == change_event_id("10.1/a", "crossref", at)
    assert len({one, *(change_event_id(*k, at) for k in [("10.1/b", "crossref")])}) == 2
    assert one != change_event_id("10.1/a", "openalex", at)
    assert one != change_event_id("10.1/a", "crossref", "2024-05-01T12:00:01Z")
