"""Work identifiers: DOI, PMID and PMCID parsing, normalisation and validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote


class IdType(StrEnum):
    """The kinds of identifier a work can be registered or looked up by."""

    DOI = "doi"
    PMID = "pmid"
    PMCID = "pmcid"


class InvalidIdentifier(ValueError):
    """Raised for a value that is not a DOI, PMID or PMCID; the message names the value."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid identifier {value!r}: {reason}")
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Identifier:
    """A normalised identifier: DOIs lower-case, PMCIDs upper-case with the PMC prefix."""

    type: IdType
    value: str

    @property
    def work_id(self) -> str:
        """The work id this identifier gives when it is the work's primary id."""
        return self.value if self.type is IdType.DOI else f"{self.type.value}:{self.value}"

    def __str__(self) -> str:
        return self.work_id


_DOI_PREFIXES = (
    "https://doi.org/",
    "http://doi.org/",
    "https://dx.doi.org/",
    "http://dx.doi.org/",
    "doi.org/",
    "dx.doi.org/",
    "https://www.doi.org/",
    "http://www.doi.org/",
    "info:doi/",
    "doi:",
)
_DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")
_PMID_RE = re.compile(r"^[1-9]\d{0,9}$")
_PMCID_RE = re.compile(r"^PMC[1-9]\d{0,9}$")
_SPACE_RE = re.compile(r"\s")  # str.isspace's characters (both use Py_UNICODE_ISSPACE)
_PMCID_GUESS_RE = re.compile(r"^(?:pmcid[: ]|pmc\d+$)")
_PMID_GUESS_RE = re.compile(r"^pmid[: ]")


def _strip_prefix(text: str, prefixes: tuple[str, ...]) -> str:
    lowered = text.lower()
    for prefix in prefixes:
        if lowered.startswith(prefix):
            return text[len(prefix) :].strip()
    return text


def normalize_doi(raw: str) -> str:
    """Return the canonical lower-case DOI for `raw`, or raise InvalidIdentifier."""
    text = raw.strip()
    for _ in range(3):  # DOIs arrive URL-encoded, sometimes twice (%252F)
        if "%" not in text:
            break
        text = unquote(text)
    text = _strip_prefix(text.strip(), _DOI_PREFIXES)
    if _SPACE_RE.search(text):
        raise InvalidIdentifier(raw, "a DOI has no whitespace")
    if not _DOI_RE.match(text):
        raise InvalidIdentifier(raw, "a DOI looks like 10.NNNN/suffix")
    return text.lower()


def normalize_pmid(raw: str) -> str:
    """Return the PMID digits of `raw` (`pmid:123`, `123`), or raise InvalidIdentifier."""
    text = _strip_prefix(unquote(raw.strip()), ("pmid:", "pmid "))
    if not _PMID_RE.match(text):
        raise InvalidIdentifier(raw, "a PMID is a positive integer")
    return text


def normalize_pmcid(raw: str) -> str:
    """Return `PMC<digits>` for `raw` (`pmc123`, `pmcid:PMC123`), or raise InvalidIdentifier."""
    text = _strip_prefix(unquote(raw.strip()), ("pmcid:", "pmcid ")).upper()
    if text.isdigit():
        text = f"PMC{text}"
    if not _PMCID_RE.match(text):
        raise InvalidIdentifier(raw, "a PMCID looks like PMC1234567")
    return text


def parse_identifier(raw: str, id_type: IdType | str | None = None) -> Identifier:
    """Parse any accepted form of a DOI, PMID or PMCID; `id_type` forces one kind.

    Without `id_type`: `pmid:`/`pmcid:` prefixes and the `PMC` prefix decide; a bare number is a
    PMID; everything else must be a DOI (plain, `doi:`, or a doi.org / dx.doi.org URL).
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidIdentifier(str(raw), "empty identifier")
    kind = IdType(id_type) if id_type is not None else _guess_type(raw)
    if kind is IdType.DOI:
        return Identifier(IdType.DOI, normalize_doi(raw))
    if kind is IdType.PMID:
        return Identifier(IdType.PMID, normalize_pmid(raw))
    return Identifier(IdType.PMCID, normalize_pmcid(raw))


def _guess_type(raw: str) -> IdType:
    text = unquote(raw.strip()).lower()
    if _PMCID_GUESS_RE.match(text):
        return IdType.PMCID
    if _PMID_GUESS_RE.match(text) or text.isdigit():
        return IdType.PMID
    return IdType.DOI


def parse_work_id(work_id: str) -> Identifier:
    """Parse a stored work id (`10.x/y`, `pmid:1`, `pmcid:PMC1`) back into an Identifier."""
    if work_id.startswith("pmid:"):
        return Identifier(IdType.PMID, work_id[5:])
    if work_id.startswith("pmcid:"):
        return Identifier(IdType.PMCID, work_id[6:])
    return Identifier(IdType.DOI, work_id)
