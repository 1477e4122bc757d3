"""How an audit is shown: a table of differences (work, source, metric, stored, upstream now,
age of the stored value) with a summary, or the same as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.core.audit import AuditReport, Difference, Verdict
from services.core.timeutil import to_iso

HEADER = ("work", "source", "metric", "stored", "upstream now", "age")


def age(seconds: float | None) -> str:
    """`3d 4h`, `5h 12m`, `40s`: how old a stored value is."""
    if seconds is None:
        return "-"
    s = int(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _cell(value: int | None) -> str:
    return "absent" if value is None else str(value)


def table(report: AuditReport, threshold: float) -> str:
    """The differences as an aligned table, then the unreachable pairs and the summary."""
    rows = [
        (
            d.work_id,
            d.source,
            d.metric,
            _cell(d.stored),
            _cell(d.upstream),
            age(d.age_seconds(report.at)),
        )
        for d in report.differences()
    ]
    lines = []
    if rows:
        widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
        for row in [HEADER, *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for c in report.comparisons:
        if c.verdict is Verdict.UNREACHABLE:
            lines.append(f"unreachable: {c.work_id} from {c.source}: {c.error}")
    for source, why in sorted(report.skipped.items()):
        lines.append(f"skipped: {source}: {why}")
    for raw in report.missing:
        lines.append(f"not registered: {raw}")
    lines.append(summary(report, threshold))
    return "\n".join(lines)


def summary(report: AuditReport, threshold: float) -> str:
    """One line: what was checked and the share of works differing against the threshold."""
    checked, differing = len(report.checked_works()), len(report.differing_works())
    tallies = report.by_source().values()
    compared = sum(t.compared for t in tallies)
    unreachable = sum(t.unreachable for t in tallies)
    verdict = "FAIL" if report.share() > threshold else "ok"
    return (
        f"audit: {report.sampled} works, {checked} checked over {compared} (work, source) pairs;"
        f" {differing} differ ({report.share():.1%}, threshold {threshold:.1%}): {verdict};"
        f" {unreachable} unreachable"
    )


def _difference(d: Difference, now: datetime) -> dict[str, Any]:
    return {
        "work_id": d.work_id,
        "source": d.source,
        "metric": d.metric,
        "stored": d.stored,
        "upstream": d.upstream,
        "stored_at": to_iso(d.stored_at) if d.stored_at else None,
        "age_seconds": d.age_seconds(now),
    }


def as_json(report: AuditReport, threshold: float) -> dict[str, Any]:
    """The report as a JSON document."""
    return {
        "at": to_iso(report.at),
        "sampled": report.sampled,
        "checked_works": len(report.checked_works()),
        "differing_works": len(report.differing_works()),
        "share": report.share(),
        "threshold": threshold,
        "passed": report.share() <= threshold,
        "by_source": {
            s: {
                "compared": t.compared,
                "differing": t.differing,
                "unreachable": t.unreachable,
                "not_stored": t.not_stored,
            }
            for s, t in report.by_source().items()
        },
        "differences": [_difference(d, report.at) for d in report.differences()],
        "unreachable": [
            {"work_id": c.work_id, "source": c.source, "error": c.error}
            for c in report.comparisons
            if c.verdict is Verdict.UNREACHABLE
        ],
        "skipped": dict(report.skipped),
        "missing": list(report.missing),
    }
