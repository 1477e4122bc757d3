"""Reading identifier lists: one id a line, CSV with an id column, or JSON Lines."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from services.core.identifiers import Identifier, InvalidIdentifier, parse_identifier

ID_COLUMNS = ("id", "doi", "pmid", "pmcid", "identifier")


@dataclass(frozen=True, slots=True)
class Line:
    """One identifier read from a file, with its 1-based line number."""

    line: int
    value: str


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that did not give a valid identifier, and why."""

    line: int
    value: str
    reason: str


def read_lines(text: str, filename: str = "") -> tuple[list[Line], list[BadLine]]:
    """Identifiers in `text`; the format follows the extension (.csv, .jsonl) or the content."""
    name = filename.lower()
    text = text.removeprefix("\ufeff")  # a byte-order mark (Excel's "CSV UTF-8") is not data
    stripped = text.lstrip()
    if name.endswith((".jsonl", ".ndjson")) or (
        not name.endswith(".csv") and stripped.startswith("{")
    ):
        return _jsonl(text)
    if name.endswith(".csv"):
        return _csv(text)
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        value = raw.strip()
        if value and not value.startswith("#"):
            lines.append(Line(number, value))
    return lines, []


def _csv(text: str) -> tuple[list[Line], list[BadLine]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return [], []
    columns = [h.strip().lower() for h in header]
    column = next((columns.index(c) for c in ID_COLUMNS if c in columns), None)
    if column is None:
        return [], [BadLine(1, ",".join(header), f"no id column (one of {', '.join(ID_COLUMNS)})")]
    lines, bad = [], []
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if column >= len(row):
            bad.append(BadLine(number, ",".join(row), f"row has no column {header[column]!r}"))
        else:
            lines.append(Line(number, row[column].strip()))
    return lines, bad


def _jsonl(text: str) -> tuple[list[Line], list[BadLine]]:
    lines, bad = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            bad.append(BadLine(number, raw.strip()[:200], f"not JSON: {exc.msg}"))
            continue
        key = next((k for k in ID_COLUMNS if isinstance(obj, dict) and obj.get(k)), None)
        if key is None:
            bad.append(
                BadLine(number, raw.strip()[:200], f"no id field (one of {', '.join(ID_COLUMNS)})")
            )
        else:
            lines.append(Line(number, str(obj[key])))
    return lines, bad


def validate(lines: list[Line]) -> tuple[list[tuple[Line, Identifier]], list[BadLine]]:
    """Split lines into parsed identifiers and bad lines (each naming the value and reason)."""
    good, bad = [], []
    for line in lines:
        try:
            good.append((line, parse_identifier(line.value)))
        except InvalidIdentifier as exc:
            bad.append(BadLine(line.line, line.value, exc.reason))
    return good, bad
