"""Reading identifier lists: one id a line, CSV with an id column (or none: a first row that
is an identifier is data, not a header), or JSON Lines; from bytes in any text encoding it can
tell (UTF-8 with or without a BOM, UTF-16 and UTF-32 with a BOM, UTF-16 without one, Windows
code page 1252), refusing what is not text with one line saying what it looks like."""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass

from services.core.identifiers import Identifier, InvalidIdentifier, parse_identifier

ID_COLUMNS = ("id", "doi", "pmid", "pmcid", "identifier")
_BOMS = (  # UTF-32 first: its little-endian BOM begins with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx or .ods spreadsheet?): save it as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls?): save it as CSV"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip-compressed: decompress it first"),
    (b"BZh", "bzip2-compressed: decompress it first"),
    (b"\xfd7zXZ", "xz-compressed: decompress it first"),
    (b"SQLite format 3", "an SQLite database"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)
_TEXT_CONTROLS = frozenset("\t\n\r\f\v")


class NotText(ValueError):
    """The bytes are not text in an encoding that can be told; the message says what they
    look like (one line, for the command's error)."""


def decode_text(data: bytes) -> str:
    """`data` as text: a BOM names the encoding; else UTF-16 if every other byte of an ASCII
    text is NUL, else UTF-8, else Windows-1252 (Excel's "CSV" on Windows). NotText for known
    binary formats, undecodable bytes after a BOM, and control characters a text file has not."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                where = exc.start + len(bom)
                raise NotText(
                    f"starts with a {encoding} byte-order mark but is not {encoding} "
                    f"({exc.reason} at byte {where})"
                ) from None
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise NotText(f"is not text: it looks like {what}")
    text = _utf16_without_bom(data)
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    bad = sum(1 for ch in text[:65536] if ch < " " and ch not in _TEXT_CONTROLS)
    if bad:
        raise NotText(f"is not text: {bad} control characters in its first 64 KiB")
    return text


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM (mostly ASCII: NUL at every even or every odd byte)."""
    sample = data[:4096]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    pairs = len(sample) // 2
    for encoding, nulls in (("utf-16-le", sample[1::2]), ("utf-16-be", sample[0::2])):
        if nulls.count(0) >= 0.9 * pairs:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    return None


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
    """Identifiers in `text`; the format follows the extension (.csv, .tsv, .jsonl) or the
    content."""
    name = filename.lower()
    text = text.removeprefix("\ufeff")  # a byte-order mark (Excel's "CSV UTF-8") is not data
    stripped = text.lstrip()
    if name.endswith((".jsonl", ".ndjson")) or (
        not name.endswith((".csv", ".tsv")) and stripped.startswith("{")
    ):
        return _jsonl(text)
    if name.endswith((".csv", ".tsv")):
        return _csv(text, "\t" if name.endswith(".tsv") else None)
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        value = raw.strip()
        if value and not value.startswith("#"):
            lines.append(Line(number, value))
    if lines and lines[0].value.lower() in ID_COLUMNS:  # a one-column list with a header
        lines = lines[1:]
    return lines, []


def _delimiter(first_line: str) -> str:
    """The delimiter of a CSV file: the one of `,;\t` its first line has most of."""
    return max(",;\t", key=first_line.count) if any(d in first_line for d in ",;\t") else ","


def _is_identifier(cell: str) -> bool:
    try:
        parse_identifier(cell)
    except InvalidIdentifier:
        return False
    return True


def _csv(text: str, delimiter: str | None) -> tuple[list[Line], list[BadLine]]:
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text), delimiter=delimiter or _delimiter(first_line))
    header = next(reader, None)
    if header is None:
        return [], []
    columns = [h.strip().lower() for h in header]
    column = next((columns.index(c) for c in ID_COLUMNS if c in columns), None)
    lines: list[Line] = []
    if column is None:  # no header: the first row is data if one of its cells is an id
        column = next((n for n, cell in enumerate(header) if _is_identifier(cell)), None)
        if column is None:
            reason = f"no id column (one of {', '.join(ID_COLUMNS)}) and no identifier in row 1"
            return [], [BadLine(1, ",".join(header), reason)]
        lines.append(Line(1, header[column].strip()))
        header = [f"column {column + 1}"] * len(header)
    bad = []
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
