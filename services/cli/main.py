"""The `alm` command: the embedded run, each service of the distributed mode, works, sources."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services import gctune
from services.bootstrap import check_settings
from services.cli import commands, publishers, quality, run
from services.cli import keys as keys_cli
from services.cli.common import UsageError
from services.logsetup import configure
from services.settings import SAMPLE_WORKS, Settings


def _sub_parser(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """The parser class of every subcommand (at any depth): it takes the common options too."""

    class SubParser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["parents"] = [*kwargs.get("parents", []), common]
            super().__init__(*args, **kwargs)

    return SubParser


def _parser() -> argparse.ArgumentParser:
    # --data-dir and --log-level are accepted before the command and after it (`alm --data-dir
    # D run`, `alm run --data-dir D`): a subcommand's copy, when given, wins.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="where the embedded mode keeps its SQLite file (default .alm-data)",
    )
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, help="debug, info, warning (default), error"
    )
    p = argparse.ArgumentParser(prog="alm", description="Article-Level Metrics", parents=[common])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_sub_parser(common))

    run = sub.add_parser("run", help="the embedded default: every service in one process")
    run.add_argument("--offline", action="store_true", help="fetch from the bundled stub upstream")
    run.add_argument("--port", type=int, default=None, help="API port (default 8080)")
    run.add_argument("--host", default=None)
    run.add_argument("--works", type=Path, default=SAMPLE_WORKS, help="identifiers to register")
    run.add_argument("--once", action="store_true", help="refresh, print the summary, exit")

    works = sub.add_parser("works", help="register works").add_subparsers(
        dest="works_cmd", required=True
    )
    works.add_parser("add", help="register identifiers").add_argument("ids", nargs="+")
    works.add_parser("import", help="register identifiers from a file").add_argument(
        "file", type=Path
    )

    publishers.add_parser(sub)

    sources = sub.add_parser("sources", help="list the sources; pause or resume one")
    sources.add_argument("--json", action="store_true")
    control = sources.add_subparsers(dest="sources_cmd")
    pause = control.add_parser("pause", help="stop fetching from a source")
    pause.add_argument("name")
    pause.add_argument("--reason", default="paused by an operator")
    control.add_parser("resume", help="fetch from a paused source again").add_argument("name")

    keys_cli.add_parser(sub)
    db = sub.add_parser("db", help="database").add_subparsers(dest="db_cmd", required=True)
    db.add_parser("migrate", help="apply schema migrations")
    db.add_parser(
        "reindex-dates",
        help="write every work's row of the publication-date listing again (Cassandra; after "
        "a rolling upgrade from a version before migration 012)",
    )
    db.add_parser(
        "recount-summary",
        help="count every source's works and failures again from the stored states (repairs "
        "the summary rows the sources pages read; exact with the aggregator stopped)",
    )
    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="topics_cmd", required=True
    )
    create = topics.add_parser("create", help="create the topics (idempotent)")
    create.add_argument("--partitions", type=int, default=6)
    create.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="copies of each partition (default -1: the brokers' default.replication.factor)",
    )

    audit = sub.add_parser(
        "audit", help="re-fetch a sample of works and compare with the stored numbers"
    )
    audit.add_argument("--sample", type=_positive, default=100, help="works to sample (100)")
    audit.add_argument(
        "--source", action="append", default=[], help="only this source (repeatable)"
    )
    audit.add_argument("--works", type=Path, help="audit the works this file names instead")
    audit.add_argument("--json", action="store_true", help="the report as JSON")
    audit.add_argument(
        "--threshold",
        type=_share,
        default=0.05,
        help="exit 1 when the share of works differing is above it (0.05)",
    )
    audit.add_argument("--offline", action="store_true", help="re-fetch from the bundled stub")
    audit.add_argument("--seed", type=int, help="seed of the random sample (repeatable runs)")
    checks = sub.add_parser("checks", help="run the periodic data-quality checks once")
    checks.add_argument("--json", action="store_true")

    sub.add_parser("scheduler", help="run the scheduler service")
    fetcher = sub.add_parser("fetcher", help="run the fetcher service of one source")
    fetcher.add_argument("--source", required=True)
    sub.add_parser("aggregator", help="run the aggregator service (faust)")
    sub.add_parser("notifier", help="run the webhook delivery service")
    api = sub.add_parser("api", help="run the API service")
    api.add_argument("--port", type=int, default=None)
    api.add_argument("--host", default=None)
    stub = sub.add_parser("stub-upstream", help="serve the recorded upstream responses")
    stub.add_argument("--port", type=int, default=8090)
    stub.add_argument("--host", default="127.0.0.1")
    stub.add_argument("--synthetic", action="store_true", help="answer 10.5555/ DOIs (benchmarks)")
    stub.add_argument(
        "--catalogue-works", type=int, default=None, help="generated works per publisher catalogue"
    )
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be a share from 0 to 1")
    return value


# Commands that run until stopped (and `run`, the embedded pipeline): they get the tuned
# garbage collector (services/gctune.py); one-shot commands keep CPython's, but for the bulk
# imports (`BULK`), which hold hundreds of thousands of works while they register them: with
# CPython's thresholds, full collections re-walked them all the time (a third of the CPU of
# registering 200,000 identifiers into SQLite, bench/registration.py --intake).
LONG_RUNNING = ("run", "scheduler", "fetcher", "aggregator", "api", "notifier")
BULK = (("works", "import"), ("publishers", "import"))


def tuned_collector(args: argparse.Namespace) -> bool:
    """Whether the command `args` asks for runs with the tuned garbage collector."""
    sub = getattr(args, f"{args.command}_cmd", None)
    return args.command in LONG_RUNNING or (args.command, sub) in BULK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `alm` console script."""
    args = _parser().parse_args(argv)
    configure(getattr(args, "log_level", None))
    try:
        settings = Settings.from_env()
        settings.policy()
        check_settings(settings)
    except ValueError as exc:
        print(f"alm: bad configuration in the environment: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "data_dir", None) is not None:
        settings = settings.with_(data_dir=args.data_dir)
    if getattr(args, "port", None) is not None and args.command in ("run", "api"):
        settings = settings.with_(port=args.port)
    if getattr(args, "host", None) and args.command in ("run", "api"):
        settings = settings.with_(host=args.host)
    if tuned_collector(args):
        gctune.tune(settings.gc_threshold)
    try:
        return asyncio.run(_dispatch(args, settings))
    except KeyboardInterrupt:
        return 130
    except (UsageError, quality.UsageError) as exc:
        print(f"alm: {exc}", file=sys.stderr)
        return 2


async def _works_or_sources(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "works":
        if args.works_cmd == "add":
            return await commands.works_add(settings, args.ids)
        return await commands.works_import(settings, args.file)
    if args.sources_cmd in ("pause", "resume"):
        reason = getattr(args, "reason", None)
        return await commands.source_control(settings, args.name, args.sources_cmd, reason)
    return await commands.sources(settings, args.json)


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    cmd = args.command
    if cmd == "run":
        return await run.run(settings, args.works, args.offline, args.once)
    if cmd in ("works", "sources"):
        return await _works_or_sources(args, settings)
    if cmd == "keys":
        return await keys_cli.run(settings, args)
    if cmd in ("db", "topics"):
        return await _setup(args, settings)
    if cmd == "publishers":
        return await publishers.dispatch(args, settings)
    if cmd in ("audit", "checks"):
        return await _quality(args, settings)
    if cmd == "stub-upstream":
        return await commands.stub_upstream(
            args.host, args.port, args.synthetic, args.catalogue_works
        )
    return await commands.service(cmd, settings, getattr(args, "source", None))


async def _setup(args: argparse.Namespace, settings: Settings) -> int:
    """`alm db migrate` and `alm topics create`."""
    if args.command == "db" and args.db_cmd == "reindex-dates":
        return await commands.db_reindex_dates(settings)
    if args.command == "db" and args.db_cmd == "recount-summary":
        return await commands.db_recount_summary(settings)
    if args.command == "db":
        return await commands.db_migrate(settings)
    return await commands.topics_create(settings, args.partitions, args.replication_factor)


async def _quality(args: argparse.Namespace, settings: Settings) -> int:
    """`alm audit` and `alm checks`."""
    if args.command == "checks":
        return await quality.checks_command(settings, args.json)
    options = quality.AuditOptions(
        sample=args.sample,
        sources=tuple(args.source),
        works=args.works,
        as_json=args.json,
        threshold=args.threshold,
        offline=args.offline,
        seed=args.seed,
    )
    return await quality.audit_command(settings, options)


if __name__ == "__main__":
    sys.exit(main())
