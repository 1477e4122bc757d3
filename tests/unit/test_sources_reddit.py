"""Reddit plug-in: anonymous or OAuth search, posts as events, upvotes and comments summed."""

from __future__ import annotations

import base64

from services.core.metrics import Slot
from services.core.sources import SourceConfig
from services.fetchers.base import Found
from services.fetchers.sources.reddit import WWW, Reddit
from tests.unit.sources_kit import kind, outcomes, record, response, work

SOURCE = Reddit()
PEERJ = work("10.7717/peerj.4375")
OAUTH = SourceConfig(extra={"client_id": "cid", "client_secret": "sec"})


def test_without_credentials_the_anonymous_json_search_is_used() -> None:
    """No app credentials: no token call, `www.reddit.com/search.json?q="DOI"`."""
    assert SOURCE.auth_request(SourceConfig()) is None
    [call] = SOURCE.requests([PEERJ], SourceConfig())
    assert (call.host, call.path) == (WWW, "/search.json")
    assert dict(call.params)["q"] == '"10.7717/peerj.4375"'


def test_with_credentials_a_token_call_and_the_oauth_host() -> None:
    """Credentials: client-credentials token call (Basic auth) on www, search on oauth host."""
    auth = SOURCE.auth_request(OAUTH)
    assert auth is not None and (auth.method, auth.host, auth.path) == (
        "POST",
        WWW,
        "/api/v1/access_token",
    )
    assert dict(auth.form) == {"grant_type": "client_credentials"}
    assert dict(auth.headers)["Authorization"] == "Basic " + base64.b64encode(b"cid:sec").decode()
    [call] = SOURCE.requests([PEERJ], OAUTH)
    assert (call.host, call.path) == (None, "/search")


def test_listing_sums_comments_and_scores_into_slots() -> None:
    """Comments and (non-negative) scores are summed; the ALM slots are comments and likes."""
    [call] = SOURCE.requests([PEERJ], SourceConfig())
    got, more = outcomes(SOURCE, call, response(200, record("reddit", PEERJ.doi or "")))
    found = got[PEERJ.work_id]
    assert isinstance(found, Found) and more == ()
    assert found.metrics == {"posts": 3, "comments": 415, "likes": 3066}
    assert {m.name: m.slot for m in SOURCE.metrics} == {
        "comments": Slot.COMMENTS,
        "likes": Slot.LIKES,
        "posts": None,
    }
    event = found.events[1]
    assert event.event_id == "reddit:t3_7xl0cd"
    assert event.url and event.url.startswith("https://www.reddit.com/r/science/comments/7xl0cd/")
    assert event.event_time == "2018-02-15T00:00:00Z"
    assert event.csl["container-title"] == "r/science"


def test_after_pages_carry_running_totals() -> None:
    """A listing with `after` asks for the next page carrying the totals so far."""
    [call] = SOURCE.requests([PEERJ], SourceConfig())
    body = record("reddit", PEERJ.doi or "")
    body["data"]["after"] = "t3_8a1b2c"
    _, (nxt,) = outcomes(SOURCE, call, response(200, body))
    assert dict(nxt.params)["after"] == "t3_8a1b2c"
    assert nxt.context == {"posts": "3", "comments": "415", "likes": "3066", "page": "2"}
    empty = {"kind": "Listing", "data": {"after": None, "children": []}}
    got, more = outcomes(SOURCE, nxt, response(200, empty))
    found = got[PEERJ.work_id]
    assert isinstance(found, Found) and found.metrics["likes"] == 3066 and more == ()


def test_empty_listing_is_not_found_and_non_listing_fails() -> None:
    """No posts is not found; a JSON answer that is not a Listing is a parse failure."""
    [call] = SOURCE.requests([PEERJ], SourceConfig())
    empty = {"kind": "Listing", "data": {"after": None, "children": []}}
    assert kind(outcomes(SOURCE, call, response(200, empty))[0][PEERJ.work_id]) == "not_found"
    assert (
        kind(outcomes(SOURCE, call, response(200, {"message": "Forbidden"}))[0][PEERJ.work_id])
        == "failed:parse"
    )
