"""Upstream calls per refresh, per source: N synthetic works (DOIs under 10.5555/) fetched by
every source through engine.fetch_batch + HttpCaller against the stub server in synthetic mode,
in batches of each source's batch size.

Prints, per source: calls, calls per refreshed work (target <= 0.05 where the upstream has a
batch endpoint), outcomes, wall time, seconds waited on rate limits (the gate's `.waited`: the
sum of every call's wait, so concurrent waits add up), and how long the same calls would take at
the source's declared polite rate ("h at limit"). The stub run uses `--rate` requests/s per
source (passed explicitly to the HTTP layer; the sources' declared Limits are not changed).

    .venv/bin/python -m bench.source_calls --works 10000
    .venv/bin/python -m bench.source_calls --works 2000 --sources openalex,semanticscholar
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import Source
from services.fetchers.engine import fetch_batch
from services.fetchers.http import HttpCaller, HttpSettings
from services.fetchers.registry import SOURCES
from services.settings import FIXTURES
from services.stub import server

TARGET = 0.05  # calls per refresh for sources with a batch endpoint
CONFIGS = {  # what the credentialed sources need to run against the stub
    "counter": SourceConfig(extra={"customer_id": "0000000000000000", "end_date": "2026-10"}),
    "mendeley": SourceConfig(api_key="bench-client:bench-secret"),
    "reddit": SourceConfig(api_key="bench-client:bench-secret"),
}


@dataclass
class Row:
    """One source's figures."""

    source: Source
    works: int
    calls: int
    outcomes: Counter[str]
    seconds: float
    waited: float

    @property
    def per_refresh(self) -> float:
        """Upstream calls per refreshed work."""
        return self.calls / self.works if self.works else 0.0

    @property
    def polite_hours(self) -> float:
        """Hours the same calls take at the source's declared requests/s."""
        return self.calls / self.source.limits.requests_per_second / 3600


async def run_source(
    source: Source, works: list[WorkRef], caller: HttpCaller, in_flight: int
) -> Row:
    """Fetch every work once from `source`, `in_flight` batches at a time."""
    config = CONFIGS.get(source.name, SourceConfig())
    size = source.batch_size
    chunks = [works[i : i + size] for i in range(0, len(works), size)]
    gate = asyncio.Semaphore(in_flight)
    outcomes: Counter[str] = Counter()

    async def one(chunk: list[WorkRef]) -> None:
        async with gate:
            result = await fetch_batch(source, chunk, config, caller, lambda: datetime.now(UTC))
        outcomes.update(o.status.value for o in result.observations)

    before = caller.calls.get(source.name, 0)
    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chunks))
    elapsed = time.perf_counter() - started
    calls = caller.calls.get(source.name, 0) - before
    waited = caller.gate(source).waited
    return Row(source, len(works), calls, outcomes, elapsed, waited)


def report(rows: list[Row]) -> None:
    """Print the table and the totals."""
    head = (
        f"{'source':16}{'batch':>6}{'calls':>9}{'calls/refresh':>15}{'target':>8}"
        f"{'ok':>7}{'404':>7}{'err':>5}{'wall s':>8}{'waited s':>10}{'h at limit':>11}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        target = "" if r.source.batch_size == 1 else ("ok" if r.per_refresh <= TARGET else "over")
        print(
            f"{r.source.name:16}{r.source.batch_size:>6}{r.calls:>9}{r.per_refresh:>15.4f}"
            f"{target:>8}{r.outcomes['ok']:>7}{r.outcomes['not_found']:>7}{r.outcomes['error']:>5}"
            f"{r.seconds:>8.1f}{r.waited:>10.2f}{r.polite_hours:>11.2f}"
        )
    works = rows[0].works if rows else 0
    calls = sum(r.calls for r in rows)
    print("-" * len(head))
    print(
        f"total: {calls} calls for {works} works x {len(rows)} sources = "
        f"{calls / works if works else 0:.3f} calls per work per full refresh "
        f"({calls / (works * len(rows)) if works and rows else 0:.3f} per source-refresh); "
        f"rate-limit wait {sum(r.waited for r in rows):.2f}s"
    )


async def main_async(
    n: int, names: list[str], rate: float, concurrency: int, in_flight: int
) -> None:
    """Start the synthetic stub, fetch every work from every chosen source, print figures."""
    works = [WorkRef(f"10.5555/bench.{i}", f"10.5555/bench.{i}") for i in range(n)]
    app = server.init_app(names, FIXTURES, synthetic=True)
    runner, root = await server.start(app)
    declared = rate <= 0  # run at the sources' own Limits (slow: real politeness)
    http = HttpSettings(
        rates={} if declared else {name: rate for name in names},
        concurrency={} if declared else {name: concurrency for name in names},
    )
    rows = []
    try:
        async with HttpCaller({name: f"{root}/{name}" for name in names}, http) as caller:
            for name in names:
                rows.append(await run_source(SOURCES[name], works, caller, in_flight))
    finally:
        await runner.cleanup()
    pace = "declared Limits" if declared else f"{rate:g} req/s, concurrency {concurrency} a source"
    print(f"{n} synthetic works; stub run at {pace}")
    report(rows)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--works", type=int, default=10_000)
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated names")
    parser.add_argument(
        "--rate", type=float, default=5000.0, help="requests/s a source (0: declared Limits)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="stub calls in flight a source")
    parser.add_argument("--in-flight", type=int, default=32, help="batches in flight a source")
    args = parser.parse_args()
    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in names if s not in SOURCES]
    if unknown:
        parser.error(f"unknown sources {unknown}; known: {', '.join(SOURCES)}")
    asyncio.run(main_async(args.works, names, args.rate, args.concurrency, args.in_flight))


if __name__ == "__main__":
    main()
