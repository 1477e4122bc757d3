"""The OJS ALM plugin's deposit payload (pkp/ojs `plugins/generic/alm/ArticleInfoSender`): one
article a line, `DOI YYYY-MM-DD Title`, every line ending in a newline.

What the plugin sends is not always clean: an article without a publication date comes as
`1970-01-01`, a title with a newline in it spills onto a line of its own, and its title
clean-up turns every run of the letter `s` into a space. So a line counts when its first word
is a DOI and its second a date; the title is kept as sent but never preferred over the
upstream's metadata; any other line is reported with its number and left out, and nothing
else is lost.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.core.identifiers import Identifier, IdType, InvalidIdentifier, parse_identifier
from services.core.text import shown

UNKNOWN_DATE = date(1970, 1, 1)  # what the plugin sends for an article without a date
MAX_LINES = 10_000  # articles one deposit may carry (a journal's backlog on its first run)


@dataclass(frozen=True, slots=True)
class Deposited:
    """One accepted line: the article's DOI, its publication date (None when the plugin had
    none) and its title as sent."""

    line: int
    doi: Identifier
    published: date | None
    title: str


@dataclass(frozen=True, slots=True)
class Refused:
    """One line that is not `DOI YYYY-MM-DD Title`, and why (the text shown bounded)."""

    line: int
    text: str
    error: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (an entry of the deposit answer's `errors`)."""
        return {"line": self.line, "text": self.text, "error": self.error}


def parse_payload(payload: str) -> tuple[list[Deposited], list[Refused]]:
    """The accepted lines and the refused ones, numbered from 1 (empty lines skipped)."""
    accepted: list[Deposited] = []
    refused: list[Refused] = []
    for number, raw in enumerate(payload.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        result = parse_line(number, line)
        if isinstance(result, Deposited):
            accepted.append(result)
        else:
            refused.append(result)
    return accepted, refused


def parse_line(number: int, line: str) -> Deposited | Refused:
    """`DOI YYYY-MM-DD Title` (the title may be empty and may hold anything)."""
    parts = line.strip().split(" ", 2)
    if len(parts) < 2:
        return Refused(number, shown(line, 200), "expected 'DOI YYYY-MM-DD Title'")
    try:
        doi = parse_identifier(parts[0], IdType.DOI)
    except InvalidIdentifier as exc:
        return Refused(number, shown(line, 200), str(exc))
    try:
        published = date.fromisoformat(parts[1]) if len(parts[1]) == 10 else None
    except ValueError:
        published = None
    if published is None:
        return Refused(
            number, shown(line, 200), f"not a date (YYYY-MM-DD): {shown(parts[1], 40)!r}"
        )
    title = parts[2].strip() if len(parts) > 2 else ""
    return Deposited(number, doi, None if published == UNKNOWN_DATE else published, title)
