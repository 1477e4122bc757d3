"""Framework extensions used by the sources: config failures, auth calls, optional steps,
completion, other hosts and the token cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.core.events import FetchError, Status
from services.core.sources import SourceConfig
from services.fetchers.auth import TokenCache
from services.fetchers.base import AccessToken, Source, UpstreamRequest, UpstreamResponse
from services.fetchers.engine import fetch_batch
from services.fetchers.http import HttpCaller, HttpSettings
from services.fetchers.raw import public_url
from services.fetchers.sources.counter import Counter
from services.fetchers.sources.mendeley import Mendeley
from services.fetchers.sources.pubmed import IDCONV, PubMed
from services.fetchers.sources.wikipedia import Wikipedia
from tests.unit.sources_kit import record, response, work


def now() -> datetime:
    """The clock of these tests."""
    return datetime(2026, 11, 25, tzinfo=UTC)


class Recorder:
    """A fake upstream: answers by step and remembers every request it got."""

    def __init__(self, answers: dict[str, UpstreamResponse]) -> None:
        self.answers = answers
        self.seen: list[UpstreamRequest] = []

    async def call(self, source: Source, request: UpstreamRequest) -> UpstreamResponse:
        self.seen.append(request)
        lang = request.context.get("lang", "")
        return self.answers.get(f"{request.step}:{lang}") or self.answers[request.step]


async def test_config_error_fails_every_work_without_calling() -> None:
    """A source that cannot build its calls (COUNTER without customer_id) fails each work with a
    non-retryable config error and sends nothing."""
    fake = Recorder({})
    result = await fetch_batch(Counter(), [work("10.1/a")], SourceConfig(), fake, now)
    [obs] = result.observations
    assert obs.status is Status.ERROR and obs.error is not None
    assert (obs.error.kind, obs.error.retryable) == ("config", False)
    assert fake.seen == [] and result.calls == 0


async def test_auth_call_rides_on_every_request_and_follow_up() -> None:
    """The engine attaches the source's auth call to its requests, follow-ups included."""
    source = Mendeley()
    config = SourceConfig(api_key="cid:sec")
    doi = "10.1371/journal.pcbi.1000204"
    fake = Recorder({"main": response(200, record("mendeley", doi))})
    result = await fetch_batch(source, [work(doi)], config, fake, now)
    assert result.observations[0].metrics == {"readers": 1204}
    assert [r.auth for r in fake.seen] == [source.auth_request(config)]


async def test_complete_derives_the_total_from_merged_events() -> None:
    """Wikipedia's per-language answers merge; complete() counts distinct pages."""
    hit = {"ns": 0, "title": "Lesula", "pageid": 1, "timestamp": "2026-01-01T00:00:00Z"}
    answer = {"batchcomplete": True, "query": {"search": [hit]}}
    nothing = {"batchcomplete": True, "query": {"search": []}}
    fake = Recorder(
        {
            "main:en": response(200, answer),
            "main:de": response(200, answer),
            "main": response(200, nothing),
        }
    )
    config = SourceConfig(extra={"languages": "en,de,fr"})
    result = await fetch_batch(Wikipedia(), [work("10.1/a")], config, fake, now)
    [obs] = result.observations
    assert obs.metrics == {"pages": 2} and {e.event_id for e in obs.events} == {"en:1", "de:1"}
    assert result.calls == 3


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (PubMed.base_url, f"{IDCONV}/articles/"),
        (
            "http://127.0.0.1:9/pubmed",
            "http://127.0.0.1:9/pubmed/pmc.ncbi.nlm.nih.gov/tools/idconv/api/v1/articles/",
        ),
    ],
)
def test_calls_to_another_host(base: str, url: str) -> None:
    """A request naming another host goes there, or under the configured base (stub, proxy)."""
    caller = HttpCaller({"pubmed": base}, HttpSettings())
    [call] = PubMed().requests([work("10.1/a")], SourceConfig())
    assert caller.url_for(PubMed(), call) == url


class TokenUpstream:
    """Answers token calls with a fixed status and body, counting them."""

    def __init__(self, status: int = 200, body: object = None, delay: float = 0.0) -> None:
        self.status, self.delay, self.calls = status, delay, 0
        self.body = body if body is not None else {"access_token": "t1", "expires_in": 3600}

    async def send(self, source: Source, request: UpstreamRequest) -> UpstreamResponse | FetchError:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return response(self.status, self.body)


AUTH = Mendeley().auth_request(SourceConfig(api_key="cid:sec"))


async def test_token_fetched_once_for_concurrent_callers() -> None:
    """Ten calls waiting for a token cause one token call; all get the same token."""
    assert AUTH is not None
    cache, upstream = TokenCache(), TokenUpstream(delay=0.01)
    tokens = await asyncio.gather(*(cache.get(Mendeley(), AUTH, upstream.send) for _ in range(10)))
    assert upstream.calls == 1 and {t for t in tokens} == {AccessToken("t1", 3600.0)}


async def test_token_renewed_after_expiry_or_drop() -> None:
    """A token past its lifetime (minus a margin) or dropped after a 401 is fetched again."""
    assert AUTH is not None
    clock = [0.0]
    cache, upstream = TokenCache(margin=60, clock=lambda: clock[0]), TokenUpstream()
    token = await cache.get(Mendeley(), AUTH, upstream.send)
    clock[0] = 3000.0
    await cache.get(Mendeley(), AUTH, upstream.send)
    assert upstream.calls == 1
    clock[0] = 3541.0
    await cache.get(Mendeley(), AUTH, upstream.send)
    assert upstream.calls == 2
    assert isinstance(token, AccessToken)
    cache.drop(Mendeley(), AccessToken("t1", 3600.0))
    await cache.get(Mendeley(), AUTH, upstream.send)
    assert upstream.calls == 3


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable"),
    [
        (401, {"error": "invalid_client"}, "config", False),
        (400, {"error": "unsupported_grant_type"}, "config", False),
        (503, "<html>down</html>", "http", True),
        (200, {"token_type": "bearer"}, "parse", True),
        (200, "<html>login</html>", "parse", True),
    ],
)
async def test_token_call_failures(status: int, body: object, kind: str, retryable: bool) -> None:
    """Refused credentials are a config error; an outage is retried; a tokenless body is a parse
    error. Nothing is cached."""
    assert AUTH is not None
    cache = TokenCache()
    got = await cache.get(Mendeley(), AUTH, TokenUpstream(status, body).send)
    assert isinstance(got, FetchError) and (got.kind, got.retryable) == (kind, retryable)
    again = TokenUpstream()
    assert isinstance(await cache.get(Mendeley(), AUTH, again.send), AccessToken)
    assert again.calls == 1


@pytest.mark.parametrize(
    ("url", "public"),
    [
        (
            "https://sushi.example/r5/reports/ir?customer_id=C1&requestor_id=R&api_key=s3cret&item_id=10.1/a",
            # COUNTER's SUSHI: some services take customer_id as the only credential
            "https://sushi.example/r5/reports/ir?customer_id=***&requestor_id=***&api_key=***&item_id=10.1/a",
        ),
        (
            "https://user:pa55@sushi.example/r5/reports/ir?key=k1&client_secret=s&begin_date=2019-01",
            "https://***@sushi.example/r5/reports/ir?key=***&client_secret=***&begin_date=2019-01",
        ),
        (
            "https://api.openalex.org/works?filter=doi:a|b&api_key=k",
            "https://api.openalex.org/works?filter=doi:a|b&api_key=***",
        ),
        ("https://api.crossref.org/works/10.1/a", "https://api.crossref.org/works/10.1/a"),
    ],
)
def test_stored_urls_do_not_carry_credentials(url: str, public: str) -> None:
    """Raw responses and observations keep the call's URL with API keys, customer and
    requestor ids, client secrets and a user:password part masked."""
    assert public_url(url) == public


async def test_counter_raw_response_url_is_masked() -> None:
    """A COUNTER call's recorded URL has its api_key masked, the item and window kept."""

    class Echo:
        async def call(self, source: Source, request: UpstreamRequest) -> UpstreamResponse:
            query = "&".join(f"{k}={v}" for k, v in request.params)
            reply = response(200, {"Report_Header": {}, "Report_Items": []})
            return UpstreamResponse(
                200, reply.headers, reply.body, f"https://s.example{request.path}?{query}"
            )

    config = SourceConfig(api_key="s3cret", extra={"customer_id": "C1", "end_date": "2026-10"})
    result = await fetch_batch(Counter(), [work("10.1/a")], config, Echo(), now)
    [raw] = result.raw
    assert "s3cret" not in raw.url and "api_key=***" in raw.url and "item_id=10.1/a" in raw.url
    assert result.observations[0].request_url == raw.url


def test_sources_missing_credentials_are_left_out_of_the_default_set() -> None:
    """Without ALM_SOURCES, sources that lack required credentials (Mendeley, COUNTER) do not
    run; naming them explicitly still runs them (and their works fail with kind config)."""
    from services.bootstrap import selected_sources
    from services.settings import Settings

    default = {s.name for s in selected_sources(Settings())}
    assert "mendeley" not in default and "counter" not in default
    assert {"crossref", "openalex", "wikipedia", "reddit"} <= default
    keyed = Settings(api_keys={"mendeley": "cid:sec"})
    assert "mendeley" in {s.name for s in selected_sources(keyed)}
    named = Settings(sources=("counter",))
    assert [s.name for s in selected_sources(named)] == ["counter"]
