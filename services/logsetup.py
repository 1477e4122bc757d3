"""Structured logging: key-value fields to stderr, JSON when ALM_LOG_JSON=1."""

from __future__ import annotations

import logging
import os
import sys

import structlog


class _Stderr:
    """Whatever sys.stderr is at write time (it is replaced under test runners and daemons)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


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
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
