"""The real-body corpus (tests/fixtures/real/<source>/manifest.json) and its replay harness.

Each manifest lists response bodies that public projects recorded from the live upstream APIs,
where each came from, and cases: a batch of works, the recorded answers to the calls the plug-in
makes for them, and the figures a correct parser must extract. A case runs through the engine's
own `fetch_batch` (and the source's token call through the HTTP layer's `TokenCache`), with a
caller that answers each call from the case's recordings: the same status, content type and
body the upstream sent. A call with no recording is answered with a connection failure, and a
case must name every such call in `unrecorded`, so nothing is replayed by accident.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.core.events import FetchError, Observation
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.auth import TokenCache
from services.fetchers.base import AccessToken, Source, UpstreamRequest, UpstreamResponse
from services.fetchers.engine import fetch_batch
from tests.unit.sources_kit import config_for

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
AT = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def manifest(source: str) -> dict[str, Any]:
    """The parsed manifest of `source`."""
    data: dict[str, Any] = json.loads((REAL / source / "manifest.json").read_text())
    return data


def sources() -> list[str]:
    """Sources that have a corpus directory."""
    return sorted(p.parent.name for p in REAL.glob("*/manifest.json"))


def cases() -> list[tuple[str, dict[str, Any]]]:
    """(source, case) for every case of every manifest."""
    return [(s, c) for s in sources() for c in manifest(s)["cases"]]


def body_bytes(source: str, name: str) -> bytes:
    """The recorded body `name` of `source`."""
    return (REAL / source / name).read_bytes()


def work_of(spec: Mapping[str, str]) -> WorkRef:
    """The work a case names: its id is the DOI, else the PMID or PMCID."""
    doi, pmid, pmcid = spec.get("doi"), spec.get("pmid"), spec.get("pmcid")
    return WorkRef(str(doi or pmid or pmcid), doi, pmid, pmcid)


def key_of(work: WorkRef) -> str:
    """How a case's expectations name a work."""
    return work.work_id


def config_of(source: Source, case: Mapping[str, Any]) -> SourceConfig:
    """The default test configuration of the source, with the case's settings over it."""
    base = config_for(source)
    spec = case.get("config") or {}
    extra = {**base.extra, **spec.get("extra", {})}
    return replace(base, extra=extra, api_key=spec.get("api_key", base.api_key))


def matches(request: UpstreamRequest, want: Mapping[str, Any]) -> bool:
    """Whether `request` is the call an answer (or an expected unrecorded call) describes."""
    if want.get("step", "main") != request.step:
        return False
    if "path" in want and request.path != want["path"]:
        return False
    params = dict(request.params)
    return all(params.get(k) == v for k, v in (want.get("params") or {}).items())


def describe(request: UpstreamRequest) -> str:
    """A call for failure messages."""
    query = "&".join(f"{k}={v}" for k, v in request.params if k not in ("email", "mailto"))
    return f"{request.step}: {request.method} {request.host or ''}{request.path}?{query}"


@dataclass
class Replay:
    """Answers a case's calls from its recordings, in the order the plug-in makes them."""

    source: str
    answers: list[dict[str, Any]]
    used: list[int] = field(default_factory=list)
    exchanges: list[tuple[int, UpstreamRequest, UpstreamResponse]] = field(default_factory=list)
    missed: list[UpstreamRequest] = field(default_factory=list)
    tokens: TokenCache = field(default_factory=TokenCache)

    def response(self, index: int) -> UpstreamResponse:
        """The recorded answer `index` as the HTTP layer hands it to the plug-in."""
        answer = self.answers[index]
        body = manifest_body(self.source, answer["body"])
        headers = {"content-type": body["content_type"]}
        return UpstreamResponse(
            int(body["status"]),
            headers,
            body_bytes(self.source, answer["body"]),
            body.get("recorded_request", "").split(" ", 1)[-1],
        )

    async def send(self, source: Source, request: UpstreamRequest) -> UpstreamResponse | FetchError:
        """One call without its auth step."""
        for i, answer in enumerate(self.answers):
            if i not in self.used and matches(request, answer):
                self.used.append(i)
                reply = self.response(i)
                self.exchanges.append((i, request, reply))
                return reply
        self.missed.append(request)
        return FetchError("connection", f"not recorded: {describe(request)}", True)

    async def call(self, source: Source, request: UpstreamRequest) -> UpstreamResponse | FetchError:
        """One call, authorised the way the HTTP layer does it (a cached token call first)."""
        if request.auth is None:
            return await self.send(source, request)
        token = await self.tokens.get(source, request.auth, self.send)
        if not isinstance(token, AccessToken):
            return token
        header = (token.header, token.header_value())
        return await self.send(source, replace(request, headers=(*request.headers, header)))


def manifest_body(source: str, name: str) -> dict[str, Any]:
    """The manifest entry of body `name`."""
    entry: dict[str, Any] = manifest(source)["bodies"][name]
    return entry


def entering_at(source: Source, entry: Mapping[str, Any]) -> Source:
    """`source` whose first call is `entry`: a later step, when the earlier was not recorded."""

    def requests(works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        return [
            UpstreamRequest(
                entry["path"],
                tuple(works),
                tuple((entry.get("params") or {}).items()),
                step=entry.get("step", "main"),
                context=dict(entry.get("context") or {}),
                optional=bool(entry.get("optional", False)),
            )
        ]

    clone = type(source)()
    clone.requests = requests  # type: ignore[method-assign]
    return clone


async def run(plugin: Source, case: Mapping[str, Any]) -> tuple[list[Observation], Replay]:
    """The observations the engine makes of the case's works, and what the replay saw."""
    works = [work_of(w) for w in case["works"]]
    replay = Replay(plugin.name, list(case["answers"]))
    source = entering_at(plugin, case["entry"]) if case.get("entry") else plugin
    result = await fetch_batch(source, works, config_of(plugin, case), replay, lambda: AT)
    return result.observations, replay
