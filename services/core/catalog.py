"""What the API, the site and the CLI know about the installed sources, without the plug-ins:
a `SourceInfo` per source (name, display name, group, metrics, limits, ...) and the `Catalog`
of them. The fetcher side builds it from the registry (`services.fetchers.registry.catalog`)
and hands it to whoever presents sources, so that presenting them loads no fetcher code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from services.core.metrics import Group, MetricSpec


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One installed source as it is described: what `alm sources --json` and
    `GET /api/v1/sources` show, and what the presenters read (display name, group, metrics)."""

    name: str
    display_name: str
    group: Group
    metrics: tuple[MetricSpec, ...]
    description: str = ""
    batch_size: int = 1
    auth: str = "none"
    requests_per_second: float = 5.0  # politeness defaults (upstream headers override them)
    concurrency: int = 2
    base_url: str = ""

    @property
    def counting_metric(self) -> str:
        """The first metric that adds to the source's `total` (what rankings by it count)."""
        return next(s.name for s in self.metrics if s.in_total)

    def describe(self) -> dict[str, Any]:
        """The source as `alm sources --json` and `GET /api/v1/sources` show it."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "group": self.group.value,
            "description": self.description,
            "metrics": [
                {
                    "name": m.name,
                    "group": m.group.value,
                    "slot": m.slot.value if m.slot else None,
                    "in_total": m.in_total,
                    "description": m.description,
                }
                for m in self.metrics
            ],
            "batch_size": self.batch_size,
            "auth": self.auth,
            "limits": {
                "requests_per_second": self.requests_per_second,
                "concurrency": self.concurrency,
            },
            "base_url": self.base_url,
        }


class Catalog(Mapping[str, SourceInfo]):
    """The installed sources by name, in registry order, with the lookups presenters make
    about a source that may no longer be installed (a stored state outlives its plug-in)."""

    def __init__(self, sources: Iterable[SourceInfo]) -> None:
        self._sources = {s.name: s for s in sources}
        self._groups = {
            name: {m.name: m.group.value for m in s.metrics} for name, s in self._sources.items()
        }

    def __getitem__(self, name: str) -> SourceInfo:
        return self._sources[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def specs(self, name: str) -> tuple[MetricSpec, ...]:
        """The metric specs of `name` (empty for a source no longer installed)."""
        info = self._sources.get(name)
        return info.metrics if info else ()

    def display_name(self, name: str) -> str:
        """How `name` is shown (its own name for a source no longer installed)."""
        info = self._sources.get(name)
        return info.display_name if info else name

    def group(self, name: str) -> Group | None:
        """The group of `name` (None for a source no longer installed)."""
        info = self._sources.get(name)
        return info.group if info else None

    def metric_groups(self) -> Mapping[str, Mapping[str, str]]:
        """source -> metric -> group (what change filters by group read)."""
        return self._groups
