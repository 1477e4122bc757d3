"""The CSV export's rows (services/api/csv_export.py), without aiohttp: one row per stored
(work, source, metric), filtered, quoted as RFC 4180 and read back by the csv module."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from services.api.csv_export import COLUMNS, HEADER, RowFilter, encode, work_rows
from services.core.aggregation import SourceState
from services.core.events import Status
from services.core.works import Work

AT = datetime(2026, 11, 25, 12, 30, 5, 987654, tzinfo=UTC)
ODD = '10.1234/a,b"c'  # a DOI may hold commas and quotes
WORK = Work(ODD, doi=ODD, pmid="18974831", title='Commas, "quotes" and\nlines')
STATES = [
    SourceState(ODD, "openalex", {"citations": 7}, AT, AT, Status.OK),
    SourceState(ODD, "datacite", {"views": 0, "downloads": 3}, AT, AT, Status.OK),
    SourceState(ODD, "crossref", {}, None, AT, Status.ERROR, "http: 503"),  # never refreshed
]


def _read(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_one_row_per_stored_metric_by_source_then_metric() -> None:
    """Each reported metric of each refreshed state is a row (a 0 too); a state with only a
    failed attempt has none; unknown ids are empty cells; the time is whole UTC seconds."""
    rows = work_rows(WORK, STATES)
    assert [(r[4], r[5], r[6]) for r in rows] == [
        ("datacite", "downloads", "3"),
        ("datacite", "views", "0"),
        ("openalex", "citations", "7"),
    ]
    assert {r[:4] for r in rows} == {(ODD, ODD, "18974831", "")}
    assert {r[7] for r in rows} == {"2026-11-25T12:30:05Z"}


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (RowFilter(source="datacite"), [("datacite", "downloads"), ("datacite", "views")]),
        (RowFilter(metric="citations"), [("openalex", "citations")]),
        (RowFilter("datacite", "views"), [("datacite", "views")]),
        (RowFilter("openalex", "views"), []),
        (RowFilter(source="crossref"), []),
    ],
)
def test_filters_keep_only_the_named_source_and_metric(
    only: RowFilter, expected: list[tuple[str, str]]
) -> None:
    """`source` keeps that source's rows, `metric` that metric's, both narrow together."""
    assert [(r[4], r[5]) for r in work_rows(WORK, STATES, only)] == expected


def test_a_work_without_states_has_no_rows() -> None:
    """No stored state, no row."""
    assert work_rows(WORK, []) == []


def test_quoting_round_trips_commas_quotes_and_line_breaks() -> None:
    """A cell with a comma, a quote or a line break is quoted (quotes doubled), lines end with
    CRLF, and the csv module reads back exactly what was written."""
    rows = [(ODD, "x\r\ny", "", "plain")]
    data = encode(rows)
    assert data == b'"10.1234/a,b""c","x\r\ny",,plain\r\n'
    assert _read(data) == [list(r) for r in rows]
    exported = HEADER + encode(work_rows(WORK, STATES))
    back = _read(exported)
    assert back[0] == list(COLUMNS)
    assert [r[1] for r in back[1:]] == [ODD] * 3


def test_header_names_the_columns() -> None:
    """The header row is the documented column list."""
    assert HEADER == b"work_id,doi,pmid,pmcid,source,metric,value,retrieved_at\r\n"
