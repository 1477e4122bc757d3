"""Imports: reading identifier lists (plain lines, CSV, JSON Lines) and validating them."""

from __future__ import annotations

import codecs

import pytest

from services.core.identifiers import Identifier, IdType
from services.core.imports import Line, NotText, decode_text, read_lines, validate


def test_plain_lines_skip_blanks_and_comments_and_keep_line_numbers() -> None:
    """One id a line: blank lines and # comments are skipped, numbers match the file."""
    text = "10.1371/journal.pcbi.1000204\n\n# a comment\n  PMC2568856  \n18974831\n"

    assert read_lines(text) == (
        [
            Line(1, "10.1371/journal.pcbi.1000204"),
            Line(4, "PMC2568856"),
            Line(5, "18974831"),
        ],
        [],
    )


def test_plain_lines_with_windows_line_endings() -> None:
    """CRLF files are read line by line like LF files."""
    assert read_lines("# ids\r\n10.1371/a\r\n\r\n18974831\r\n", "ids.txt") == (
        [Line(2, "10.1371/a"), Line(4, "18974831")],
        [],
    )


def test_plain_lines_pass_invalid_values_through_for_validation() -> None:
    """Reading does not judge values; nonsense lines come out as Lines for validate()."""
    lines, bad = read_lines("nonsense\n10.1371/a\n")
    assert lines == [Line(1, "nonsense"), Line(2, "10.1371/a")]
    assert bad == []


def test_csv_with_doi_column_counts_the_header_as_line_one() -> None:
    """In a CSV the id column is read; the header is line 1 and blank rows are skipped."""
    text = "title,DOI,year\nA,10.1371/a,2008\n\nB,10.1371/b,2009\n"

    assert read_lines(text, "export.csv") == ([Line(2, "10.1371/a"), Line(4, "10.1371/b")], [])


@pytest.mark.parametrize("column", ["id", "ID", " doi ", "pmid", "pmcid", "identifier"])
def test_csv_id_column_names(column: str) -> None:
    """Any of the id column names is found, whatever its case or padding."""
    text = f"title,{column}\nA, 18974831 \n"
    assert read_lines(text, "x.csv") == ([Line(2, "18974831")], [])


def test_csv_quoted_cells_with_commas() -> None:
    """Quoted cells containing commas do not shift the id column."""
    text = 'title,doi\n"Smith, J. and Doe, A.",10.1371/a\n'
    assert read_lines(text, "x.CSV") == ([Line(2, "10.1371/a")], [])


def test_csv_without_id_column_is_one_bad_line() -> None:
    """A CSV whose header has no id column yields no ids and one bad line naming the header."""
    lines, bad = read_lines("title,year\nA,2008\n", "x.csv")

    assert lines == []
    assert len(bad) == 1
    assert bad[0].line == 1
    assert bad[0].value == "title,year"
    assert "id column" in bad[0].reason


def test_csv_short_row_is_a_bad_line() -> None:
    """A row without the id column is reported with its line number and content."""
    lines, bad = read_lines("title,doi\nA\nB,10.1371/b\n", "x.csv")

    assert lines == [Line(3, "10.1371/b")]
    assert [(b.line, b.value) for b in bad] == [(2, "A")]
    assert "doi" in bad[0].reason


def test_empty_csv_reads_nothing() -> None:
    """An empty CSV file gives neither ids nor errors."""
    assert read_lines("", "x.csv") == ([], [])


def test_jsonl_reads_id_and_doi_keys() -> None:
    """JSON Lines objects give their id/doi/pmid value; numbers become strings."""
    text = '{"doi": "10.1371/a"}\n{"id": "PMC2568856", "note": "x"}\n\n{"pmid": 18974831}\n'

    assert read_lines(text, "ids.jsonl") == (
        [Line(1, "10.1371/a"), Line(2, "PMC2568856"), Line(4, "18974831")],
        [],
    )


@pytest.mark.parametrize("filename", ["ids.ndjson", "", "ids.txt"])
def test_jsonl_recognised_by_extension_or_content(filename: str) -> None:
    """`.ndjson` files, and content starting with `{`, are read as JSON Lines."""
    assert read_lines('{"doi": "10.1371/a"}\n', filename) == ([Line(1, "10.1371/a")], [])


@pytest.mark.parametrize("filename", ["ids.jsonl", "IDS.NDJSON"])
def test_jsonl_extension_wins_over_content(filename: str) -> None:
    """A .jsonl/.ndjson file is read as JSON Lines even if its first line is not an object."""
    lines, bad = read_lines('10.1371/a\n{"doi": "10.1371/b"}\n', filename)
    assert lines == [Line(2, "10.1371/b")]
    assert [b.line for b in bad] == [1]


def test_jsonl_bad_lines_are_reported_with_value_and_reason() -> None:
    """Broken JSON and objects without an id field are bad lines; good lines still count."""
    text = '{"doi": "10.1371/a"}\n{not json\n{"title": "no id"}\n[1, 2]\n{"doi": ""}\n'

    lines, bad = read_lines(text, "ids.jsonl")

    assert lines == [Line(1, "10.1371/a")]
    assert [(b.line, b.value) for b in bad] == [
        (2, "{not json"),
        (3, '{"title": "no id"}'),
        (4, "[1, 2]"),
        (5, '{"doi": ""}'),
    ]
    assert "JSON" in bad[0].reason
    assert all("id field" in b.reason for b in bad[1:])


def test_validate_splits_good_and_bad() -> None:
    """validate parses good lines into identifiers and reports bad ones with value and reason."""
    lines = [
        Line(1, "https://doi.org/10.1371/ABC"),
        Line(2, "nonsense"),
        Line(3, "18974831"),
        Line(5, "10.1371/a b"),
        Line(7, "pmc2568856"),
    ]

    good, bad = validate(lines)

    assert good == [
        (Line(1, "https://doi.org/10.1371/ABC"), Identifier(IdType.DOI, "10.1371/abc")),
        (Line(3, "18974831"), Identifier(IdType.PMID, "18974831")),
        (Line(7, "pmc2568856"), Identifier(IdType.PMCID, "PMC2568856")),
    ]
    assert [(b.line, b.value) for b in bad] == [(2, "nonsense"), (5, "10.1371/a b")]
    assert all(b.reason for b in bad)
    assert "whitespace" in bad[1].reason


def test_validate_reports_an_empty_csv_cell() -> None:
    """An empty id cell in a CSV row ends up as a bad line with its line number."""
    lines, read_bad = read_lines("doi,title\n,Untitled\n10.1371/a,A\n", "x.csv")

    good, bad = validate(lines)

    assert read_bad == []
    assert [line.line for line, _ in good] == [3]
    assert [(b.line, b.value) for b in bad] == [(2, "")]
    assert "empty" in bad[0].reason


@pytest.mark.parametrize(
    ("text", "filename"),
    [
        ("\ufeffdoi,title\n10.1371/a,A\n", "export.csv"),
        ("\ufeff10.1371/a\n", "ids.txt"),
        ('\ufeff{"doi": "10.1371/a"}\n', "ids.txt"),
    ],
)
def test_byte_order_mark_is_ignored(text: str, filename: str) -> None:
    """A file starting with a UTF-8 byte-order mark reads like the same file without it."""
    lines, bad = read_lines(text, filename)
    good, invalid = validate(lines)
    assert bad == []
    assert invalid == []
    assert [ident.value for _, ident in good] == ["10.1371/a"]


# --- encodings, binary files, header-less CSV ----------------------------------------------

IDS_TEXT = "doi\n10.1371/a\n10.1371/b\n"


@pytest.mark.parametrize(
    "data",
    [
        IDS_TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + IDS_TEXT.encode("utf-8"),
        codecs.BOM_UTF16_LE + IDS_TEXT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + IDS_TEXT.encode("utf-16-be"),
        codecs.BOM_UTF32_LE + IDS_TEXT.encode("utf-32-le"),
        IDS_TEXT.encode("utf-16-le"),  # Excel's "Unicode text" without its BOM
        IDS_TEXT.encode("utf-16-be"),
        IDS_TEXT.replace("\n", "\r\n").encode("cp1252"),
    ],
    ids=[
        "utf8",
        "utf8-bom",
        "utf16le-bom",
        "utf16be-bom",
        "utf32le-bom",
        "utf16le",
        "utf16be",
        "cp1252",
    ],
)
def test_every_detectable_text_encoding_reads_the_same(data: bytes) -> None:
    """UTF-8 with or without BOM, UTF-16/32 with a BOM, UTF-16 without: the same ids."""
    lines, bad = read_lines(decode_text(data), "ids.txt")
    assert ([line.value for line in lines], bad) == (["10.1371/a", "10.1371/b"], [])


def test_windows_1252_titles_do_not_stop_an_import() -> None:
    """A CSV saved by Excel on Windows (cp1252 accents in a title) reads its ids."""
    data = "title,doi\nCaf\u00e9 \u2013 r\u00e9sum\u00e9,10.1371/a\n".encode("cp1252")
    assert read_lines(decode_text(data), "x.csv") == ([Line(2, "10.1371/a")], [])


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)), "save it as CSV"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"\x1f\x8b\x08\x00" + bytes(64), "gzip"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG"),
        (bytes(range(256)) * 4, "control characters"),
        (b"10.1371/a\n\x00\x01\x02\x03binary\xff\xfe tail", "control characters"),
        (codecs.BOM_UTF16_LE + b"\x00\xd8", "utf-16-le byte-order mark"),
    ],
    ids=["xlsx", "pdf", "gzip", "png", "random", "nul-bytes", "broken-utf16"],
)
def test_binary_is_refused_with_one_line_saying_what_it_is(data: bytes, needle: str) -> None:
    """A file that is not text is a NotText whose one-line message says what it looks like."""
    with pytest.raises(NotText, match=needle) as info:
        decode_text(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "filename", "expected"),
    [
        ("10.1371/a,First\n10.1371/b,Second\n", "x.csv", [(1, "10.1371/a"), (2, "10.1371/b")]),
        ("Smith,10.1371/a\nDoe,18974831\n", "x.csv", [(1, "10.1371/a"), (2, "18974831")]),
        ("10.1371/a;First\n10.1371/b;Second\n", "x.csv", [(1, "10.1371/a"), (2, "10.1371/b")]),
        ("title;doi\nA;10.1371/a\n", "x.csv", [(2, "10.1371/a")]),
        ("10.1371/a\tFirst\n10.1371/b\tSecond\n", "x.tsv", [(1, "10.1371/a"), (2, "10.1371/b")]),
        ("doi\n10.1371/a\n", "ids.txt", [(2, "10.1371/a")]),
    ],
    ids=["first-column", "second-column", "semicolons", "semicolon-header", "tsv", "list-header"],
)
def test_header_less_csv_keeps_its_first_row(
    text: str, filename: str, expected: list[tuple[int, str]]
) -> None:
    """A first row with an identifier in it is data (not a header) and is not lost; `;` and
    tab separated files and one-column lists with a `doi` header read too."""
    lines, bad = read_lines(text, filename)
    assert ([(line.line, line.value) for line in lines], bad) == (expected, [])
