"""Structured logging: key-value fields to stderr, JSON when ALM_LOG_JSON=1."""

from __future__ import annotations

import logging
import os
import sys

import structlog
from structlog.typing import EventDict, WrappedLogger

from services.core.text import LOG_VALUE_LIMIT, bounded, shown

# Values of these fields are identifiers or keys as received: a few hundred characters at most.
ID_FIELDS = frozenset({"work", "work_id", "key", "id", "input", "doi", "path"})
VALUE_LIMIT = 2000  # any other field (an error message, a reason)
EXCEPTION_LIMIT = 20_000  # a formatted traceback


class _Stderr:
    """Whatever sys.stderr is at write time (it is replaced under test runners and daemons)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def bounded_fields(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """A structlog processor: every logged value bounded and printable (services.core.text.shown),
    so that an id of megabytes or with terminal escapes cannot flood or forge the log."""
    for name, value in list(event.items()):
        if name == "event":
            continue
        if name == "exception" and isinstance(value, str):  # a traceback keeps its lines
            lines = [shown(line, VALUE_LIMIT) for line in value.splitlines()]
            event[name] = bounded("\n".join(lines), EXCEPTION_LIMIT)
            continue
        if isinstance(value, str) or name in ID_FIELDS:
            event[name] = shown(value, LOG_VALUE_LIMIT if name in ID_FIELDS else VALUE_LIMIT)
    return event


def configure(level: str | None = None) -> None:
    """Configure structlog and stdlib logging once, at a command's start."""
    name = (level or os.environ.get("ALM_LOG_LEVEL", "warning")).upper()
    numeric = getattr(logging, name, logging.WARNING)
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if os.environ.get("ALM_LOG_JSON") == "1"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            bounded_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
