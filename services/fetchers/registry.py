"""The registry of source plug-ins: one line per source."""

from __future__ import annotations

from services.fetchers.base import Source
from services.fetchers.sources.crossref import Crossref
from services.fetchers.sources.europepmc import EuropePmc
from services.fetchers.sources.openalex import OpenAlex

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Crossref(),
        OpenAlex(),
        EuropePmc(),
    )
}


class UnknownSource(KeyError):
    """A source name that no plug-in has."""


def get_source(name: str) -> Source:
    """The plug-in called `name`, or UnknownSource naming the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSource(
            f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}"
        ) from None
