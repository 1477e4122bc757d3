"""`alm publishers import` and `alm publishers list`: a publisher's catalogue from Crossref,
registered and kept up to date (services/catalogue_import.py), and what is known of each."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from services.bootstrap import (
    make_bus,
    make_caller,
    make_publishers,
    make_scheduling,
    make_store,
    utc_now,
)
from services.catalogue_import import ImportConflict, Importer, ImportFailed, ImportOptions
from services.cli.common import UsageError, stop_event
from services.cli.progress import Progress
from services.core.catalogue_state import MAX_ROWS, ImportState, InvalidScope, Scope
from services.core.publishers import Publisher, PublisherStore
from services.fetchers.catalogue import CatalogueClient
from services.fetchers.http import HttpSettings
from services.fetchers.registry import get_source
from services.settings import Settings
from services.stub.offline import serve_offline

CATALOGUE_TIMEOUT = 60.0  # seconds for one page of 1000 works (Crossref can be slow)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `publishers` command and its subcommands."""
    publishers = sub.add_parser("publishers", help="import publishers' catalogues from Crossref")
    cmds = publishers.add_subparsers(dest="publishers_cmd", required=True)
    imp = cmds.add_parser(
        "import",
        help="register every work of a Crossref member or DOI prefix (resumes an unfinished "
        "import; by default only what was indexed since the last complete one)",
    )
    which = imp.add_mutually_exclusive_group(required=True)
    which.add_argument("--member", help="Crossref member id, e.g. 340 (PLOS)")
    which.add_argument("--prefix", help="DOI owner prefix, e.g. 10.1371")
    imp.add_argument(
        "--since",
        help="only works indexed on or after this day, YYYY-MM-DD (default: the day the last "
        "complete import of this member or prefix started; none: everything)",
    )
    imp.add_argument("--restart", action="store_true", help="drop an unfinished import, start anew")
    imp.add_argument("--offline", action="store_true", help="read from the bundled stub upstream")
    imp.add_argument(
        "--rows", type=int, default=MAX_ROWS, help=f"works per page, 1 to {MAX_ROWS} (default)"
    )
    listing = cmds.add_parser("list", help="publishers, their works and their imports")
    listing.add_argument("--json", action="store_true")


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run `alm publishers ...`."""
    if args.publishers_cmd == "list":
        return await list_publishers(settings, args.json)
    scope = _scope(args.member, args.prefix)
    since = _since(args.since)
    if not 1 <= args.rows <= MAX_ROWS:
        raise UsageError(f"--rows takes 1 to {MAX_ROWS}, not {args.rows}")
    return await import_catalogue(settings, scope, since, args.restart, args.offline, args.rows)


def _scope(member: str | None, prefix: str | None) -> Scope:
    try:
        return Scope.member(member) if member is not None else Scope.prefix(prefix or "")
    except InvalidScope as exc:
        raise UsageError(str(exc)) from None


def _since(raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"--since takes a day as YYYY-MM-DD, not {raw!r}") from None
    if day > utc_now().date():
        raise UsageError(f"--since {raw} is in the future")
    return day


class _Shown:
    """What the command shows of an import: a plan line, progress, notes."""

    def __init__(self) -> None:
        self.progress: Progress | None = None

    def found(self, publisher: Publisher) -> None:
        prefixes = ", ".join(publisher.prefixes) or "no prefixes"
        works = publisher.works_upstream
        at_crossref = f", {works:,} works at Crossref" if works is not None else ""
        print(
            f"member {publisher.member_id}: {publisher.name} ({prefixes}{at_crossref})",
            flush=True,
        )

    def planned(self, state: ImportState) -> None:
        since = state.since.isoformat() if state.since else "the first"
        windows = len(state.windows)
        print(
            f"{state.scope.key}: {state.total or 0:,} works indexed from {since} to "
            f"{state.until.isoformat()}, in {windows} window{'s' if windows != 1 else ''}",
            flush=True,
        )
        self.progress = Progress("importing", "works", total=state.total, done=state.done)

    def advanced(self, state: ImportState) -> None:
        if self.progress is not None:
            self.progress.total = max(state.total or 0, state.done) or None
            self.progress.moveto(state.done)

    def note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.note(f"  {text}")
        else:
            print(f"  {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


async def import_catalogue(
    settings: Settings, scope: Scope, since: date | None, restart: bool, offline: bool, rows: int
) -> int:
    """`alm publishers import`: register the scope's works; SIGINT or SIGTERM stops between
    pages (resumable: run the command again)."""
    stop = stop_event()
    runner = None
    if offline:
        runner, settings = await serve_offline(settings)
    store, bus = make_store(settings), make_bus(settings)
    shown = _Shown()
    try:
        await store.migrate()
        crossref = get_source("crossref")
        http = HttpSettings(
            user_agent=settings.user_agent,
            rates=settings.rates,
            retries=0,  # a page is asked for once (services/fetchers/catalogue.py)
            timeout=CATALOGUE_TIMEOUT,
        )
        async with make_caller(settings, [crossref], http) as caller:
            client = CatalogueClient(caller, crossref, settings.source_config("crossref"))
            importer = Importer(
                client,
                store,
                make_publishers(store),
                bus,
                make_scheduling(settings),
                utc_now,
                shown,
                ImportOptions(rows=rows),
            )
            state = await importer.run(scope, since, restart, stop)
    except ImportConflict as exc:
        raise UsageError(str(exc)) from None
    except ImportFailed as exc:
        shown.close()
        print(f"alm: import stopped: {exc}; run the command again to resume", file=sys.stderr)
        return 1
    finally:
        await bus.close()
        await store.close()
        if runner is not None:
            await runner.cleanup()
    shown.close()
    print(_summary(state), flush=True)
    return 0 if state.complete else 1


def _summary(state: ImportState) -> str:
    t = state.tally
    counts = (
        f"{t.created:,} registered, {t.known:,} already known, {t.updated:,} updated, "
        f"{t.invalid:,} invalid"
    )
    if state.complete:
        restarts = f"; {state.restarts} window restarts" if state.restarts else ""
        return f"{state.scope.key}: import complete, {state.done:,} works: {counts}{restarts}"
    return (
        f"{state.scope.key}: import stopped at {state.done:,} of {state.total or 0:,} works "
        f"({counts}); run the same command again to resume it"
    )


async def list_publishers(settings: Settings, as_json: bool) -> int:
    """`alm publishers list`: every publisher, its works here and at Crossref, its imports."""
    store = make_store(settings)
    try:
        await store.migrate()
        publishers = make_publishers(store)
        rows = await _rows(publishers)
    finally:
        await store.close()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no publishers yet: alm publishers import --member ID (or --prefix 10.NNNN)")
    for row in rows:
        upstream = row["works_upstream"]
        at_crossref = f" of {upstream:,} at Crossref" if upstream is not None else ""
        print(
            f"{row['member_id']:>6}  {row['name']}  [{', '.join(row['prefixes'])}]  "
            f"{row['works']:,} works{at_crossref}"
        )
        for imp in row["imports"]:
            print(f"        {imp['scope']}: {imp['status']}")
    return 0


async def _rows(publishers: PublisherStore) -> list[dict[str, Any]]:
    imports = await publishers.list_imports()
    out = []
    for publisher in await publishers.list_publishers():
        mine = [i for i in imports if i.member_id == publisher.member_id]
        out.append(
            {
                **publisher.to_dict(),
                "works": await publishers.count_publisher_works(publisher.member_id),
                "imports": [_import_row(i) for i in mine],
            }
        )
    return out


def _import_row(state: ImportState) -> dict[str, Any]:
    if state.complete:
        assert state.completed_at is not None
        status = (
            f"complete {state.completed_at:%Y-%m-%d %H:%M} UTC, {state.done:,} works indexed "
            f"up to {state.until.isoformat()} (next: --since {state.until.isoformat()})"
        )
    else:
        status = (
            f"unfinished: {state.done:,} of {state.total or 0:,} works, started "
            f"{state.started_at:%Y-%m-%d %H:%M} UTC (run the import again to resume)"
        )
    return {
        "scope": state.scope.key,
        "status": status,
        "complete": state.complete,
        "last_import": state.until.isoformat() if state.complete else None,
        "state": state.to_dict(),
    }
