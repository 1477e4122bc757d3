"""Provenance: every stored number links exactly to the upstream calls that produced it (id,
time, status, method, digest of the body as received), secrets never reach what is kept, and
`GET /api/v1/works/{id}/provenance` lists those calls with their bodies while they are kept."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.raw import SqliteCallArchive
from services.core.aggregation import aggregate
from services.core.events import FetchError, Observation, Status
from services.core.provenance import CallRef, RawResponse, Redactor, body_digest, identified
from services.core.sources import SourceConfig
from services.embedded import refresh_until_idle
from services.fetchers.base import Source, UpstreamRequest, UpstreamResponse
from services.fetchers.engine import fetch_batch
from services.fetchers.raw import secrets_of
from services.fetchers.sources.crossref import Crossref
from services.fetchers.sources.wikipedia import Wikipedia
from tests.unit.pipeline_kit import api_client, pipeline_kit
from tests.unit.sources_kit import record, work

PCBI = "10.1371/journal.pcbi.1000204"
PEERJ = "10.7717/peerj.4375"
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    """The clock of the engine tests."""
    return T0


class Echo:
    """A fake upstream answering each call with `body` and echoing its query in the URL."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body = body
        self.status = status

    async def call(self, source: Source, request: UpstreamRequest) -> UpstreamResponse:
        query = "&".join(f"{k}={v}" for k, v in request.params)
        return UpstreamResponse(
            self.status, {}, self.body, f"https://up.test{request.path}?{query}", 0.42
        )


async def test_each_observation_refers_to_the_calls_it_came_from() -> None:
    """A batch call's raw response has a stable id and the SHA-256 of its body; every work's
    observation carries a ref to it (same id, time, status, method, digest)."""
    body = json_bytes({"status": "ok", "message": {"items": [record("crossref", PCBI)]}})
    result = await fetch_batch(
        Crossref(), [work(PCBI), work(PEERJ)], SourceConfig(), Echo(body), clock
    )
    [raw] = result.raw
    assert raw.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert raw.raw_id and raw.method == "GET" and raw.work_ids == (PCBI, PEERJ)
    ref = CallRef(raw.raw_id, T0, 200, raw.digest, "GET")
    assert [o.calls for o in result.observations] == [(ref,), (ref,)]
    assert result.latencies == [0.42] and result.unanswered == 0


async def test_every_call_of_a_work_is_referred_to() -> None:
    """A work asked in several calls (Wikipedia: a search per language) refers to each."""
    answer = {"batchcomplete": True, "query": {"search": []}}
    config = SourceConfig(extra={"languages": "en,de,fr"})
    result = await fetch_batch(Wikipedia(), [work(PCBI)], config, Echo(json_bytes(answer)), clock)
    [obs] = result.observations
    assert len(result.raw) == 3
    assert sorted(c.raw_id for c in obs.calls) == sorted(r.raw_id for r in result.raw)
    assert len({r.raw_id for r in result.raw}) == 3  # one id per call


async def test_secrets_are_masked_in_kept_urls_and_bodies() -> None:
    """A configured key an upstream echoes in its URL or body is masked in what is kept (the
    digest stays that of the body as received, and `redacted` says the body was changed)."""
    secret = "k-3f9a81c2"
    body = json_bytes({"status": "ok", "message": {"items": [], "echo": f"key {secret}"}})
    config = SourceConfig(api_key=secret)
    result = await fetch_batch(Crossref(), [work(PCBI)], config, Echo(body), clock)
    [raw] = result.raw
    assert secret not in raw.body and secret not in raw.url and "***" in raw.body
    assert raw.redacted and raw.digest == body_digest(body)
    assert secret not in str(result.observations[0].to_dict())


def test_secrets_of_a_configuration() -> None:
    """The API key, each half of an id:secret pair and credential-like extras are masked;
    other extras (languages, dates) are not."""
    config = SourceConfig(
        api_key="client-id:client-secret",
        extra={"customer_id": "C-0042", "requestor_id": "R-77", "languages": "en,de"},
    )
    found = set(secrets_of(config))
    assert {"client-id:client-secret", "client-id", "client-secret", "C-0042", "R-77"} <= found
    assert "en,de" not in found
    redact = Redactor(found | {"ab"})  # too short to mask
    assert redact("id client-secret ab") == ("id *** ab", True)
    assert redact("nothing here") == ("nothing here", False)


def test_a_state_keeps_the_calls_of_its_numbers_through_a_failure() -> None:
    """The state's refs are those of the observation its totals come from: a later success
    replaces them, a later failure leaves them (the numbers still come from those calls)."""
    first = CallRef("00000000-0000-5000-8000-000000000001", T0, 200, "sha256:" + "a" * 64)
    second = CallRef(
        "00000000-0000-5000-8000-000000000002", T0 + timedelta(days=1), 200, "sha256:" + "b" * 64
    )
    ok = Observation(PCBI, "crossref", T0, Status.OK, {"citations": 3}, calls=(first,))
    state = aggregate(ok, None).state
    assert state.calls == (first,)
    failed = Observation(
        PCBI,
        "crossref",
        T0 + timedelta(hours=1),
        Status.ERROR,
        error=FetchError("http", "HTTP 503"),
        calls=(second,),
    )
    assert aggregate(failed, state).state.calls == (first,)
    again = Observation(
        PCBI, "crossref", T0 + timedelta(days=1), Status.OK, {"citations": 3}, calls=(second,)
    )
    assert aggregate(again, state).state.calls == (second,)
    assert type(state).from_dict(state.to_dict()) == state


def test_observation_calls_round_trip_through_the_schema() -> None:
    """An observation with calls passes its schema check and reads back equal."""
    from services.core.schema_check import check

    ref = CallRef("5c1b0a52-3b1f-5d2e-9a1e-0f6c1d2e3f40", T0, 404, "sha256:" + "0" * 64, "POST")
    obs = Observation(PCBI, "crossref", T0, Status.NOT_FOUND, {"citations": 0}, calls=(ref,))
    assert Observation.from_dict(check("observation", obs.to_dict())) == obs


async def test_sqlite_keeps_calls_by_id_until_their_ttl(tmp_path: Path) -> None:
    """The archive finds a kept call by its ref; one past the TTL is gone (deleted on the next
    write), and a TTL of 0 keeps nothing."""
    store = SqliteStore(tmp_path / "a.sqlite", raw_ttl=timedelta(days=7))
    await store.migrate()
    now = datetime.now(UTC)
    fresh = identified(RawResponse("crossref", now, "https://u/1", 200, "{}", (PCBI,)))
    old = identified(
        RawResponse("crossref", now - timedelta(days=8), "https://u/0", 200, "[]", (PCBI,))
    )
    await store.add_raw_responses([fresh, old])
    archive = SqliteCallArchive(store)
    refs = [CallRef(r.raw_id, r.retrieved_at, r.status, r.digest) for r in (fresh, old)]
    kept = await archive.kept_calls("crossref", refs)
    assert list(kept) == [fresh.raw_id] and kept[fresh.raw_id] == fresh
    assert await archive.kept_calls("openalex", refs) == {}  # another source's id space
    await store.close()
    none = SqliteStore(tmp_path / "b.sqlite", raw_ttl=timedelta(0))
    await none.migrate()
    await none.add_raw_responses([fresh])
    assert await SqliteCallArchive(none).kept_calls("crossref", refs[:1]) == {}
    await none.close()


# -- the API --------------------------------------------------------------------------------


async def test_provenance_lists_the_calls_behind_each_source(tmp_path: Path) -> None:
    """Each source's entry lists the calls of its current numbers: URL, status, time,
    digest (the SHA-256 of the kept body), the works asked and the body; the work's JSON links
    to it per source."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PCBI])
        await refresh_until_idle(kit.pipeline)
        async with api_client(kit, tmp_path) as client:
            work = await (await client.get(f"/api/v1/works/{PCBI}")).json()
            links = {s["name"]: s["provenance"] for s in work["sources"]}
            assert links["crossref"] == f"/api/v1/works/{PCBI}/provenance?source=crossref"
            resp = await client.get(links["crossref"])
            assert resp.status == 200
            body = await resp.json()
    [entry] = body["data"]
    assert entry["source"] == "crossref" and entry["metrics"] == {"citations": 27}
    [call] = entry["calls"]
    assert call["kept"] and call["status"] == 200 and call["method"] == "GET"
    assert call["url"].startswith("http://127.0.0.1") and PCBI in unquote(call["url"])
    assert call["digest"] == "sha256:" + hashlib.sha256(call["body"].encode()).hexdigest()
    assert call["works"] == [PCBI] and call["redacted"] is False
    assert call["retrieved_at"] == entry["retrieved_at"]
    assert body["raw_ttl_days"] == 7


async def test_provenance_follows_the_numbers_not_the_latest_calls(tmp_path: Path) -> None:
    """After a failed refresh the listed calls are still those of the last success (and the
    state says the last attempt failed); a new success lists only its own calls."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PCBI])
        await refresh_until_idle(kit.pipeline)
        async with api_client(kit, tmp_path) as client:
            url = f"/api/v1/works/{PCBI}/provenance?source=crossref"
            first = (await (await client.get(url)).json())["data"][0]["calls"]
            kit.fail("crossref", PCBI, 503, "Service Unavailable", "text/plain")
            kit.clock.advance(timedelta(days=40))
            await refresh_until_idle(kit.pipeline)
            failed = (await (await client.get(url)).json())["data"][0]
            kit.heal("crossref", PCBI)
            await asyncio.sleep(1.1)  # the 503 without Retry-After paused crossref's gate ~1 s
            kit.clock.advance(timedelta(days=40))
            await refresh_until_idle(kit.pipeline)
            healed = (await (await client.get(url)).json())["data"][0]
            raws = await kit.store.raw_responses("crossref", PCBI, 10)
    assert failed["status"] == "error" and failed["calls"] == first
    assert len(raws) >= 3  # the success, the failures, the new success: all kept
    assert [c["id"] for c in healed["calls"]] == [raws[0].raw_id] != [c["id"] for c in first]


async def test_provenance_parameters_and_errors(tmp_path: Path) -> None:
    """Without `source`, every source; `body=false` leaves bodies out; an unknown source is a
    400, an unknown work a 404."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PCBI])
        await refresh_until_idle(kit.pipeline)
        async with api_client(kit, tmp_path) as client:
            everything = await (await client.get(f"/api/v1/works/{PCBI}/provenance")).json()
            slim = await client.get(f"/api/v1/works/{PCBI}/provenance?body=false")
            bad = await client.get(f"/api/v1/works/{PCBI}/provenance?source=nope")
            missing = await client.get("/api/v1/works/10.1234/none/provenance")
            slim_body = await slim.json()
    assert {e["source"] for e in everything["data"]} == {"crossref", "openalex", "europepmc"}
    assert all(c["body"] for e in everything["data"] for c in e["calls"])
    assert all(c["body"] is None and c["kept"] for e in slim_body["data"] for c in e["calls"])
    assert (bad.status, missing.status) == (400, 404)


async def test_a_call_past_its_ttl_keeps_its_digest(tmp_path: Path) -> None:
    """With nothing kept (ALM_RAW_TTL_DAYS=0) a call is still listed by id, status, time and
    digest; its URL and body are gone."""
    async with pipeline_kit(tmp_path) as kit:
        kit.store._raw_ttl = timedelta(0)
        await kit.register([PCBI])
        await refresh_until_idle(kit.pipeline)
        async with api_client(kit, tmp_path) as client:
            body = await (
                await client.get(f"/api/v1/works/{PCBI}/provenance?source=crossref")
            ).json()
    [call] = body["data"][0]["calls"]
    assert call["kept"] is False and call["url"] is None and call["body"] is None
    assert call["digest"].startswith("sha256:") and call["status"] == 200


def json_bytes(value: Any) -> bytes:
    """`value` as the JSON bytes an upstream sends."""
    import json

    return json.dumps(value).encode()


@pytest.mark.parametrize(
    "work_id",
    ["pmid:18974831", "10.1002/(sici)1097-0258(19980815/30)17:15/16<1661::aid-sim968>3.0.co;2-2"],
)
def test_provenance_links_survive_any_work_id(work_id: str) -> None:
    """The link percent-encodes what a path cannot carry and keeps slashes and colons."""
    from services.api.present import provenance_link
    from services.core.identifiers import parse_identifier

    link = provenance_link(work_id, "crossref")
    path = link.split("?")[0].removeprefix("/api/v1/works/").removesuffix("/provenance")
    assert parse_identifier(unquote(path)).value in work_id
    assert "<" not in link and ";" not in link
