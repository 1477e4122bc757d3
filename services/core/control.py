"""Operator control of sources: the status a pause or resume records, and how a source with
its status is described (by `alm sources` and `GET /api/v1/sources`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.core.catalog import SourceInfo
from services.core.health import SourceStatus
from services.core.timeutil import to_iso


def set_paused(source: str, paused: bool, reason: str | None, at: datetime) -> SourceStatus:
    """The status recorded when an operator pauses (with a reason) or resumes a source."""
    if paused:
        return SourceStatus(source, True, reason or "paused by an operator", at)
    return SourceStatus(source, False, None, at)


def describe_source(source: SourceInfo, status: SourceStatus | None) -> dict[str, Any]:
    """The source's description with whether it is paused, why and since when."""
    paused = status is not None and status.paused
    return {
        **source.describe(),
        "paused": paused,
        "pause_reason": status.reason if paused and status else None,
        "paused_since": to_iso(status.since) if paused and status and status.since else None,
    }
