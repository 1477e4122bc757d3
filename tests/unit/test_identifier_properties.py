"""Property tests of identifier parsing: any text gives an Identifier or InvalidIdentifier,
and the schema patterns accept exactly what the parser accepts."""

from __future__ import annotations

import re

import jsonschema_rs
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.core.identifiers import (
    MAX_WORK_ID_LENGTH,
    IdType,
    InvalidIdentifier,
    parse_identifier,
    schema_patterns,
)

PATTERNS = schema_patterns()
ANY_ID = re.compile(PATTERNS["id"])
WORK_ID = re.compile(PATTERNS["work_id"])
RUST_ANY_ID = jsonschema_rs.validator_for({"type": "string", "pattern": PATTERNS["id"]})
RUST_WORK_ID = jsonschema_rs.validator_for({"type": "string", "pattern": PATTERNS["work_id"]})

# text that looks like identifiers often enough to reach every branch
ID_ALPHABET = st.sampled_from(
    [*"10.2345/abcPMCpmidDOI:%2F5Aa ,\t\n", "%252F", "https://doi.org/", "\x00", "\uff11", "\u200b"]
)
ID_LIKE = st.lists(ID_ALPHABET, max_size=40).map("".join)
TEXT = st.one_of(st.text(max_size=80), ID_LIKE)
NO_SURROGATES = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80), ID_LIKE
)


def _parse(raw: str, kind: IdType | None = None) -> str | None:
    try:
        return parse_identifier(raw, kind).work_id
    except InvalidIdentifier:
        return None


@given(TEXT, st.sampled_from([None, IdType.DOI, IdType.PMID, IdType.PMCID]))
@example("10.1234/" + "a" * 287, None)
@example("pmcid%253APMC1", None)
def test_any_text_gives_an_identifier_or_invalid_identifier(raw: str, kind: IdType | None) -> None:
    """Never another exception; what is accepted is a well-formed, bounded work id."""
    work_id = _parse(raw, kind)
    if work_id is not None:
        assert WORK_ID.fullmatch(work_id), work_id
        assert RUST_WORK_ID.is_valid(work_id)
        assert len(work_id) <= MAX_WORK_ID_LENGTH


@given(NO_SURROGATES)
@example(" 10.1371%252Fjournal.pcbi.1000204\n")
@example("10.1234/a%25250A")
@example("PMC0123")
def test_schema_pattern_accepts_exactly_what_the_parser_accepts(raw: str) -> None:
    """The OpenAPI `id` pattern (Python and the Rust validator alike) matches a value if and only
    if the parser accepts it."""
    accepted = _parse(raw) is not None
    assert (ANY_ID.fullmatch(raw) is not None) == accepted
    assert RUST_ANY_ID.is_valid(raw) == accepted


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(st.from_regex(PATTERNS["id"], fullmatch=True))
def test_values_generated_from_the_pattern_parse(raw: str) -> None:
    """What a client builds from the documented pattern (as schemathesis does) is accepted."""
    assert _parse(raw) is not None, raw
