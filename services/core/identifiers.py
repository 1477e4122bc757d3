"""Work identifiers: DOI, PMID and PMCID parsing, normalisation and validation.

One rule, used everywhere an identifier comes in (API, CLI, imports, upstream answers) and
expressed as the same regular expressions in the JSON Schemas and the OpenAPI document
(`schema_patterns()`; tests/unit/test_identifiers.py checks they are the ones in `schemas/`):

- a DOI is `10.` + a registrant code of 4 to 9 ASCII digits + `/` + a suffix of 1 to
  MAX_DOI_SUFFIX characters; a suffix holds no whitespace, no control characters, no invisible
  formatting characters (zero-width, bidi overrides, BOM) and no `%` once decoded. Crossref's
  deposit schema caps a suffix at 200 characters (`doi_t`: `10\\.[0-9]{4,9}/.{1,200}`); older
  and other agencies' DOIs run longer, rarely past 200, so a normalised DOI is bounded at
  MAX_DOI_LENGTH = 300 characters (suffix at most 287). Only ASCII letters are case-folded.
- as submitted, a DOI may carry a `doi:`, `info:doi/` or (dx.|www.)doi.org URL prefix (any
  case), be percent-encoded once or twice (`%2F`, `%252F`: only printable ASCII other than `%`
  may be encoded) and be padded with spaces, tabs or line breaks;
- a PMID is 1 to 10 ASCII digits without a leading zero (`pmid:` prefix optional); a PMCID is
  `PMC` and such digits (`pmcid:` prefix optional);
- nothing longer than MAX_INPUT_LENGTH characters is looked at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from urllib.parse import unquote

from services.core.text import bounded


class IdType(StrEnum):
    """The kinds of identifier a work can be registered or looked up by."""

    DOI = "doi"
    PMID = "pmid"
    PMCID = "pmcid"


MAX_DOI_LENGTH = 300  # characters of a normalised DOI
MAX_DOI_SUFFIX = MAX_DOI_LENGTH - len("10.") - 9 - len("/")  # 287
MAX_INPUT_LENGTH = 2048  # characters of an identifier as submitted (prefixes, encoding, padding)
MAX_WORK_ID_LENGTH = MAX_DOI_LENGTH  # `pmcid:PMC` + 10 digits is shorter

# Never in a DOI suffix: C0 controls and space, DEL and C1 controls, no-break and soft hyphen,
# the Unicode spaces, zero-width and bidi formatting characters, BOM, the specials block.
_FORBIDDEN = (
    r"\x00-\x20\x7f-\xa0\xad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f"
    r"\u3000\ufeff\ufff0-\uffff"
)
_SURROGATES = r"\ud800-\udfff"  # only Python strings can hold them; refused there too
_PAD = r"[ \t\r\n]*"
_HEX_PRINTABLE = r"(?:2[1-46-9A-Fa-f]|[3-6][0-9A-Fa-f]|7[0-9A-Ea-e])"  # 0x21-0x7e but %
_ESCAPE = rf"%(?:25)?{_HEX_PRINTABLE}"  # once (%2F) or twice (%252F) encoded
_SLASH = r"(?:/|%2[Ff]|%252[Ff])"
_COLON = r"(?::|%3[Aa]|%253[Aa])"
_DIGITS = r"[1-9][0-9]{0,9}"


def _nocase(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


def _doi_form(extra_forbidden: str, portable: bool, group: bool) -> str:
    forbidden = _FORBIDDEN + ("" if portable else _SURROGATES) + extra_forbidden
    unit = rf"(?:[^{forbidden}%]|{_ESCAPE})"
    url = (
        rf"(?:{_nocase('http')}[Ss]?{_COLON}{_SLASH}{_SLASH})?"
        rf"(?:{_nocase('dx.')}|{_nocase('www.')})?{_nocase('doi.org')}{_SLASH}"
    )
    info = rf"{_nocase('info')}{_COLON}{_nocase('doi')}{_SLASH}"
    prefix = rf"(?:{url}|{info}|{_nocase('doi')}{_COLON}[ \t]*)"
    body = rf"10\.[0-9]{{4,9}}{_SLASH}{unit}{{1,{MAX_DOI_SUFFIX}}}"
    return rf"{prefix}?({body})" if group else rf"{prefix}?{body}"


def _pmid_form(group: bool) -> str:
    digits = f"({_DIGITS})" if group else _DIGITS
    return rf"(?:{_nocase('pmid')}(?:{_COLON}|[ ])[ \t]*)?{digits}"


def _pmcid_form(group: bool, bare: bool) -> str:
    digits = f"({_DIGITS})" if group else _DIGITS
    labelled = rf"{_nocase('pmcid')}(?:{_COLON}|[ ])[ \t]*(?:{_nocase('pmc')})?"
    return rf"(?:{labelled}|{_nocase('pmc')}){'?' if bare else ''}{digits}"


def _form(kind: IdType | None, extra_forbidden: str = "", portable: bool = False) -> str:
    """The pattern of identifiers of `kind` as submitted (any kind for None), padding included,
    unanchored, without capture groups."""
    forms = {
        IdType.DOI: _doi_form(extra_forbidden, portable, group=False),
        IdType.PMID: _pmid_form(group=False),
        IdType.PMCID: _pmcid_form(group=False, bare=kind is IdType.PMCID),
    }
    chosen = [forms[kind]] if kind is not None else list(forms.values())
    return rf"{_PAD}(?:{'|'.join(chosen)}){_PAD}"


@cache
def _matchers() -> dict[str, re.Pattern[str]]:
    return {
        "doi": re.compile(rf"{_PAD}{_doi_form('', portable=False, group=True)}{_PAD}"),
        "pmid": re.compile(rf"{_PAD}{_pmid_form(group=True)}{_PAD}"),
        "pmcid": re.compile(rf"{_PAD}{_pmcid_form(group=True, bare=False)}{_PAD}"),
        "pmcid_bare": re.compile(rf"{_PAD}{_pmcid_form(group=True, bare=True)}{_PAD}"),
    }


def schema_patterns() -> dict[str, str]:
    """The JSON Schema / OpenAPI `pattern`s of this rule (anchored, ECMA-262 compatible):
    `id` any identifier as submitted, `id_item` one entry of a comma-separated list, `doi`,
    `pmid`, `pmcid` and `work_id` as stored."""
    suffix = rf"[^{_FORBIDDEN}%A-Z]{{1,{MAX_DOI_SUFFIX}}}"
    return {
        "id": f"^{_form(None, portable=True)}$",
        "id_item": f"^{_form(None, ',', portable=True)}$",
        "doi": rf"^10\.[0-9]{{4,9}}/{suffix}$",
        "pmid": f"^{_DIGITS}$",
        "pmcid": f"^PMC{_DIGITS}$",
        "work_id": rf"^(?:10\.[0-9]{{4,9}}/{suffix}|pmid:{_DIGITS}|pmcid:PMC{_DIGITS})$",
    }


class InvalidIdentifier(ValueError):
    """Raised for a value that is not a DOI, PMID or PMCID; the message names the value
    (bounded and with control characters escaped) and says why."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid identifier {bounded(value, 120)!r}: {reason}")
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


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NOT_ASCII_DIGIT = re.compile(r"(?![0-9])\d")
_INVISIBLE = re.compile(rf"[{_FORBIDDEN}{_SURROGATES}]")


def _precheck(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidIdentifier(repr(raw), "an identifier is a string")
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidIdentifier(raw, f"longer than {MAX_INPUT_LENGTH} characters")
    if not raw.strip():
        raise InvalidIdentifier(raw, "empty identifier")
    return raw


def _doi_reason(raw: str) -> str:
    """Why `raw` is not a DOI (the message only; the pattern decides)."""
    text = raw.strip(" \t\r\n")
    if any(ch.isspace() for ch in text):
        return "a DOI has no whitespace"
    if re.search(r"%(?:25)?(?:[01][0-9A-Fa-f]|20|7[Ff])", text):
        return "a DOI has no whitespace or control characters, percent-encoded or not"
    if _INVISIBLE.search(text):
        return "a DOI has no control or invisible formatting characters"
    if _NOT_ASCII_DIGIT.search(text):
        return "a DOI's registrant code is ASCII digits (10.1234/...)"
    if len(text) > MAX_DOI_LENGTH and re.search(r"10\.[0-9]{4,9}", text):
        return f"a DOI has at most {MAX_DOI_LENGTH} characters (suffix at most {MAX_DOI_SUFFIX})"
    if "%" in text:
        return "only printable ASCII other than % may be percent-encoded in a DOI"
    return "a DOI looks like 10.NNNN/suffix"


def normalize_doi(raw: str) -> str:
    """Return the canonical lower-case DOI for `raw`, or raise InvalidIdentifier."""
    match = _matchers()["doi"].fullmatch(_precheck(raw))
    if match is None:
        raise InvalidIdentifier(raw, _doi_reason(raw))
    body = match.group(1)
    if "%" in body:  # %252F -> %2F -> /; the pattern leaves no % after two rounds
        body = unquote(unquote(body))
    return body.translate(_ASCII_LOWER)


def normalize_pmid(raw: str) -> str:
    """Return the PMID digits of `raw` (`pmid:123`, `123`), or raise InvalidIdentifier."""
    match = _matchers()["pmid"].fullmatch(_precheck(raw))
    if match is None:
        raise InvalidIdentifier(raw, "a PMID is a positive integer of ASCII digits (pmid:123)")
    return match.group(1)


def normalize_pmcid(raw: str, bare_digits: bool = True) -> str:
    """Return `PMC<digits>` for `raw` (`pmc123`, `pmcid:PMC123`, and `123` unless
    `bare_digits` is false), or raise InvalidIdentifier."""
    matcher = _matchers()["pmcid_bare" if bare_digits else "pmcid"]
    match = matcher.fullmatch(_precheck(raw))
    if match is None:
        raise InvalidIdentifier(raw, "a PMCID looks like PMC1234567")
    return f"PMC{match.group(1)}"


def parse_identifier(raw: str, id_type: IdType | str | None = None) -> Identifier:
    """Parse any accepted form of a DOI, PMID or PMCID; `id_type` forces one kind.

    Without `id_type`: `pmid:`/`pmcid:` prefixes and the `PMC` prefix decide; a bare number is a
    PMID; everything else must be a DOI (plain, `doi:`, or a doi.org / dx.doi.org URL).
    """
    if id_type is None and type(raw) is str and _PLAIN_DOI.fullmatch(raw):
        # What the rule below gives: the pattern admits ASCII only, which `lower` folds as
        # `_ASCII_LOWER` does (and faster).
        return Identifier(IdType.DOI, raw.lower())
    text = _precheck(raw)
    kind = IdType(id_type) if id_type is not None else _guess_type(text)
    if kind is IdType.DOI:
        return Identifier(IdType.DOI, normalize_doi(text))
    if kind is IdType.PMID:
        return Identifier(IdType.PMID, normalize_pmid(text))
    return Identifier(IdType.PMCID, normalize_pmcid(text, bare_digits=id_type is not None))


# A DOI as it is mostly given (a file, a catalogue): no prefix, padding or percent-encoding,
# printable ASCII only. Such a value is a DOI by every rule of `parse_identifier` (neither a
# PMID nor a PMCID; the DOI pattern takes all of it as the body), so it only needs folding.
_PLAIN_DOI = re.compile(rf"10\.[0-9]{{4,9}}/[!-$&-~]{{1,{MAX_DOI_SUFFIX}}}")


def _guess_type(raw: str) -> IdType:
    """The kind `raw` is (the strict forms), else the kind it looks like it meant to be, so
    that the error explains the right rule."""
    if _matchers()["pmcid"].fullmatch(raw):
        return IdType.PMCID
    if _matchers()["pmid"].fullmatch(raw):
        return IdType.PMID
    text = raw.strip().lower()
    if text.startswith("pmcid") or re.fullmatch(r"pmc\d+", text):
        return IdType.PMCID
    if text.startswith("pmid") or text.isdigit():
        return IdType.PMID
    return IdType.DOI


def parse_work_id(work_id: str) -> Identifier:
    """Parse a stored work id (`10.x/y`, `pmid:1`, `pmcid:PMC1`) back into an Identifier."""
    if work_id.startswith("pmid:"):
        return Identifier(IdType.PMID, work_id[5:])
    if work_id.startswith("pmcid:"):
        return Identifier(IdType.PMCID, work_id[6:])
    return Identifier(IdType.DOI, work_id)
