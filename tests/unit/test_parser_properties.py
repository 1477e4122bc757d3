"""Property tests of every source parser: whatever an upstream sends (arbitrary JSON, a real
answer with parts replaced by other types, a truncated body, random bytes), parsing gives
outcomes and follow-up calls or a PayloadError, never another exception; and every outcome
becomes an observation the event schema accepts.

The calls fuzzed are each source's real ones: first calls for fixture works and the follow-ups
the stub upstream's recorded answers lead to (paging, second steps), with those answers as the
seeds the mutations start from.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.identifiers import InvalidIdentifier, normalize_doi
from services.core.schema_check import check
from services.core.works import WorkRef
from services.fetchers.base import (
    Found,
    PayloadError,
    Source,
    UpstreamRequest,
    UpstreamResponse,
)
from services.fetchers.outcomes import observation
from services.fetchers.registry import SOURCES
from services.settings import FIXTURES
from services.stub import server
from services.stub.upstream import StubRequest, StubUpstream
from tests.unit.sources_kit import config_for

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
NAMES = sorted(SOURCES)
EXAMPLES = int(os.environ.get("ALM_PROPERTY_EXAMPLES") or "60")

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "0", "12", "-3", "1.5", "2026-13-45", "10.1234/x", "ok", "PMC1"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def _stub_request(source: Source, request: UpstreamRequest) -> StubRequest:
    """The request as the stub server sees it (another host: under /<host><path>)."""
    path = request.path
    if request.host is not None:
        host = urlsplit(request.host)
        path = f"/{host.netloc}{host.path.rstrip('/')}{request.path}"
    query: dict[str, list[str]] = {}
    for key, value in request.params:
        query.setdefault(key, []).append(value)
    body = json.dumps(request.json_body).encode() if request.json_body is not None else b""
    if request.form:
        body = "&".join(f"{k}={v}" for k, v in request.form).encode()
    headers = {k.lower(): v for k, v in request.headers}
    return StubRequest(request.method, path, query, body, headers)


def _fixture_works(source: Source) -> list[WorkRef]:
    """Works the source's stub has records for (keys like `en:10.x/y` name a DOI too)."""
    dois = []
    for key in sorted(_stub(source).records):
        with contextlib.suppress(InvalidIdentifier):
            dois.append(normalize_doi(key if key.startswith("10.") else key.split(":", 1)[-1]))
    dois = sorted(set(dois))[:3] or ["10.1371/journal.pone.0000308"]
    return [WorkRef(d, d, "18974831" if n == 0 else None, None) for n, d in enumerate(dois)]


@cache
def _stub(source: Source) -> StubUpstream:
    stub = server.stub_for(source.name)
    assert stub is not None, source.name
    return stub(FIXTURES / source.name, False)


@cache
def calls(name: str) -> list[tuple[UpstreamRequest, bytes]]:
    """The source's calls (first calls and follow-ups) with the stub's recorded answers."""
    source = SOURCES[name]
    works = _fixture_works(source)
    pending = source.requests(works[: source.batch_size], config_for(source))
    pending += source.requests(works[:1], config_for(source))
    seen: list[tuple[UpstreamRequest, bytes]] = []
    for _ in range(5):
        follow_ups: list[UpstreamRequest] = []
        for request in pending:
            answer = _stub(source).answer(_stub_request(source, request))
            seen.append((request, answer.body))
            if 200 <= answer.status < 300:
                reply = UpstreamResponse(answer.status, {}, answer.body, "https://x/")
                with contextlib.suppress(PayloadError):
                    follow_ups += source.parse(request, reply).follow_ups
        pending = follow_ups
    return seen


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """`value` with some part replaced by another JSON value, dropped or duplicated."""
    if depth > 8 or draw(st.integers(0, 5)) == 0:
        return draw(JSON_VALUES)
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        out = dict(value)
        if draw(st.booleans()):
            del out[key]
        else:
            out[key] = draw(mutated(value[key], depth + 1))
        return out
    if isinstance(value, list) and value:
        index = draw(st.integers(0, len(value) - 1))
        out_list = list(value)
        choice = draw(st.integers(0, 2))
        if choice == 0:
            del out_list[index]
        elif choice == 1:
            out_list.append(out_list[index])
        else:
            out_list[index] = draw(mutated(value[index], depth + 1))
        return out_list
    return draw(JSON_VALUES)


@st.composite
def bodies(draw: st.DrawFn, seed: bytes) -> bytes:
    """A body to answer a call with: the recorded one mutated, truncated, arbitrary JSON or
    arbitrary bytes."""
    kind = draw(st.sampled_from(["mutated", "truncated", "json", "bytes"]))
    if kind == "truncated":
        return seed[: draw(st.integers(0, max(0, len(seed) - 1)))]
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    try:
        parsed = json.loads(seed)
    except ValueError:
        return seed[: draw(st.integers(0, len(seed)))]
    return json.dumps(draw(mutated(parsed))).encode()


def _check_parse(source: Source, request: UpstreamRequest, status: int, body: bytes) -> None:
    reply = UpstreamResponse(status, {"content-type": "application/json"}, body, "https://x/")
    try:
        result = source.parse(request, reply)
    except PayloadError:
        return
    asked = {w.work_id for w in request.works}
    assert set(result.outcomes) <= asked, "outcomes for works the call was not about"
    for follow_up in result.follow_ups:
        assert {w.work_id for w in follow_up.works} <= asked
    works = {w.work_id: w for w in request.works}
    for work_id, outcome in result.outcomes.items():
        final = source.complete(outcome) if isinstance(outcome, Found) else outcome
        obs = observation(source, works[work_id], final, T0, "https://x/")
        check("observation", obs.to_dict())


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_answer_gives_outcomes_or_a_payload_error(name: str, data: st.DataObject) -> None:
    """Mutated, truncated, arbitrary JSON and random bytes: outcomes or PayloadError only."""
    source = SOURCES[name]
    request, seed = data.draw(st.sampled_from(calls(name)), label="call")
    body = data.draw(bodies(seed), label="body")
    status = data.draw(st.sampled_from([200, 200, 200, 404]), label="status")
    _check_parse(source, request, status, body)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if SOURCES[n].auth_request(config_for(SOURCES[n]))]
)
@settings(max_examples=EXAMPLES)
@given(body=st.one_of(JSON_VALUES.map(lambda v: json.dumps(v).encode()), st.binary(max_size=100)))
def test_any_token_answer_gives_a_token_or_a_payload_error(name: str, body: bytes) -> None:
    """The auth call's answer parses into a token or a PayloadError, whatever it holds."""
    source = SOURCES[name]
    try:
        token = source.parse_auth(UpstreamResponse(200, {}, body, "https://x/"))
    except PayloadError:
        return
    assert isinstance(token.value, str) and token.value


def test_every_source_has_calls_to_fuzz() -> None:
    """Each source contributes its real calls, several steps where it has them."""
    for name in NAMES:
        assert calls(name), name
    steps = {name: {r.step for r, _ in calls(name)} for name in NAMES}
    assert {"idconv", "elink"} <= steps["pubmed"]
    assert {"main", "citations"} <= steps["europepmc"]


def _recorded(name: str, step: str) -> tuple[UpstreamRequest, Any]:
    request, body = next((r, b) for r, b in calls(name) if r.step == step)
    return request, json.loads(body)


def _hypothesis_wrong_types(payload: Any) -> Any:
    payload["rows"][0]["links"]["html"] = True
    payload["rows"][0]["user_info"]["display_name"] = 7
    payload["rows"][1]["created"] = {"at": 1}
    return payload


def _opencitations_wrong_types(payload: Any) -> Any:
    payload[0]["creation"] = True
    return payload


@pytest.mark.parametrize(
    ("name", "step", "spoil"),
    [
        ("hypothesis", "main", _hypothesis_wrong_types),
        ("opencitations", "citations", _opencitations_wrong_types),
    ],
)
def test_what_the_property_tests_found(name: str, step: str, spoil: Any) -> None:
    """Found by the property tests: a url, a date or an author name of another type than text in
    an otherwise real answer gave events the observation schema refuses (or an AttributeError)."""
    request, payload = _recorded(name, step)
    _check_parse(SOURCES[name], request, 200, json.dumps(spoil(payload)).encode())
