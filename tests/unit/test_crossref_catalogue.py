"""Crossref's catalogue calls and parsers (services/fetchers/crossref_catalogue.py), on answers
recorded from api.crossref.org (tests/fixtures/upstream/crossref/pages, members, prefixes)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.core.catalogue_state import Scope, Window
from services.core.sources import SourceConfig
from services.fetchers.base import PayloadError, UpstreamResponse
from services.fetchers.crossref_catalogue import (
    SELECT,
    count_request,
    describe,
    index_filter,
    item_work,
    member_request,
    parse_member,
    parse_page,
    parse_prefix,
    prefix_request,
    refused_cursor,
    works_request,
)
from services.settings import FIXTURES

CROSSREF = FIXTURES / "crossref"
NOW = datetime(2026, 11, 29, tzinfo=UTC)
CONFIG = SourceConfig(contact_email="ops@example.org")


def _answer(path: str, status: int = 200) -> UpstreamResponse:
    return UpstreamResponse(status, {}, (CROSSREF / path).read_bytes(), "https://api.crossref.org")


def _json(payload: Any, status: int = 200) -> UpstreamResponse:
    return UpstreamResponse(status, {}, json.dumps(payload).encode(), "https://api.crossref.org")


def test_a_page_asks_for_the_window_the_fields_kept_and_the_polite_pool() -> None:
    """Filter by index dates, `select` of the kept fields, rows, cursor and mailto; the Plus
    token as a header when configured."""
    window = Window(date(2026, 1, 1), date(2026, 3, 31))
    request = works_request(Scope.member("340"), window, "DnF1+/=", 1000, CONFIG)
    assert request.path == "/members/340/works"
    assert dict(request.params) == {
        "filter": "from-index-date:2026-01-01,until-index-date:2026-03-31",
        "select": "DOI,title,issued,type,publisher,member,resource",
        "rows": "1000",
        "cursor": "DnF1+/=",  # the HTTP layer URL-encodes it
        "mailto": "ops@example.org",
    }
    assert request.headers == ()
    plus = works_request(
        Scope.prefix("10.1371"), Window(None, date(2026, 3, 31)), "*", 5, SourceConfig(api_key="k")
    )
    assert plus.path == "/prefixes/10.1371/works"
    assert dict(plus.params)["filter"] == "until-index-date:2026-03-31"
    assert plus.headers == (("Crossref-Plus-API-Token", "Bearer k"),)
    count = count_request(Scope.member("340"), window, CONFIG)
    assert dict(count.params)["rows"] == "0" and "cursor" not in dict(count.params)
    assert member_request("340", CONFIG).path == "/members/340"
    assert prefix_request("10.1371", CONFIG).path == "/prefixes/10.1371"
    assert index_filter(Window(None, date(2026, 1, 1))) == "until-index-date:2026-01-01"
    assert set(SELECT) >= {"DOI", "title", "issued", "type", "publisher", "member"}


def test_recorded_pages_with_a_cursor_parse_into_works() -> None:
    """Two recorded pages of `/members/98/works` with a cursor: five works each, with DOI,
    title, issued date, type, publisher, member id and landing page; the cursor comes back."""
    first = parse_page(_answer("pages/members-98-works-cursor-1.json"))
    second = parse_page(_answer("pages/members-98-works-cursor-2.json"))
    assert first.items == second.items == 5 and not first.rejected
    assert first.total == 138567
    assert first.next_cursor and first.next_cursor.startswith("DnF1ZXJ5VGhlbkZldGNo")
    assert second.next_cursor == first.next_cursor  # a scroll: the same cursor every page
    work = first.works[0]
    assert work.work_id == work.doi == "10.4061/2010/505436"
    assert work.publisher_id == "98"
    assert work.type == "journal-article"
    assert work.publisher == "Hindawi Limited"
    assert work.issued is not None and work.title
    assert work.canonical_url == "https://www.hindawi.com/journals/pri/2010/505436/"
    assert {w.work_id for w in first.works}.isdisjoint(w.work_id for w in second.works)


def test_a_recorded_member_and_prefix_name_the_publisher() -> None:
    """`/members/{id}` gives name, prefixes, other names, location and Crossref's count;
    `/prefixes/{p}` the member that owns the prefix."""
    member = parse_member(_answer("members/1.json"), NOW)
    assert (member.member_id, member.name, member.prefixes) == (
        "1",
        "Annals of Family Medicine",
        ("10.1370",),
    )
    assert member.works_upstream == 5339 and member.location == "Leawood, KS, United States"
    assert member.updated_at == NOW
    plos = parse_member(_answer("members/340.json"), NOW)
    assert plos.name == "Public Library of Science (PLoS)" and plos.prefixes == ("10.1371",)
    assert plos.other_names == ("Public Library of Science",)
    assert plos.named("public library of science") and not plos.named("PLOS ONE")
    assert parse_prefix(_answer("prefixes/10.1016.json")) == "78"
    assert parse_prefix(_answer("prefixes/10.1371.json")) == "340"


@pytest.mark.parametrize(
    ("path", "status"),
    [("pages/cursor-invalid-404.json", 404), ("pages/cursor-invalid-500-2024.json", 500)],
)
def test_recorded_refusals_of_a_cursor_are_told_apart(path: str, status: int) -> None:
    """Crossref's answers to a cursor it cannot use (404 `cursor-invalid` since 2026, an
    `exception` with HTTP 500 before) mean: start the window again; never for `*`."""
    answer = _answer(path, status)
    assert refused_cursor(answer, "DnF1ZXJ5")
    assert not refused_cursor(answer, "*")
    assert describe(answer).startswith(f"HTTP {status}: ")


def test_other_failures_are_not_cursor_refusals() -> None:
    """A 503 page or a 429 is not the cursor's fault; a validation failure is described."""
    html = UpstreamResponse(503, {}, b"<h1>503 Service Unavailable</h1>", "u")
    assert not refused_cursor(html, "DnF1ZXJ5")
    bad = _json(
        {
            "status": "failed",
            "message-type": "validation-failure",
            "message": [{"type": "filter-not-available", "value": "x", "message": "No x"}],
        },
        400,
    )
    assert not refused_cursor(bad, "DnF1ZXJ5")
    assert describe(bad) == "HTTP 400: No x"


@pytest.mark.parametrize(
    ("item", "field", "expected"),
    [
        ({"DOI": "10.1371/JOURNAL.PONE.0000308"}, "work_id", "10.1371/journal.pone.0000308"),
        (
            {"DOI": "10.1371/x", "member": "http://id.crossref.org/member/340"},
            "publisher_id",
            "340",
        ),
        ({"DOI": "10.1371/x", "member": "0340"}, "publisher_id", None),
        ({"DOI": "10.1371/x", "type": "Journal Article"}, "type", None),
        ({"DOI": "10.1371/x", "type": "posted-content"}, "type", "posted-content"),
        ({"DOI": "10.1371/x", "issued": {"date-parts": [[2026, 9]]}}, "issued", date(2026, 9, 1)),
        ({"DOI": "10.1371/x", "issued": {"date-parts": [[None]]}}, "issued", None),
        ({"DOI": "10.1371/x", "title": ["  A  title\n"]}, "title", "A title"),
        ({"DOI": "10.1371/x", "title": []}, "title", None),
        ({"DOI": "10.1371/x", "resource": {"primary": {"URL": "ftp://x"}}}, "canonical_url", None),
    ],
)
def test_item_metadata_is_kept_when_well_formed(
    item: dict[str, Any], field: str, expected: Any
) -> None:
    """Each field is read from Crossref's shapes and dropped, not failed, when malformed."""
    assert getattr(item_work(item), field) == expected


@pytest.mark.parametrize("item", [{}, {"DOI": 5}, {"DOI": "not a doi"}, "10.1371/x", None])
def test_an_item_without_a_usable_doi_is_left_out_of_its_page(item: Any) -> None:
    """Such an item is rejected with its reason; the rest of the page stands."""
    with pytest.raises(PayloadError):
        item_work(item)
    page = parse_page(
        _json(
            {
                "status": "ok",
                "message-type": "work-list",
                "message": {"total-results": 2, "items": [item, {"DOI": "10.1371/ok"}]},
            }
        )
    )
    assert [w.work_id for w in page.works] == ["10.1371/ok"]
    assert len(page.rejected) == 1 and page.items == 2 and page.next_cursor is None


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "ok", "message-type": "work", "message": {}},
        {"status": "failed", "message-type": "work-list", "message": {}},
        {"status": "ok", "message-type": "work-list", "message": {"items": {}}},
        {"status": "ok", "message-type": "work-list", "message": {"items": []}},
        {
            "status": "ok",
            "message-type": "work-list",
            "message": {"items": [], "total-results": -1},
        },
        {
            "status": "ok",
            "message-type": "work-list",
            "message": {"items": [], "total-results": 0, "next-cursor": 7},
        },
    ],
)
def test_a_page_not_in_the_documented_shape_is_refused(payload: Any) -> None:
    """A work-list answer without its items, count or a string cursor is a PayloadError."""
    with pytest.raises(PayloadError):
        parse_page(_json(payload))
