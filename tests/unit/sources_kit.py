"""Shared helpers for the source plug-in tests: recorded fixtures in, outcomes out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    NotFound,
    Outcome,
    Source,
    UpstreamRequest,
    UpstreamResponse,
)
from services.fetchers.outcomes import outcome_of
from services.settings import FIXTURES

CONFIGS: Mapping[str, SourceConfig] = {
    "counter": SourceConfig(extra={"customer_id": "0000000000000000", "end_date": "2026-10"}),
    "mendeley": SourceConfig(api_key="client-id:client-secret"),
    "reddit": SourceConfig(api_key="client-id:client-secret"),
}


def config_for(source: Source) -> SourceConfig:
    """A configuration the source can run with (credentials where it needs them)."""
    return CONFIGS.get(source.name, SourceConfig())


def work(doi: str, **ids: str) -> WorkRef:
    """A work known by `doi` (and optionally pmid/pmcid)."""
    return WorkRef(doi, doi, ids.get("pmid"), ids.get("pmcid"))


def response(status: int, body: bytes | str | Any, **headers: str) -> UpstreamResponse:
    """An upstream response; non-bytes/str bodies are JSON-encoded."""
    if isinstance(body, str):
        raw = body.encode()
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body).encode()
    lower = {k.lower().replace("_", "-"): v for k, v in headers.items()}
    return UpstreamResponse(status, lower, raw, "https://upstream.test/")


def fixture(source: str, relative: str) -> bytes:
    """The bytes of a fixture file of `source`."""
    return (FIXTURES / source / relative).read_bytes()


def record(source: str, doi: str) -> Any:
    """The recorded response (records/<doi>.json) of `source` for `doi`."""
    return json.loads(fixture(source, f"records/{doi.replace('/', '_')}.json"))


def error_entries(source: str) -> list[dict[str, Any]]:
    """The error recordings of `source` that name the outcome they must give."""
    path: Path = FIXTURES / source / "errors.json"
    if not path.exists():
        return []
    return [e for e in json.loads(path.read_text()) if "expect" in e]


def recorded_error(source: str, entry: dict[str, Any]) -> UpstreamResponse:
    """The upstream response an errors.json entry describes."""
    body = fixture(source, entry["body_file"])
    return response(entry["status"], body, **entry.get("headers", {}))


def first_request(source: Source, works: list[WorkRef]) -> UpstreamRequest:
    """The first call the source makes for `works`."""
    return source.requests(works, config_for(source))[0]


def outcomes(
    source: Source, request: UpstreamRequest, reply: UpstreamResponse
) -> tuple[dict[str, Outcome], tuple[UpstreamRequest, ...]]:
    """What the engine makes of one reply: per-work outcomes and follow-up calls."""
    return outcome_of(source, request, reply)


def kind(outcome: Outcome | None) -> str:
    """`found`, `not_found` or `failed:<error kind>`."""
    if isinstance(outcome, Found):
        return "found"
    if isinstance(outcome, NotFound):
        return "not_found"
    if isinstance(outcome, Failed):
        return f"failed:{outcome.error.kind}"
    return "missing"
