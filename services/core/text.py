"""Bounded, printable text: what the services store and log of values they do not control
(identifiers as submitted, upstream titles, error messages, pause reasons)."""

from __future__ import annotations

import re

LOG_VALUE_LIMIT = 200  # characters of one logged value (an id as submitted, a reason)
TITLE_LIMIT = 1000  # a work's title, as stored
NAME_LIMIT = 500  # a publisher, a pause reason
URL_LIMIT = 2048  # a canonical or events URL
ERROR_LIMIT = 1000  # a fetch error's message, a dead letter's reason

_UNPRINTABLE = re.compile(r"[^ -~]")  # anything outside printable ASCII is looked at


def _cut(text: str, limit: int, total: int) -> str:
    marker = f"…[{total} chars]"
    return text[: max(0, limit - len(marker))] + marker[:limit]


def bounded(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its start with a marker giving its
    full length (`…[7000008 chars]`); the result never exceeds `limit` characters."""
    return text if len(text) <= limit else _cut(text, limit, len(text))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def printable(text: str) -> str:
    """`text` with control, formatting and other unprintable characters written as escapes
    (`\\x1b`, `\\n`, `\\u202e`), so a value cannot forge log lines, drive a terminal or
    reorder what a reader sees."""
    return _UNPRINTABLE.sub(_escape, text)


def shown(value: object, limit: int = LOG_VALUE_LIMIT) -> str:
    """How a value the services do not control appears in a log line or an error message:
    at most `limit` characters, control characters escaped, a marker where it was cut."""
    text = value if isinstance(value, str) else repr(value)
    escaped = printable(text[:limit])
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    return _cut(escaped, limit, len(text))


def one_line(value: object, limit: int = LOG_VALUE_LIMIT) -> str:
    """An error's text on one line (runs of whitespace as one space), bounded and printable."""
    return shown(" ".join(str(value).split()), limit)
