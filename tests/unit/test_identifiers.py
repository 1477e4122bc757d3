"""Identifier parsing: DOI, PMID and PMCID normalisation, type guessing and work ids."""

from __future__ import annotations

import pytest

from services.core.identifiers import (
    _PLAIN_DOI,
    MAX_DOI_SUFFIX,
    Identifier,
    IdType,
    InvalidIdentifier,
    _guess_type,
    normalize_doi,
    normalize_pmcid,
    normalize_pmid,
    parse_identifier,
    parse_work_id,
)

DOI = "10.1371/journal.pcbi.1000204"


@pytest.mark.parametrize(
    "raw",
    [
        "10.1371/journal.pcbi.1000204",
        "10.1371/JOURNAL.PCBI.1000204",
        "10.1371/Journal.Pcbi.1000204",
        "https://doi.org/10.1371/journal.pcbi.1000204",
        "HTTPS://DOI.ORG/10.1371/JOURNAL.PCBI.1000204",
        "http://doi.org/10.1371/journal.pcbi.1000204",
        "http://dx.doi.org/10.1371/journal.pcbi.1000204",
        "https://dx.doi.org/10.1371/journal.pcbi.1000204",
        "dx.doi.org/10.1371/journal.pcbi.1000204",
        "doi.org/10.1371/journal.pcbi.1000204",
        "https://www.doi.org/10.1371/journal.pcbi.1000204",
        "info:doi/10.1371/journal.pcbi.1000204",
        "doi:10.1371/journal.pcbi.1000204",
        "DOI:10.1371/journal.pcbi.1000204",
        "doi: 10.1371/journal.pcbi.1000204",
        "  10.1371/journal.pcbi.1000204  ",
        "\t10.1371/journal.pcbi.1000204\n",
        " https://doi.org/10.1371/journal.pcbi.1000204 ",
        "10.1371%2Fjournal.pcbi.1000204",
        "10.1371%2fjournal.pcbi.1000204",
        "10.1371%252Fjournal.pcbi.1000204",
        "https%3A%2F%2Fdoi.org%2F10.1371%2Fjournal.pcbi.1000204",
        "https%253A%252F%252Fdx.doi.org%252F10.1371%252FJOURNAL.PCBI.1000204",
    ],
)
def test_normalize_doi_accepts_every_spelling_of_one_doi(raw: str) -> None:
    """Every accepted spelling (case, prefix, URL form, encoding, padding) gives one lower DOI."""
    assert normalize_doi(raw) == DOI


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.1000/XYZ(123)<456>;7", "10.1000/xyz(123)<456>;7"),
        ("10.123456789/A", "10.123456789/a"),
        ("10.5555/a/b/c", "10.5555/a/b/c"),
        ("10.1002/(SICI)1097-4636", "10.1002/(sici)1097-4636"),
    ],
)
def test_normalize_doi_keeps_punctuation_in_the_suffix(raw: str, expected: str) -> None:
    """DOI suffixes may hold slashes, brackets and semicolons; only the case changes."""
    assert normalize_doi(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "10.1371/journal.pcbi.1000204",
        "HTTPS://DX.DOI.ORG/10.1371/ABC",
        "10.1371%252FAbC",
    ],
)
def test_normalize_doi_is_idempotent(raw: str) -> None:
    """Normalising an already normalised DOI changes nothing."""
    once = normalize_doi(raw)
    assert normalize_doi(once) == once


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "doi:",
        "https://doi.org/",
        "11.1371/journal.pcbi.1000204",
        "10.137/journal.pcbi.1000204",
        "10.abcd/journal.pcbi.1000204",
        "10.1371",
        "10.1371/",
        "journal.pcbi.1000204",
        "https://example.org/10.1371/journal.pcbi.1000204",
        "x10.1371/journal.pcbi.1000204",
        "18974831",
        "PMC2568856",
    ],
)
def test_normalize_doi_rejects_what_is_not_10_nnnn_suffix(raw: str) -> None:
    """A value not of the form 10.NNNN/suffix is refused, and the error names the value."""
    with pytest.raises(InvalidIdentifier) as info:
        normalize_doi(raw)
    assert info.value.value == raw
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        "10.1371/journal pcbi.1000204",
        "10.1371/journal\tpcbi",
        "10.1371/journal\npcbi",
        "10.1371/journal%20pcbi",
        "https://doi.org/10.1371/a b",
    ],
)
def test_normalize_doi_rejects_whitespace_inside(raw: str) -> None:
    """Whitespace inside a DOI (also URL-encoded) is refused with a reason that says so."""
    with pytest.raises(InvalidIdentifier, match="whitespace") as info:
        normalize_doi(raw)
    assert info.value.value == raw


def test_invalid_identifier_is_a_value_error() -> None:
    """Callers catching ValueError also catch invalid identifiers."""
    with pytest.raises(ValueError, match="nonsense"):
        normalize_doi("nonsense")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("18974831", "18974831"),
        (" 18974831 ", "18974831"),
        ("pmid:18974831", "18974831"),
        ("PMID:18974831", "18974831"),
        ("pmid: 18974831", "18974831"),
        ("pmid 18974831", "18974831"),
        ("1", "1"),
    ],
)
def test_normalize_pmid_accepts(raw: str, expected: str) -> None:
    """A PMID is kept as its digits, with or without a `pmid:` prefix."""
    assert normalize_pmid(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "0", "018974831", "-1", "12a", "1.5", "12 34", "pmid:", "PMC2568856"]
)
def test_normalize_pmid_rejects(raw: str) -> None:
    """A PMID must be a positive integer without leading zeros; the error names the value."""
    with pytest.raises(InvalidIdentifier) as info:
        normalize_pmid(raw)
    assert info.value.value == raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PMC2568856", "PMC2568856"),
        ("pmc2568856", "PMC2568856"),
        ("Pmc2568856", "PMC2568856"),
        ("2568856", "PMC2568856"),
        ("pmcid:PMC2568856", "PMC2568856"),
        ("PMCID: pmc2568856", "PMC2568856"),
        ("pmcid 2568856", "PMC2568856"),
        ("  PMC2568856\n", "PMC2568856"),
    ],
)
def test_normalize_pmcid_accepts(raw: str, expected: str) -> None:
    """A PMCID is upper-case with the PMC prefix, added when only digits are given."""
    assert normalize_pmcid(raw) == expected


@pytest.mark.parametrize("raw", ["", "PMC", "PMC0123", "PMCabc", "PM123", "PMC12 3", "PMC-1"])
def test_normalize_pmcid_rejects(raw: str) -> None:
    """A value that is not PMC followed by a positive number is refused, naming the value."""
    with pytest.raises(InvalidIdentifier) as info:
        normalize_pmcid(raw)
    assert info.value.value == raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.1371/JOURNAL.PCBI.1000204", Identifier(IdType.DOI, DOI)),
        ("https://doi.org/10.1371/journal.pcbi.1000204", Identifier(IdType.DOI, DOI)),
        ("http://dx.doi.org/10.1371/journal.pcbi.1000204", Identifier(IdType.DOI, DOI)),
        ("doi:10.1371/journal.pcbi.1000204", Identifier(IdType.DOI, DOI)),
        ("10.1371%252Fjournal.pcbi.1000204", Identifier(IdType.DOI, DOI)),
        ("18974831", Identifier(IdType.PMID, "18974831")),
        (" 18974831 ", Identifier(IdType.PMID, "18974831")),
        ("pmid:18974831", Identifier(IdType.PMID, "18974831")),
        ("PMID:18974831", Identifier(IdType.PMID, "18974831")),
        ("PMC2568856", Identifier(IdType.PMCID, "PMC2568856")),
        ("pmc2568856", Identifier(IdType.PMCID, "PMC2568856")),
        ("pmcid:PMC2568856", Identifier(IdType.PMCID, "PMC2568856")),
        ("PMCID:2568856", Identifier(IdType.PMCID, "PMC2568856")),
    ],
)
def test_parse_identifier_guesses_the_type(raw: str, expected: Identifier) -> None:
    """Prefixes and PMC decide the type, a bare number is a PMID, anything else a DOI."""
    assert parse_identifier(raw) == expected


@pytest.mark.parametrize(
    ("raw", "id_type", "expected"),
    [
        ("2568856", IdType.PMCID, Identifier(IdType.PMCID, "PMC2568856")),
        ("2568856", "pmcid", Identifier(IdType.PMCID, "PMC2568856")),
        ("18974831", IdType.PMID, Identifier(IdType.PMID, "18974831")),
        ("18974831", "pmid", Identifier(IdType.PMID, "18974831")),
        ("https://doi.org/10.1371/ABC", "doi", Identifier(IdType.DOI, "10.1371/abc")),
    ],
)
def test_parse_identifier_forced_type_wins_over_guessing(
    raw: str, id_type: IdType | str, expected: Identifier
) -> None:
    """`id_type` (enum or its string) decides the type, e.g. a bare number read as a PMCID."""
    assert parse_identifier(raw, id_type) == expected


@pytest.mark.parametrize(
    ("raw", "id_type"),
    [
        ("10.1371/journal.pcbi.1000204", IdType.PMID),
        ("10.1371/journal.pcbi.1000204", IdType.PMCID),
        ("18974831", IdType.DOI),
        ("PMC2568856", "doi"),
        ("PMC2568856", "pmid"),
    ],
)
def test_parse_identifier_forced_type_rejects_other_kinds(raw: str, id_type: IdType | str) -> None:
    """A value of another kind than the forced type is invalid, not silently re-typed."""
    with pytest.raises(InvalidIdentifier) as info:
        parse_identifier(raw, id_type)
    assert info.value.value == raw


def test_parse_identifier_rejects_an_unknown_type_name() -> None:
    """An id_type that is none of doi, pmid, pmcid is an error."""
    with pytest.raises(ValueError, match="isbn"):
        parse_identifier("18974831", "isbn")


@pytest.mark.parametrize("raw", ["", "   ", "\n\t"])
def test_parse_identifier_rejects_empty(raw: str) -> None:
    """An empty or blank value is refused as empty."""
    with pytest.raises(InvalidIdentifier, match="empty"):
        parse_identifier(raw)


def test_parse_identifier_rejects_a_non_string() -> None:
    """A non-string value (e.g. JSON null) is an InvalidIdentifier, not a crash."""
    with pytest.raises(InvalidIdentifier):
        parse_identifier(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PMID 18974831", Identifier(IdType.PMID, "18974831")),
        ("pmcid PMC2568856", Identifier(IdType.PMCID, "PMC2568856")),
        ("pmid%3A18974831", Identifier(IdType.PMID, "18974831")),
        ("pmcid%3APMC2568856", Identifier(IdType.PMCID, "PMC2568856")),
    ],
)
def test_parse_identifier_accepts_what_the_pmid_and_pmcid_normalisers_accept(
    raw: str, expected: Identifier
) -> None:
    """Without a forced type, PMID/PMCID forms the normalisers accept are recognised too."""
    assert parse_identifier(raw) == expected


@pytest.mark.parametrize(
    ("ident", "work_id"),
    [
        (Identifier(IdType.DOI, DOI), DOI),
        (Identifier(IdType.PMID, "18974831"), "pmid:18974831"),
        (Identifier(IdType.PMCID, "PMC2568856"), "pmcid:PMC2568856"),
    ],
)
def test_work_id_of_each_type(ident: Identifier, work_id: str) -> None:
    """A DOI is its own work id; PMIDs and PMCIDs are prefixed with their type."""
    assert ident.work_id == work_id
    assert str(ident) == work_id


@pytest.mark.parametrize(
    "raw",
    [
        "HTTPS://DOI.ORG/10.1371/JOURNAL.PCBI.1000204",
        "10.5555/a/b:c",
        "18974831",
        "pmid:1",
        "pmc2568856",
        "pmcid:PMC1",
    ],
)
def test_parse_work_id_round_trips(raw: str) -> None:
    """parse_work_id(ident.work_id) gives back the same identifier for every type."""
    ident = parse_identifier(raw)
    assert parse_work_id(ident.work_id) == ident


@pytest.mark.parametrize(
    ("work_id", "expected"),
    [
        ("10.1371/abc", Identifier(IdType.DOI, "10.1371/abc")),
        ("pmid:18974831", Identifier(IdType.PMID, "18974831")),
        ("pmcid:PMC2568856", Identifier(IdType.PMCID, "PMC2568856")),
    ],
)
def test_parse_work_id_reads_stored_ids(work_id: str, expected: Identifier) -> None:
    """Stored work ids are read back into the identifier they came from."""
    assert parse_work_id(work_id) == expected


# --- hostile input: one rule, bounded, ASCII digits, no control characters -------------------


@pytest.mark.parametrize(
    "raw",
    [
        "10.\uff11\uff12\uff13\uff14/x",  # fullwidth digits: Python's \d takes them
        "10.\u0661\u0662\u0663\u0664/x",  # Arabic-Indic digits
        "10.1234/a\x00b",  # NUL
        "10.1234/a\x1b[31mred",  # ESC: drives a terminal
        "10.1234/a\x07",  # BEL
        "10.1234/a\u200bb",  # zero-width space
        "10.1234/a\u202eb",  # right-to-left override
        "10.1234/a\ufeff",  # byte-order mark
        "10.1234/a\u00a0b",  # no-break space
        "10.1234/a%0Ab",  # encoded line feed
        "10.1234/a%25250Ab",  # encoded three times
        "10.1234/a%00",
        "10.1234/a%",
        "10.1234/a%ZZ",
        "10.1234/a%25",  # decodes to a bare %
        "10.1234/caf%C3%A9",  # only printable ASCII may be encoded
        "10.1234/\ud800",  # a lone surrogate (json.loads lets them through)
        "10.1234/" + "a" * 288,
        "10.1234/" + "a" * 7_000_000,
    ],
)
def test_hostile_dois_are_refused(raw: str) -> None:
    """Non-ASCII digits, control and invisible characters, undecodable or non-ASCII escapes and
    over-long suffixes are refused, whatever Python's `\\d` and `\\S` would say."""
    with pytest.raises(InvalidIdentifier):
        normalize_doi(raw)
    with pytest.raises(InvalidIdentifier):
        parse_identifier(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("10.\uff11\uff12\uff13\uff14/x", "ASCII digits"),
        ("10.1234/a\x1bb", "control"),
        ("10.1234/a\u200bb", "invisible"),
        ("10.1234/" + "a" * 300, "at most 300 characters"),
        ("10.1234/" + "a" * 7_000_000, "longer than 2048 characters"),
        ("pmid:\u0661\u0662\u0663", "ASCII digits"),
    ],
)
def test_refusals_say_why(raw: str, reason: str) -> None:
    """The error names the broken rule."""
    with pytest.raises(InvalidIdentifier, match=reason):
        parse_identifier(raw)


def test_error_message_of_a_huge_id_is_bounded_and_printable() -> None:
    """A 7 MB id gives an error message of a few hundred characters, control chars escaped."""
    with pytest.raises(InvalidIdentifier) as info:
        parse_identifier("10.1234/\x1b" + "a" * 7_000_000)
    message = str(info.value)
    assert len(message) < 300
    assert "\x1b" not in message
    assert "7000009 chars" in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.1234/" + "a" * 287, "10.1234/" + "a" * 287),
        ("10.123456789/" + "A" * 287, "10.123456789/" + "a" * 287),
        ("10.1234/café", "10.1234/café"),
        ("10.1234/ÉTÉ", "10.1234/ÉtÉ"),  # only ASCII letters are case-folded
        ("10.1234/İ", "10.1234/İ"),  # whose lower() would be two characters
        ("10.1234/a%41", "10.1234/aa"),
        ("10.1234/a%2541", "10.1234/aa"),
        ("10.1234/%3C%3e", "10.1234/<>"),
    ],
)
def test_long_unicode_and_encoded_dois_within_the_rule_are_kept(raw: str, expected: str) -> None:
    """The longest allowed suffix, non-ASCII letters and printable escapes are accepted."""
    assert normalize_doi(raw) == expected
    assert len(normalize_doi(raw)) <= 300


@pytest.mark.parametrize(
    "raw", ["\u0661\u0662\u0663", "pmid:\uff11\uff12\uff13", "pmid:12345678901", "pmid:1\x00"]
)
def test_pmids_are_ascii_digits(raw: str) -> None:
    """A PMID is 1 to 10 ASCII digits."""
    with pytest.raises(InvalidIdentifier):
        normalize_pmid(raw)


@pytest.mark.parametrize(
    "raw", ["PMC\u0661\u0662\u0663", "PMC\uff11\uff12\uff13", "PMC12345678901"]
)
def test_pmcids_are_ascii_digits(raw: str) -> None:
    """A PMCID's number is 1 to 10 ASCII digits."""
    with pytest.raises(InvalidIdentifier):
        normalize_pmcid(raw)


def _schema(name: str) -> dict[str, object]:
    import json

    from services.core.schema_check import SCHEMA_DIR

    loaded: dict[str, object] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return loaded


def test_event_schemas_carry_the_identifier_rule() -> None:
    """Every event's work id, and the work's DOI, PMID and PMCID, are checked against the same
    patterns the parser implements (schema_patterns())."""
    from typing import Any

    from services.core.identifiers import MAX_WORK_ID_LENGTH, schema_patterns

    patterns = schema_patterns()
    work: Any = _schema("work")
    request: Any = _schema("refresh_request")
    for props in (work["properties"], work["properties"]["work"]["properties"]):
        assert props["work_id"]["pattern"] == patterns["work_id"]
        assert props["work_id"]["maxLength"] == MAX_WORK_ID_LENGTH
    for props in (work["properties"]["work"]["properties"], request["properties"]):
        for field in ("doi", "pmid", "pmcid"):
            assert props[field]["pattern"] == patterns[field], field
    for name in ("refresh_request", "observation", "metric_changed"):
        props_of: Any = _schema(name)
        assert props_of["properties"]["work_id"]["pattern"] == patterns["work_id"], name


def test_a_plain_doi_parses_as_the_whole_rule_says() -> None:
    """`parse_identifier`'s shortcut for a plain DOI (printable ASCII, no prefix, padding or
    encoding) gives what the rule does (the type guessed, then `normalize_doi`), at the
    bounds of the registrant code and of the suffix, with every printable character."""
    printable = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
    raws = [
        "10.1234/ABC",
        "10.123456789/x",
        "10.1371/" + printable,
        "10.5555/" + "A" * MAX_DOI_SUFFIX,
        *(f"10.5555/{printable[i : i + 7]}" for i in range(len(printable))),
    ]
    for raw in raws:
        assert _PLAIN_DOI.fullmatch(raw), raw
        assert _guess_type(raw) is IdType.DOI
        assert parse_identifier(raw) == Identifier(IdType.DOI, normalize_doi(raw))
    for raw in ("10.123/x", "10.5555/a b", "10.5555/a%2Fb", " 10.5555/x", "10.5555/" + "a" * 288):
        assert not _PLAIN_DOI.fullmatch(raw), raw
