"""Wikipedia plug-in: one search per language, `continue` paging, one event per page."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.core.events import SourceEvent
from services.core.sources import SourceConfig
from services.fetchers.base import Found
from services.fetchers.sources.wikipedia import DEFAULT_LANGUAGES, Wikipedia, languages
from tests.unit.sources_kit import fixture, kind, outcomes, response, work

SOURCE = Wikipedia()
PONE = work("10.1371/journal.pone.0000308")


def hits(*pages: tuple[str, int]) -> dict[str, object]:
    """A formatversion=2 search answer with these (title, pageid) hits."""
    search = [
        {"ns": 0, "title": t, "pageid": p, "timestamp": "2026-01-02T03:04:05Z"} for t, p in pages
    ]
    return {
        "batchcomplete": True,
        "query": {"searchinfo": {"totalhits": len(search)}, "search": search},
    }


@pytest.mark.parametrize(
    ("extra", "langs"),
    [
        ({}, DEFAULT_LANGUAGES),
        ({"languages": "en, pt,zh"}, ("en", "pt", "zh")),
        ({"languages": "x-y,"}, DEFAULT_LANGUAGES),
    ],
)
def test_languages_are_configurable(extra: dict[str, str], langs: tuple[str, ...]) -> None:
    """`extra["languages"]` picks the editions; nonsense falls back to the defaults."""
    assert languages(SourceConfig(extra=extra)) == langs


def test_one_insource_search_per_language() -> None:
    """Each language gets `insource:"DOI"` on its own host, main namespace, formatversion 2."""
    calls = SOURCE.requests([PONE], SourceConfig(extra={"languages": "en,de"}))
    assert [c.host for c in calls] == ["https://en.wikipedia.org/w", "https://de.wikipedia.org/w"]
    params = dict(calls[0].params)
    assert params["srsearch"] == 'insource:"10.1371/journal.pone.0000308"'
    assert (params["srnamespace"], params["formatversion"], params["sroffset"]) == ("0", "2", "0")


def test_hits_become_page_events_and_continue_asks_for_more() -> None:
    """Hits are events keyed lang:pageid with the page URL; `continue` gives the next offset."""
    call = SOURCE.requests([PONE], SourceConfig(extra={"languages": "fr"}))[0]
    body = {
        **hits(("Cercopithecus lomamiensis", 7012345)),
        "continue": {"sroffset": 100, "continue": "-||"},
    }
    got, more = outcomes(SOURCE, call, response(200, body))
    found = got[PONE.work_id]
    assert isinstance(found, Found)
    [event] = found.events
    assert event.event_id == "fr:7012345"
    assert event.url == "https://fr.wikipedia.org/wiki/Cercopithecus_lomamiensis"
    assert (
        event.csl["container-title"] == "Wikipedia (fr)"
        and event.csl["type"] == "entry-encyclopedia"
    )
    assert [dict(m.params)["sroffset"] for m in more] == ["100"]
    assert more[0].host == "https://fr.wikipedia.org/w"


def test_no_hits_in_a_language_is_not_found_there() -> None:
    """An empty search is `not found` for that language (merged with the others later)."""
    call = SOURCE.requests([PONE], SourceConfig())[0]
    got, more = outcomes(SOURCE, call, response(200, hits()))
    assert kind(got[PONE.work_id]) == "not_found" and more == ()


def test_complete_counts_distinct_pages() -> None:
    """The total is the number of distinct language:page events (duplicates across pages drop)."""
    event = SourceEvent("en:1", None, "u", {})
    merged = Found({}, events=(event, SourceEvent("de:1", None, "v", {}), replace(event)))
    done = SOURCE.complete(merged)
    assert done.metrics == {"pages": 2} and len(done.events) == 2


@pytest.mark.parametrize(
    ("body_file", "expected"),
    [
        ("errors/ratelimited.json", "failed:rate_limited"),
        ("errors/maxlag.json", "failed:rate_limited"),
    ],
)
def test_mediawiki_errors_arrive_in_200(body_file: str, expected: str) -> None:
    """`{"error": {"code": "ratelimited"|"maxlag"}}` with HTTP 200 is a retryable failure."""
    call = SOURCE.requests([PONE], SourceConfig())[0]
    got, _ = outcomes(SOURCE, call, response(200, fixture("wikipedia", body_file)))
    assert kind(got[PONE.work_id]) == expected
