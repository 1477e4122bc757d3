"""Reading a change filter (services/core/change_filter.py) from the SSE stream's query or a
webhook's JSON body, checked whole before anything is read or written.

In a query, `source` and `group` take comma-separated lists (names only: no spaces, no empty
entry) and may repeat; `publisher` and `work` repeat, one value each (publisher names and DOIs
may contain commas). An empty or blank publisher is no criterion. A work is named by
any accepted identifier: a registered work's id is looked up (a PMID of a work registered by its
DOI names that work), an unregistered one stands for the work it would be registered as.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from services.api.errors import BadParameter
from services.api.state import CATALOG, STORE
from services.core.catalog import Catalog
from services.core.change_filter import MAX_VALUES, ChangeFilter
from services.core.identifiers import MAX_INPUT_LENGTH, parse_identifier
from services.core.metrics import Group
from services.core.text import NAME_LIMIT, shown

FIELDS = {"source": "sources", "group": "groups", "publisher": "publishers", "work": "works"}


def _values(request: web.Request, name: str, split: bool) -> list[str]:
    """Every value of a repeated parameter, comma-separated lists split (each entry must then
    be a name: no spaces, no empty entry)."""
    raw = request.query.getall(name, [])
    return [v for r in raw for v in (r.split(",") if split else [r])]


async def filter_from_query(request: web.Request) -> ChangeFilter:
    """`?source=a,b&group=cited&publisher=...&work=...` as a filter, or BadParameter."""
    return await build_filter(
        request.app,
        sources=_values(request, "source", split=True),
        groups=_values(request, "group", split=True),
        publishers=_values(request, "publisher", split=False),
        works=_values(request, "work", split=False),
        named=("source", "group", "publisher", "work"),
    )


async def filter_from_body(app: web.Application, body: Mapping[str, Any]) -> ChangeFilter:
    """The `filters` object of a webhook registration (every field optional), or BadParameter."""
    unknown = sorted(set(body) - set(FIELDS.values()))
    if unknown:
        raise BadParameter(f"'filters' has unknown fields: {', '.join(map(repr, unknown[:5]))}")
    lists = {}
    for name in FIELDS.values():
        value = body.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadParameter(f"'filters.{name}' must be a list of strings")
        lists[name] = list(value)
    return await build_filter(
        app,
        **lists,
        named=("filters.sources", "filters.groups", "filters.publishers", "filters.works"),
    )


async def build_filter(
    app: web.Application,
    sources: list[str],
    groups: list[str],
    publishers: list[str],
    works: list[str],
    named: tuple[str, str, str, str],
) -> ChangeFilter:
    """Check each criterion (known sources and groups, bounded publishers, valid identifiers)
    and resolve the works to their ids. Sources and groups are counted once each: a name
    repeated (the document allows 100 comma lists) is no new value."""
    sources, groups = list(dict.fromkeys(sources)), list(dict.fromkeys(groups))
    for values, name in zip((sources, groups, publishers, works), named, strict=True):
        if len(values) > MAX_VALUES:
            raise BadParameter(f"{name!r} takes at most {MAX_VALUES} values, got {len(values)}")
    catalog: Catalog = app[CATALOG]
    _known(sources, list(catalog), named[0])
    _known(groups, [g.value for g in Group], named[1])
    for publisher in publishers:
        if len(publisher) > NAME_LIMIT:
            raise BadParameter(f"{named[2]!r}: a publisher has at most {NAME_LIMIT} characters")
    publishers = [p for p in publishers if p.strip()]
    idents = []
    for raw in works:
        if len(raw) > MAX_INPUT_LENGTH:
            raise BadParameter(
                f"{named[3]!r}: an identifier has at most {MAX_INPUT_LENGTH} characters"
            )
        idents.append(parse_identifier(raw))  # InvalidIdentifier: a 400 naming it
    found = await app[STORE].find_works(idents) if idents else {}
    work_ids = [found[i].work_id if i in found else i.work_id for i in idents]
    return ChangeFilter.of(sources, groups, publishers, work_ids)


def _known(values: Iterable[str], known: Iterable[str], name: str) -> None:
    choices = set(known)
    for value in values:
        if value not in choices:
            listed = ", ".join(sorted(choices))
            raise BadParameter(f"{name!r} must name one of {listed}, got {shown(value, 40)!r}")
