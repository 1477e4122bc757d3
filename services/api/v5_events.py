"""ALM's event entries (`info=detail`): `{event, event_time, event_url, event_csl}` with `event`
first, as Lagotto built them and pyalm's event classes and R `alm_events` read them.

`event` is the upstream's own object in Lagotto. This store keeps each event as an id, a time,
a URL and CSL-JSON, so `event` is rebuilt from those in the shape of the Lagotto source the
clients know for that kind of event: a CrossRef `journal_cite` for citations (R reads its
`publication_type`, `contributors`, `issn`; pyalm `int()`s its numbers), Reddit's post for
Reddit (numeric `created_utc`), the citing id for PubMed, DataCite's record for DataCite.
Fields the store does not know are null, never invented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.core.events import SourceEvent
from services.core.metrics import Group
from services.core.timeutil import alm_time_of, from_iso


def v5_event(source: str, group: Group | None, event: SourceEvent) -> dict[str, Any]:
    """One event entry of `source` (of `group`; None: no longer installed); `event_time` in
    ALM's `YYYY-MM-DDTHH:MM:SSZ` form or null."""
    csl = event_csl(event.csl, event.url)
    when = alm_time_of(event.event_time)
    return {
        "event": _event_object(source, group, event, csl, when),
        "event_time": when,
        "event_url": event.url or csl.get("url"),
        "event_csl": csl,
    }


def event_csl(stored: Mapping[str, Any], url: str | None) -> dict[str, Any]:
    """The stored CSL with what the clients index without checking: `author` a list of
    `{family, given}`, `container-title` a string, `title`, `type`, and `url` in lower case
    (almviz and R) as well as CSL's `URL`."""
    csl = dict(stored)
    csl["author"] = [_author(a) for a in stored.get("author") or () if isinstance(a, Mapping)]
    container = stored.get("container-title")
    csl["container-title"] = container if isinstance(container, str) else ""
    csl.setdefault("title", None)
    csl.setdefault("type", None)
    link = stored.get("URL") or url
    csl["url"] = link
    csl["URL"] = link
    return csl


def _author(author: Mapping[str, Any]) -> dict[str, Any]:
    family = author.get("family") or author.get("literal") or ""
    return {**author, "family": family, "given": author.get("given") or ""}


def _event_object(
    source: str, group: Group | None, event: SourceEvent, csl: Mapping[str, Any], when: str | None
) -> Any:
    if source == "pubmed":  # Lagotto: the citing article's id as a string
        return event.event_id.split(":", 1)[-1]
    if source == "reddit":
        return _reddit(event, csl, when)
    if source == "datacite":
        return _datacite(csl)
    if group is Group.CITED:
        return _journal_cite(csl)
    return {
        "id": event.event_id,
        "title": csl.get("title"),
        "url": csl.get("url"),
        "timestamp": when,
        "type": csl.get("type"),
    }


def _year(csl: Mapping[str, Any]) -> int | None:
    parts = (csl.get("issued") or {}).get("date-parts") or [[]]
    first = parts[0] if parts and isinstance(parts[0], list) else []
    return first[0] if first and isinstance(first[0], int) else None


def _digits(value: Any) -> str | None:
    """pyalm `int()`s CrossRef's volume/issue/page strings: digits only, else null."""
    text = str(value) if isinstance(value, str | int) else ""
    return text if text.isdigit() else None


def _journal_cite(csl: Mapping[str, Any]) -> dict[str, Any]:
    authors = csl.get("author") or []
    issn = csl.get("ISSN")
    return {
        "doi": csl.get("DOI"),
        "article_title": csl.get("title"),
        "journal_title": csl.get("container-title") or None,
        "journal_abbreviation": csl.get("container-title-short"),
        "issn": issn[0] if isinstance(issn, list) and issn else issn,
        "year": _year(csl),
        "volume": _digits(csl.get("volume")),
        "issue": _digits(csl.get("issue")),
        "first_page": _digits(str(csl.get("page") or "").split("-")[0]),
        "fl_count": None,
        "publication_type": "full_text",
        "contributors": {
            "contributor": [
                {
                    "given_name": a.get("given") or "",
                    "surname": a.get("family") or "",
                    "contributor_role": "author",
                    "sequence": "first" if i == 0 else "additional",
                    "first_author": i == 0,
                }
                for i, a in enumerate(authors)
            ]
        },
    }


def _reddit(event: SourceEvent, csl: Mapping[str, Any], when: str | None) -> dict[str, Any]:
    created = from_iso(when).timestamp() if when else None
    authors = csl.get("author") or []
    return {
        "name": event.event_id.split(":", 1)[-1],
        "title": csl.get("title"),
        "author": authors[0].get("family") if authors else None,
        "subreddit": csl.get("container-title") or None,
        "url": csl.get("url"),
        "permalink": event.url,
        "created": created,
        "created_utc": created,
    }


def _datacite(csl: Mapping[str, Any]) -> dict[str, Any]:
    authors = csl.get("author") or []
    return {
        "relatedIdentifier": csl.get("DOI"),
        "doi": csl.get("DOI"),
        "publicationYear": _year(csl),
        "publisher": csl.get("publisher"),
        "title": csl.get("title"),
        "creator": [a.get("family") for a in authors],
    }
