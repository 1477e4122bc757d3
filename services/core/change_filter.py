"""Which metric changes a subscriber wants: by source, metric group, publisher and work.

The SSE stream (`GET /api/v1/changes?source=...`) and every webhook use the same filter. Within
one criterion any listed value matches; across criteria all must (source=crossref and
group=cited: Crossref's changes to a cited metric). An empty criterion matches everything.

- source: the change's source.
- group: the group of a metric that changed (one in `delta`); a source declares each metric's
  group, given here as `MetricGroups` (source -> metric -> group).
- publisher: the work's publisher, compared without case and with runs of spaces as one.
- work: the work id (the API turns any accepted identifier into the registered work's id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MetricGroups = Mapping[str, Mapping[str, str]]
"""source -> metric -> group, from the installed sources."""

MAX_VALUES = 100  # values of one criterion


def normal_publisher(name: str) -> str:
    """How publishers are compared: case-folded, surrounding and repeated spaces removed."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    """A subscriber's criteria (each a set of accepted values; empty: any)."""

    sources: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    publishers: frozenset[str] = frozenset()  # normalised (normal_publisher)
    works: frozenset[str] = frozenset()  # work ids

    @classmethod
    def of(
        cls,
        sources: Iterable[str] = (),
        groups: Iterable[str] = (),
        publishers: Iterable[str] = (),
        works: Iterable[str] = (),
    ) -> ChangeFilter:
        """A filter from plain values (publishers normalised here)."""
        return cls(
            frozenset(sources),
            frozenset(groups),
            frozenset(normal_publisher(p) for p in publishers),
            frozenset(works),
        )

    @property
    def needs_publisher(self) -> bool:
        """Whether matching needs the work's publisher."""
        return bool(self.publishers)

    def matches(
        self, change: Mapping[str, Any], publisher: str | None, catalog: MetricGroups
    ) -> bool:
        """Whether `change` (a metric_changed event) passes; `publisher` is its work's."""
        if self.works and change.get("work_id") not in self.works:
            return False
        source = change.get("source")
        if self.sources and source not in self.sources:
            return False
        if self.publishers and (
            publisher is None or normal_publisher(publisher) not in self.publishers
        ):
            return False
        if self.groups:
            groups = catalog.get(str(source), {})
            delta = change.get("delta") or {}
            if not any(groups.get(metric) in self.groups for metric in delta):
                return False
        return True

    def to_dict(self) -> dict[str, list[str]]:
        """JSON form (sorted lists), as stored with a webhook and shown by the API."""
        return {
            "sources": sorted(self.sources),
            "groups": sorted(self.groups),
            "publishers": sorted(self.publishers),
            "works": sorted(self.works),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChangeFilter:
        """Inverse of to_dict."""
        return cls(
            frozenset(data.get("sources") or ()),
            frozenset(data.get("groups") or ()),
            frozenset(data.get("publishers") or ()),
            frozenset(data.get("works") or ()),
        )
