"""`alm audit` and `alm checks`: the numbers checked against the upstreams, and the periodic
data-quality checks run once."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from services.audit.report import as_json, table
from services.audit.runner import audit, named_works, sample_works
from services.bootstrap import make_caller, make_checker, make_store, selected_sources, utc_now
from services.cli.progress import Progress
from services.core.identifiers import Identifier
from services.core.imports import NotText, decode_text, read_lines, validate
from services.fetchers.base import Source
from services.fetchers.registry import SOURCES
from services.settings import Settings
from services.stub.offline import serve_offline
from services.telemetry import audit as audit_metrics


class UsageError(Exception):
    """An audit that cannot run as asked (the `alm` command prints it and exits 2)."""


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """What `alm audit` was asked for."""

    sample: int = 100
    sources: tuple[str, ...] = ()
    works: Path | None = None
    as_json: bool = False
    threshold: float = 0.05
    offline: bool = False
    seed: int | None = None


def _sources(settings: Settings, names: tuple[str, ...]) -> list[Source]:
    """The sources to audit: the named ones, else those this configuration runs."""
    unknown = sorted(set(names) - set(SOURCES))
    if unknown:
        raise UsageError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    return [SOURCES[n] for n in names] if names else selected_sources(settings)


def _identifiers(path: Path) -> tuple[list[tuple[str, Identifier]], list[str]]:
    """The identifiers a file names (one a line, CSV or JSONL, as `alm works import` reads),
    and its lines that are none."""
    try:
        text = decode_text(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    except NotText as exc:
        raise UsageError(f"{path.name} {exc}") from None
    lines, bad = read_lines(text, path.name)
    good, invalid = validate(lines)
    problems = [f"{path.name} line {b.line}: {b.reason}" for b in bad + invalid]
    return [(line.value, ident) for line, ident in good], problems


async def audit_command(settings: Settings, options: AuditOptions) -> int:
    """`alm audit`: exit 0 if the share of works differing is at most the threshold, else 1."""
    sources = _sources(settings, options.sources)
    named, problems = _identifiers(options.works) if options.works else ([], [])
    stub = None
    if options.offline:
        stub, settings = await serve_offline(settings)
    store = make_store(settings)
    try:
        await store.migrate()
        missing: list[str] = []
        if options.works:
            works, missing = await named_works(store, named)
        else:
            with Progress("sampling", "works", total=await store.count_works()) as progress:
                rng = random.Random(options.seed)
                works = await sample_works(store, options.sample, rng, progress)
        caller = make_caller(settings, sources)
        async with caller:
            with Progress("re-fetching", "works") as progress:
                report = await audit(
                    works, sources, settings.source_config, store, caller, utc_now, progress
                )
    finally:
        await store.close()
        if stub is not None:
            await stub.cleanup()
    report.missing = missing + problems
    audit_metrics.record(report)
    exported = await audit_metrics.export(settings.audit_textfile, settings.audit_pushgateway)
    if options.as_json:
        print(json.dumps({**as_json(report, options.threshold), "gauges": exported}, indent=2))
    else:
        print(table(report, options.threshold))
        for where in exported:
            print(f"gauges: {where}")
    return 1 if report.share() > options.threshold else 0


async def checks_command(settings: Settings, as_json_output: bool) -> int:
    """`alm checks`: run the periodic data-quality checks once (the stale scan included) and
    print the alerts that are new."""
    store = make_store(settings)
    try:
        await store.migrate()
        new = await make_checker(settings, store).run_once(stale=True)
    finally:
        await store.close()
    if as_json_output:
        print(json.dumps([a.to_dict() for a in new], indent=2))
    else:
        for a in new:
            where = " ".join(x for x in (a.source, a.work_id) if x)
            print(f"{a.severity.value:<7} {a.kind.value:<16} {where}: {a.message}")
        print(f"checks: {len(new)} new alert(s)")
    return 0
