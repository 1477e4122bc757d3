"""A source's history as an inline SVG line chart (no script, no library): pure functions over
the buckets `present_history` (services/api/present.py) gives, one point per dated bucket.

The `undated` remainder (what upstream per-period counts leave undated) has no place on a
time axis: it is left out of the chart and shown in the table beside it. The y axis starts at
zero (or at the lowest count when one is negative: a count that went down) and ends at a
"nice" number at or above the highest count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from services.site.html import text

WIDTH, HEIGHT = 600, 220
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 16, 36  # the margins around the plot area
BASE = HEIGHT - BOTTOM  # the x axis's y
_AXES = (
    f'<g class="axes"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BASE}"/>'
    f'<line x1="{LEFT}" y1="{BASE}" x2="{WIDTH - RIGHT}" y2="{BASE}"/></g>'
)
_EMPTY = (
    f'<text class="empty" x="{WIDTH / 2:g}" y="{HEIGHT / 2:g}" '
    'text-anchor="middle">no history yet</text></svg>'
)


@dataclass(frozen=True, slots=True)
class Point:
    """One period of the chart: its label (`2024`, `2024-03`, `2024-03-09`) and its count."""

    label: str
    value: int


def label_of(bucket: Mapping[str, Any]) -> str:
    """`2024`, `2024-03` or `2024-03-09` for a dated bucket, `undated` for the remainder."""
    if bucket.get("undated"):
        return "undated"
    year = f"{bucket['year']:04d}"
    if "month" not in bucket:
        return year
    if "day" not in bucket:
        return f"{year}-{bucket['month']:02d}"
    return f"{year}-{bucket['month']:02d}-{bucket['day']:02d}"


def points(buckets: Sequence[Mapping[str, Any]]) -> list[Point]:
    """One point per dated bucket, in time order, valued at the bucket's ALM `total`."""
    return [Point(label_of(b), int(b["total"])) for b in buckets if not b.get("undated")]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 (or 2.5) times a power of ten at or above `value` (1 for 0)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            candidate = int(step * factor)
            if candidate >= value and candidate == step * factor:
                return candidate
        step *= 10


def y_range(values: Sequence[int]) -> tuple[int, int]:
    """The y axis's bottom and top: 0 (or minus a nice number below a negative count) to a nice
    number at or above the highest count."""
    low = min(values, default=0)
    high = max(values, default=0)
    bottom = -nice_ceiling(-low) if low < 0 else 0
    return bottom, nice_ceiling(high) if high > 0 else (1 if bottom == 0 else 0)


def positions(values: Sequence[int]) -> list[tuple[float, float]]:
    """The (x, y) of each value in the SVG's coordinates: evenly spaced across the plot area
    (one value: in its middle), y scaled by `y_range`."""
    if not values:
        return []
    bottom, top = y_range(values)
    span_x = WIDTH - LEFT - RIGHT
    span_y = HEIGHT - TOP - BOTTOM
    n = len(values)
    out = []
    for i, v in enumerate(values):
        x = LEFT + (span_x / 2 if n == 1 else span_x * i / (n - 1))
        y = TOP + span_y * (top - v) / (top - bottom)
        out.append((round(x, 1), round(y, 1)))
    return out


def _tick_labels(shown: Sequence[Point]) -> list[int]:
    """Which points get an x label: about six, always the first and the last."""
    n = len(shown)
    if n <= 6:
        return list(range(n))
    step = -(-n // 6)
    picked = list(range(0, n, step))
    if picked[-1] != n - 1:
        if n - 1 - picked[-1] < step / 2:
            picked[-1] = n - 1  # too close to the last to have a label of its own
        else:
            picked.append(n - 1)
    return picked


@lru_cache(maxsize=4096)
def _label(label: str) -> str:
    """A period's label as HTML (the same few thousand labels on every page: escaped once)."""
    return text(label)


def render(shown: Sequence[Point], title: str) -> str:
    """The chart as an `<svg role=img>` named by `title` (its `<title>` and `aria-label`):
    axes, the y range's ends, a few period labels, a line through the points and a circle per
    point with its own `<title>` (`2024-03: 12`). No point: the axes and "no history yet"."""
    name = text(title)
    bottom, top = y_range([p.value for p in shown])
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{name}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{name}</title>{_AXES}'
        f'<g class="ticks" text-anchor="end"><text x="{LEFT - 6}" y="{TOP + 6}">{top:,}</text>'
        f'<text x="{LEFT - 6}" y="{BASE}">{bottom:,}</text></g>'
    )
    if not shown:
        return head + _EMPTY
    xs, ys = [], []  # each point's coordinates as the SVG has them, formatted once
    for x, y in positions([p.value for p in shown]):
        xs.append(f"{x:g}")
        ys.append(f"{y:g}")
    labels = [_label(p.label) for p in shown]
    ticks = "".join(
        f'<text x="{xs[i]}" y="{HEIGHT - 10}">{labels[i]}</text>' for i in _tick_labels(shown)
    )
    line = " ".join(f"{x},{y}" for x, y in zip(xs, ys, strict=True))
    dots = "".join(
        f'<circle class="point" cx="{xs[i]}" cy="{ys[i]}" r="3.5" data-period="{labels[i]}" '
        f'data-value="{p.value}"><title>{labels[i]}: {p.value:,}</title></circle>'
        for i, p in enumerate(shown)
    )
    return (
        f'{head}<g class="ticks" text-anchor="middle">{ticks}</g>'
        f'<polyline class="line" points="{line}"/><g class="points">{dots}</g></svg>'
    )
