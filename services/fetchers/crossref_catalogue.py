"""Crossref's catalogue routes as calls and parsers (pure: no I/O): a member (`/members/{id}`),
an owner prefix (`/prefixes/{p}`) and their works (`/members/{id}/works`,
`/prefixes/{p}/works`), paged with a deep-paging cursor and filtered by index date.

Calls: `rows` up to 1000, `select` of the fields a registered work keeps, `mailto` (the polite
pool), the Plus token header when configured; `rows=0` counts a window. Cursors go in the query
string, which the HTTP layer URL-encodes (they hold `+`, `/` and `=`). Answers as recorded
(UPSTREAMS.md B.1; tests/fixtures/upstream/crossref/): a `work-list` message with `items`,
`total-results` and `next-cursor`; `Resource not found.` in plain text for an unknown member,
prefix or an expired cursor; an `exception` message with HTTP 500 for a cursor the search engine
cannot read; a `validation-failure` list with HTTP 400 for a bad parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.catalogue_state import Scope, ScopeKind, Window
from services.core.identifiers import InvalidIdentifier, normalize_doi
from services.core.publishers import Publisher
from services.core.sources import SourceConfig
from services.core.text import NAME_LIMIT, bounded, one_line
from services.core.timeutil import parse_date
from services.core.works import Work
from services.fetchers.base import (
    PayloadError,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    as_list,
    encode_path,
    expect,
    json_payload,
    work_meta,
)

SELECT = ("DOI", "title", "issued", "type", "publisher", "member", "resource")
_TYPE = re.compile(r"[a-z][a-z0-9-]{0,63}")
_MEMBER = re.compile(r"(?:.*/)?([1-9][0-9]{0,9})")  # "340" or "http://id.crossref.org/member/340"


@dataclass(frozen=True, slots=True)
class WorksPage:
    """One page of a catalogue: the works it lists, why the unusable items were left out."""

    works: tuple[Work, ...]
    rejected: tuple[str, ...]
    next_cursor: str | None
    total: int  # `total-results` of the query

    @property
    def items(self) -> int:
        """Items on the page (usable or not): what tells the last page."""
        return len(self.works) + len(self.rejected)


def _headers(config: SourceConfig) -> tuple[tuple[str, str], ...]:
    if config.api_key:
        return (("Crossref-Plus-API-Token", f"Bearer {config.api_key}"),)
    return ()


def member_request(member_id: str, config: SourceConfig) -> UpstreamRequest:
    """`GET /members/{id}`."""
    params = (("mailto", config.contact_email),)
    return UpstreamRequest(f"/members/{member_id}", (), params, headers=_headers(config))


def prefix_request(prefix: str, config: SourceConfig) -> UpstreamRequest:
    """`GET /prefixes/{prefix}` (names the member that owns it)."""
    params = (("mailto", config.contact_email),)
    return UpstreamRequest(f"/prefixes/{encode_path(prefix)}", (), params, headers=_headers(config))


def works_path(scope: Scope) -> str:
    """The works route of `scope`."""
    if scope.kind is ScopeKind.MEMBER:
        return f"/members/{scope.value}/works"
    return f"/prefixes/{encode_path(scope.value)}/works"


def index_filter(window: Window) -> str:
    """`from-index-date:A,until-index-date:B` (both days included; no start: no lower bound)."""
    until = f"until-index-date:{window.end.isoformat()}"
    return f"from-index-date:{window.start.isoformat()},{until}" if window.start else until


def works_request(
    scope: Scope, window: Window, cursor: str, rows: int, config: SourceConfig
) -> UpstreamRequest:
    """A page of `scope`'s works indexed in `window`: `cursor=*` starts, `next-cursor` goes on."""
    params = (
        ("filter", index_filter(window)),
        ("select", ",".join(SELECT)),
        ("rows", str(rows)),
        ("cursor", cursor),
        ("mailto", config.contact_email),
    )
    return UpstreamRequest(works_path(scope), (), params, headers=_headers(config))


def count_request(scope: Scope, window: Window, config: SourceConfig) -> UpstreamRequest:
    """How many of `scope`'s works were indexed in `window` (`rows=0`: the summary only)."""
    params = (
        ("filter", index_filter(window)),
        ("rows", "0"),
        ("mailto", config.contact_email),
    )
    return UpstreamRequest(works_path(scope), (), params, headers=_headers(config))


def _message(response: UpstreamResponse, message_type: str) -> dict[str, Any]:
    payload = json_payload(response)
    expect(isinstance(payload, dict), "response is not a JSON object")
    expect(payload.get("status") == "ok", f"status is {payload.get('status')!r}, not 'ok'")
    expect(
        payload.get("message-type") == message_type,
        f"message-type is {payload.get('message-type')!r}, not {message_type!r}",
    )
    message = payload.get("message")
    expect(isinstance(message, dict), "no 'message' object")
    return dict(message)


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(bounded(" ".join(v.split()), NAME_LIMIT) for v in value if isinstance(v, str))


def parse_member(response: UpstreamResponse, now: datetime) -> Publisher:
    """The publisher in a `/members/{id}` answer."""
    message = _message(response, "member")
    member = message.get("id")
    expect(isinstance(member, int) and not isinstance(member, bool), "member 'id' is not a number")
    name = message.get("primary-name")
    expect(isinstance(name, str) and bool(name.strip()), "member without a 'primary-name'")
    prefixes = [p for p in message.get("prefixes") or () if isinstance(p, str)]
    if not prefixes:  # older answers list only the `prefix` objects
        prefixes = [
            p["value"]
            for p in message.get("prefix") or ()
            if isinstance(p, dict) and isinstance(p.get("value"), str)
        ]
    counts = message.get("counts")
    total = counts.get("total-dois") if isinstance(counts, dict) else None
    location = message.get("location")
    clean = bounded(" ".join(str(name).split()), NAME_LIMIT)
    return Publisher(
        member_id=str(member),
        name=clean,
        prefixes=tuple(sorted(set(prefixes))),
        other_names=tuple(n for n in dict.fromkeys(_texts(message.get("names"))) if n != clean),
        location=bounded(location, NAME_LIMIT) if isinstance(location, str) else None,
        works_upstream=as_count(total, "counts.total-dois") if total is not None else None,
        updated_at=now,
    )


def parse_prefix(response: UpstreamResponse) -> str:
    """The member id that owns the prefix, from a `/prefixes/{p}` answer."""
    message = _message(response, "prefix")
    match = _MEMBER.fullmatch(str(message.get("member", "")))
    expect(match is not None, f"prefix 'member' is not a member id: {message.get('member')!r}")
    assert match is not None
    return match.group(1)


def parse_page(response: UpstreamResponse) -> WorksPage:
    """The works of a `work-list` answer; an item without a usable DOI is left out, with why."""
    message = _message(response, "work-list")
    items = as_list(message.get("items"), "work-list 'items'")
    total = as_count(message.get("total-results"), "total-results")
    cursor = message.get("next-cursor")
    expect(cursor is None or isinstance(cursor, str), "'next-cursor' is not a string")
    works: list[Work] = []
    rejected: list[str] = []
    for item in items:
        try:
            works.append(item_work(item))
        except PayloadError as exc:
            rejected.append(str(exc))
    return WorksPage(tuple(works), tuple(rejected), cursor or None, total)


def item_work(item: Any) -> Work:
    """The work a catalogue item describes: its DOI with title, issued date, type, publisher
    name, member id and landing page; malformed metadata is dropped, a missing DOI refused."""
    expect(isinstance(item, dict), "an item is not an object")
    raw = item.get("DOI")
    expect(isinstance(raw, str), "an item without a DOI")
    try:
        doi = normalize_doi(str(raw))
    except InvalidIdentifier as exc:
        raise PayloadError(f"item DOI {bounded(str(raw), 80)!r}: {exc.reason}") from None
    resource = item.get("resource")
    primary = resource.get("primary") if isinstance(resource, dict) else None
    meta = work_meta(
        title=item.get("title"),
        issued=item.get("issued"),
        publisher=item.get("publisher"),
        canonical_url=primary.get("URL") if isinstance(primary, dict) else None,
    )
    kind = item.get("type")
    member = _MEMBER.fullmatch(str(item.get("member", "")))
    return Work(
        work_id=doi,
        doi=doi,
        title=meta.get("title"),
        issued=parse_date(meta.get("issued")),
        publisher=meta.get("publisher"),
        canonical_url=meta.get("canonical_url"),
        type=kind if isinstance(kind, str) and _TYPE.fullmatch(kind) else None,
        publisher_id=member.group(1) if member else None,
    )


def refused_cursor(response: UpstreamResponse, cursor: str) -> bool:
    """Whether the answer refuses `cursor` itself (expired: `Resource not found.`; unreadable
    by the search engine: an `exception` message), so the window must start again."""
    if cursor == "*":
        return False
    if response.status == 404:
        return True
    return response.status >= 500 and '"message-type":"exception"' in response.text().replace(
        " ", ""
    )


def describe(response: UpstreamResponse) -> str:
    """One line saying what an error answer says: Crossref's validation messages, its
    exception message, or the start of the body."""
    try:
        payload = json_payload(response)
    except PayloadError:
        payload = None
    detail = one_line(response.text())
    if isinstance(payload, dict):
        message = payload.get("message")
        if isinstance(message, list):  # validation-failure: [{type, value, message}]
            detail = "; ".join(str(m.get("message")) for m in message if isinstance(m, dict))[:300]
        elif isinstance(message, dict) and isinstance(message.get("message"), str):
            detail = message["message"][:200]
    return f"HTTP {response.status}: {detail}" if detail else f"HTTP {response.status}"
