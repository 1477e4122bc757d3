"""The registry of source plug-ins: one line per source."""

from __future__ import annotations

from services.core.catalog import Catalog
from services.fetchers.base import Source
from services.fetchers.sources.counter import Counter
from services.fetchers.sources.crossref import Crossref
from services.fetchers.sources.datacite import DataCite
from services.fetchers.sources.europepmc import EuropePmc
from services.fetchers.sources.hypothesis import Hypothesis
from services.fetchers.sources.mendeley import Mendeley
from services.fetchers.sources.openalex import OpenAlex
from services.fetchers.sources.opencitations import OpenCitations
from services.fetchers.sources.pubmed import PubMed
from services.fetchers.sources.reddit import Reddit
from services.fetchers.sources.semanticscholar import SemanticScholar
from services.fetchers.sources.wikidata import Wikidata
from services.fetchers.sources.wikipedia import Wikipedia

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Crossref(),
        OpenAlex(),
        EuropePmc(),
        OpenCitations(),
        DataCite(),
        SemanticScholar(),
        PubMed(),
        Wikipedia(),
        Reddit(),
        Hypothesis(),
        Wikidata(),
        Counter(),
        Mendeley(),
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


def catalog() -> Catalog:
    """What the API, the site and the CLI know of every installed source (no plug-in code)."""
    return Catalog(source.info() for source in SOURCES.values())
