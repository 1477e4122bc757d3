"""Searching works: what a query asks for, and the words a work is found by.

A query is either an identifier (a DOI in any form, `pmid:`/`pmcid:`, `PMC123`, a bare number)
looked up by the identifier index, or words, all of which must occur in the work's title or its
publisher's name (ANDed; past MAX_WORDS, the index is asked for the longest and the others are
checked on what it gives). Words are folded the same way on both sides (Unicode compatibility
form, diacritics dropped, case folded, runs of letters and digits), so "Café" finds "cafe" in
SQLite's FTS5 index and in Cassandra's storage-attached index on the terms set alike. Nothing of
the query reaches a store as syntax: only folded words of letters and digits.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from services.core.identifiers import Identifier, InvalidIdentifier, parse_identifier
from services.core.works import Work

MAX_QUERY = 500  # characters of a query
MAX_WORDS = 10  # words a store's index is asked for at once (the others are checked after)
MAX_WORD = 64  # characters of a word kept (longer ones are cut, on both sides)
MAX_TERMS = 200  # distinct words a work is indexed by

_WORD = re.compile(r"[^\W_]+")
_ID_LIKE = re.compile(
    r"(?i)(?:(?:https?://)?(?:dx\.)?doi\.org/|doi:\s*|10\.\d{4,9}/|pmid:\s*|pmcid:\s*|pmc\d)"
)


class InvalidQuery(ValueError):
    """A query that cannot be searched for (empty, too long, no word, a malformed id)."""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What a query asks for: an identifier (with the words to fall back on when no work has
    it, for a bare number that may be a year in a title), or words only."""

    ident: Identifier | None
    words: tuple[str, ...]


def fold(text: str) -> str:
    """`text` without diacritics, in compatibility form, case folded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str | None) -> list[str]:
    """The folded words of `text` in order (letters and digits; each at most MAX_WORD)."""
    if not text:
        return []
    return [w[:MAX_WORD] for w in _WORD.findall(fold(text))]


def terms(work: Work) -> set[str]:
    """The words `work` is found by: its title's and its publisher's (at most MAX_TERMS)."""
    found = dict.fromkeys(words(work.title) + words(work.publisher))
    return set(list(found)[:MAX_TERMS])


def parse_query(raw: str) -> SearchQuery:
    """The query `raw` asks for, or InvalidQuery saying why it cannot be searched."""
    text = raw.strip()
    if not text:
        raise InvalidQuery("the query is empty: give title words, a DOI, a PMID or a PMCID")
    if len(text) > MAX_QUERY:
        raise InvalidQuery(f"the query has {len(text)} characters; at most {MAX_QUERY} are read")
    found = list(dict.fromkeys(words(text)))
    if len(text.split()) == 1 and (_ID_LIKE.match(text) or text.isdigit()):
        try:
            ident = parse_identifier(text)
        except InvalidIdentifier as exc:
            if not text.isdigit():
                raise InvalidQuery(str(exc)) from exc
        else:
            return SearchQuery(ident, tuple(found) if text.isdigit() else ())
    if not found:
        raise InvalidQuery("the query has no word to search for (letters or digits)")
    return SearchQuery(None, tuple(found))


def split_words(found: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The words to ask the index for (at most MAX_WORDS, the longest: likely the rarest) and
    the rest, which each result must also have (a pasted whole title is still every word)."""
    ranked = sorted(found, key=lambda w: (-len(w), found.index(w)))
    return tuple(ranked[:MAX_WORDS]), frozenset(ranked[MAX_WORDS:])
