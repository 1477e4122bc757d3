"""The rows of the CSV export (`GET /api/v1/works.csv`), as pure functions: no aiohttp, no store.

Long format: one row per (work, source, metric) of the stored states, under the header
`COLUMNS`. Only what a refresh stored is exported: a state that never had a successful fetch
(only a failed attempt) has no row, and a metric the source did not report has none either
(ALM's null: not reported), while a reported 0 is a row with 0. An unknown identifier is an
empty cell. Times are UTC, `YYYY-MM-DDTHH:MM:SSZ`. The text is RFC 4180 (the csv module: a cell
with a comma, a quote or a line break is quoted, quotes doubled; lines end with CRLF).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.core.aggregation import SourceState
from services.core.timeutil import to_alm_time
from services.core.works import Work

COLUMNS = ("work_id", "doi", "pmid", "pmcid", "source", "metric", "value", "retrieved_at")
Row = tuple[str, str, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class RowFilter:
    """Which rows of a work are exported: all, or only one source's, or only one metric's."""

    source: str | None = None
    metric: str | None = None


EVERY_ROW = RowFilter()


def work_rows(work: Work, states: Iterable[SourceState], only: RowFilter = EVERY_ROW) -> list[Row]:
    """The rows of one work: its stored states that pass `only`, by source, then metric."""
    ids = (work.work_id, work.doi or "", work.pmid or "", work.pmcid or "")
    rows: list[Row] = []
    for state in sorted(states, key=lambda s: s.source):
        if state.retrieved_at is None or only.source not in (None, state.source):
            continue
        at = to_alm_time(state.retrieved_at)
        for metric, value in sorted(state.metrics.items()):
            if only.metric in (None, metric):
                rows.append((*ids, state.source, metric, str(value), at))
    return rows


def encode(rows: Iterable[Sequence[str]]) -> bytes:
    """`rows` as RFC 4180 CSV text in UTF-8."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


HEADER = encode([COLUMNS])
