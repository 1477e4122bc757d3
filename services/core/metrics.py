"""Metric groups and ALM's per-source slots, and how a source declares its metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache


class Group(StrEnum):
    """ALM's five metric groups; a work's group figure sums its sources' metrics in it."""

    VIEWED = "viewed"
    SAVED = "saved"
    DISCUSSED = "discussed"
    CITED = "cited"
    RECOMMENDED = "recommended"


class Slot(StrEnum):
    """ALM's per-source metric slots besides `total` (null = not reported, 0 = zero)."""

    PDF = "pdf"
    HTML = "html"
    READERS = "readers"
    COMMENTS = "comments"
    LIKES = "likes"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric a source reports: its group, its ALM slot, and whether it adds to `total`."""

    name: str
    group: Group
    slot: Slot | None = None
    in_total: bool = True
    description: str = ""


def source_total(specs: Iterable[MetricSpec], values: Mapping[str, int | None]) -> int | None:
    """The source's ALM `total`: the sum of its counting metrics, None if none was reported."""
    reported = [values[s.name] for s in specs if s.in_total and values.get(s.name) is not None]
    return sum(v for v in reported if v is not None) if reported else None


SLOT_NAMES = tuple(slot.value for slot in Slot)  # in ALM's order


@lru_cache(maxsize=1024)
def _plan(specs: tuple[MetricSpec, ...]) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(metric, slot) of the slotted metrics and the counting metrics of a source's specs,
    worked out once per distinct specs (a source's are the same on every call)."""
    slotted = tuple((s.name, s.slot.value) for s in specs if s.slot is not None)
    return slotted, tuple(s.name for s in specs if s.in_total)


def slot_values(
    specs: Iterable[MetricSpec], values: Mapping[str, int | None]
) -> dict[str, int | None]:
    """ALM's `metrics` object for one source: every slot (None where not reported) and total."""
    slotted, counting = _plan(specs if isinstance(specs, tuple) else tuple(specs))
    slots: dict[str, int | None] = dict.fromkeys(SLOT_NAMES)
    for name, slot in slotted:
        value = values.get(name)
        if value is not None:
            slots[slot] = (slots[slot] or 0) + value
    reported = [v for v in (values.get(n) for n in counting) if v is not None]
    slots["total"] = sum(reported) if reported else None
    return slots


def group_figures(
    rows: Iterable[tuple[Iterable[MetricSpec], Mapping[str, int | None]]],
) -> dict[str, int]:
    """Sum counting metrics per group over a work's sources (every group present, 0 if none)."""
    figures = {group.value: 0 for group in Group}
    for specs, values in rows:
        for spec in specs:
            value = values.get(spec.name)
            if spec.in_total and value is not None:
                figures[spec.group.value] += value
    return figures
