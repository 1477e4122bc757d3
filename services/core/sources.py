"""What a source plug-in may read from the settings: plain configuration, built by
`Settings.source_config` and passed to the plug-in (services/fetchers/base.py) with each call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """What a plug-in may read from settings: contact address and credentials."""

    contact_email: str = "alm@example.org"
    api_key: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # ALM_<SOURCE>__<KEY> settings
    today: date | None = None  # the fetcher's date, for sources whose requests name a period
