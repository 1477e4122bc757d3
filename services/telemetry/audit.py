"""The last audit's figures as Prometheus gauges (`alm audit`, services/audit/).

An audit is a one-shot command: nothing scrapes it. Its gauges live in a registry of their own,
written where a one-shot command can leave them: a node_exporter textfile-collector file
(ALM_AUDIT_TEXTFILE, written atomically) and/or a Pushgateway (ALM_AUDIT_PUSHGATEWAY, job
`alm_audit`). Prometheus then scrapes node_exporter or the Pushgateway.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from services.core.audit import AuditReport

REGISTRY = CollectorRegistry(auto_describe=True)
WORKS_CHECKED = Gauge(
    "alm_audit_works_checked",
    "Works the last audit compared (at least one source stored and re-fetched)",
    registry=REGISTRY,
)
WORKS_DIFFERING = Gauge(
    "alm_audit_works_differing",
    "Works of the last audit whose stored numbers differ from the upstream's, per source",
    ["source"],
    registry=REGISTRY,
)
DIFFERING_SHARE = Gauge(
    "alm_audit_differing_share",
    "Share of the works the last audit checked that differ in at least one source",
    registry=REGISTRY,
)
UNREACHABLE = Gauge(
    "alm_audit_unreachable",
    "(work, source) pairs the last audit could not re-fetch, per source",
    ["source"],
    registry=REGISTRY,
)
LAST_RUN = Gauge(
    "alm_audit_last_run_timestamp_seconds",
    "When the last audit finished (Unix time)",
    registry=REGISTRY,
)


def record(report: AuditReport) -> None:
    """Set the gauges from an audit's report."""
    WORKS_CHECKED.set(len(report.checked_works()))
    DIFFERING_SHARE.set(report.share())
    for source, tally in report.by_source().items():
        WORKS_DIFFERING.labels(source).set(tally.differing)
        UNREACHABLE.labels(source).set(tally.unreachable)
    LAST_RUN.set(report.at.timestamp())


async def export(textfile: str | None, pushgateway: str | None) -> list[str]:
    """Write the gauges to the textfile and/or push them; returns where they went."""
    done = []
    if textfile:
        await asyncio.to_thread(write_to_textfile, textfile, REGISTRY)
        done.append(textfile)
    if pushgateway:
        await asyncio.to_thread(push_to_gateway, pushgateway, "alm_audit", REGISTRY)
        done.append(pushgateway)
    return done
