"""One fault scenario's stack: every ALM service its own supervised process over the private
Kafka and Cassandra, the fetchers reaching the synthetic stub upstream through toxiproxy, a set
of works refreshed every REFRESH, and the measurements a scenario makes (time to recover, the
API's answers while a dependency is down, the reconciliation report).

Each scenario starts from a clean baseline: empty tables, topics and consumer groups of its own,
services started fresh, every work refreshed once before the fault.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.rows import HOUR_US
from services.adapters.kafka import KafkaBus, ensure_topics
from services.core.events import Status
from services.fetchers.registry import SOURCES
from tests.faults.cluster import REPO, STATE, Cluster, port
from tests.faults.oracle import Expected, Report, reconcile
from tests.faults.supervisor import Supervisor
from tests.faults.toxiproxy import Toxiproxy

SOURCES_RUN = ("crossref", "openalex", "datacite")  # two batch sources, one a work a call
WORKS = int(os.environ.get("ALM_FAULTS_WORKS", "300"))
REFRESH = "20s"  # every work is refreshed this often (+ up to 10 % jitter): a steady stream
KEYSPACE = "alm_faults"
STUB_PORT, API_PORT, TOXIPROXY_PORT, UPSTREAM_PROXY_PORT = port(90), port(80), port(474), port(401)
UPSTREAM_PROXY = "upstream"  # toxiproxy's proxy between the fetchers and the stub
ALM = (sys.executable, "-m", "services.cli.main")  # how every service and command is run


def dois(count: int = WORKS) -> list[str]:
    """The synthetic works every scenario registers (the stub answers them deterministically)."""
    return [f"10.5555/fault.{n:05d}" for n in range(count)]


def service_env(
    cluster: Cluster, prefix: str, works: int = WORKS, refresh: str = REFRESH
) -> dict[str, str]:
    """The environment of every service of a scenario of `works` works, each refreshed every
    `refresh`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALM_")}
    env.update(
        ALM_BUS="kafka",
        ALM_STORE="cassandra",
        ALM_KAFKA_BOOTSTRAP=cluster.kafka,
        ALM_CASSANDRA_HOSTS=cluster.cassandra_host,
        ALM_CASSANDRA_PORT=str(cluster.cassandra_port),
        ALM_CASSANDRA_KEYSPACE=KEYSPACE,
        ALM_TOPIC_PREFIX=prefix,
        ALM_DATA_DIR=str(STATE / "data" / prefix.rstrip(".")),
        ALM_UPSTREAM_ROOT=f"http://127.0.0.1:{UPSTREAM_PROXY_PORT}",
        ALM_SOURCES=",".join(SOURCES_RUN),
        ALM_DEFAULT_REFRESH=f"{refresh},{refresh},{refresh}",
        ALM_RETRY_BASE="2s",
        ALM_RETRY_MAX="20s",
        ALM_API_STORE_TIMEOUT="2",
        # Works here are refreshed thousands of times faster than ALM's daily cadence, so ALM's
        # rule (pause a source after 200 failed calls in 24 h, until an operator resumes it)
        # would trip within seconds of any upstream fault; it is unit-tested instead.
        ALM_SOURCE_FAILURE_LIMIT="0",
        ALM_LOG_LEVEL="warning",
        PYTHONPATH=str(REPO),
        **{f"ALM_{s.upper()}_RATE": "100" for s in SOURCES_RUN},
    )
    # DataCite (a call per work) paced to take most of each refresh round: a steady stream of
    # calls for faults to hit, rather than a burst every 20 s
    env["ALM_DATACITE_RATE"] = str(max(1, works // 15))
    return env


@dataclass
class ApiAnswer:
    """How the API answered one request."""

    path: str
    status: int
    seconds: float
    json: bool
    retry_after: str | None


@dataclass
class Scenario:
    """The stack of one scenario and what it measured."""

    name: str
    cluster: Cluster
    toxiproxy: Toxiproxy
    want: Expected
    refresh: str = REFRESH
    extra_env: dict[str, str] = field(default_factory=dict)  # more settings for the services
    prefix: str = field(default_factory=lambda: f"fault{secrets.token_hex(3)}.")
    supervisor: Supervisor | None = None
    store: CassandraStore | None = None
    bus: KafkaBus | None = None
    timings: dict[str, float] = field(default_factory=dict)
    api_answers: list[ApiAnswer] = field(default_factory=list)
    _rest: list[str] = field(default_factory=list)  # works held back by start(hold_back=True)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{API_PORT}"

    @property
    def logs(self) -> Path:
        return STATE / "logs" / self.name

    async def start(self, hold_back: bool = False) -> None:
        """Clean tables, fresh topics, every service started, every work registered (only the
        first half with `hold_back`: `register_rest` registers the others) and refreshed
        once."""
        began = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        await ensure_topics(self.cluster.kafka, sorted(SOURCES), 6, prefix=self.prefix)
        self.store = CassandraStore(
            [self.cluster.cassandra_host], self.cluster.cassandra_port, KEYSPACE
        )
        await truncate(self.store)
        self.bus = KafkaBus(self.cluster.kafka, client_id="faults", prefix=self.prefix)
        await self.toxiproxy.proxy(UPSTREAM_PROXY, UPSTREAM_PROXY_PORT, f"127.0.0.1:{STUB_PORT}")
        await stub_fault(None)
        works = sorted({w for w, _ in self.want.totals})
        env = {**service_env(self.cluster, self.prefix, len(works), self.refresh), **self.extra_env}
        sup = self.supervisor = Supervisor(env, self.logs)
        sup.start("aggregator", "aggregator")
        sup.start("scheduler", "scheduler")
        for source in SOURCES_RUN:
            sup.start(f"fetcher-{source}", "fetcher", "--source", source)
        sup.start("api", "api", "--port", str(API_PORT))
        await self.until(self.api_ready, 120, "the API to answer /readyz")
        self._rest = works[len(works) // 2 :] if hold_back else []
        await self._register([w for w in works if w not in set(self._rest)], "works.txt")
        self.timings["start"] = time.monotonic() - began
        self.timings["first refresh"] = await self.wait_refreshed(None, 240, self._rest)

    async def _register(self, works: list[str], name: str) -> None:
        path = self.logs / name
        path.write_text("\n".join(works) + "\n")
        await self.alm("works", "import", str(path))

    async def register_rest(self) -> None:
        """Register the works `start(hold_back=True)` held back."""
        await self._register(self._rest, "works-rest.txt")
        self._rest = []

    async def alm(self, *args: str) -> str:
        """Run `alm ARGS...` with the scenario's environment (fails if it fails)."""
        assert self.supervisor is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli.main",
            *args,
            env=self.supervisor.env,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        assert proc.returncode == 0, f"alm {' '.join(args)} failed:\n{text}"
        return text

    async def api_ready(self) -> bool:
        """Whether /readyz answers 200."""
        return (await self.ask("/readyz", record=False)).status == 200

    async def ask(self, path: str, record: bool = True) -> ApiAnswer:
        """GET `path` from the API, timing it (status 0: no answer within 30 s)."""
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=30)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(self.api + path) as resp,
            ):
                is_json = resp.content_type == "application/json"
                if is_json:
                    await resp.json()
                answer = ApiAnswer(
                    path,
                    resp.status,
                    time.monotonic() - started,
                    is_json,
                    resp.headers.get("Retry-After"),
                )
        except (aiohttp.ClientError, TimeoutError):
            answer = ApiAnswer(path, 0, time.monotonic() - started, False, None)
        if record:
            self.api_answers.append(answer)
        return answer

    async def until(self, check: object, timeout: float, what: str) -> float:
        """Await `check()` until true; seconds it took (AssertionError after `timeout`: the
        services' logs, then what was not reached)."""
        assert callable(check)
        started = time.monotonic()
        while not await check():
            if time.monotonic() - started > timeout:
                logs = self.supervisor.logs_text() if self.supervisor else ""
                # the logs first: a CI shows the tail of its output, where the verdict is
                raise AssertionError(f"{logs}\n{self.name}: no {what} after {timeout:.0f} s")
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    async def refreshed_since(
        self, since: datetime | None, source: str | None = None
    ) -> tuple[int, int]:
        """(pairs (of `source`, if given) refreshed ok since `since`, all pairs)."""
        assert self.store is not None
        works = sorted({w for w, _ in self.want.totals})
        states = await self.store.states_for(works)
        done = sum(
            1
            for rows in states.values()
            for s in rows
            if s.status is not Status.ERROR
            and s.retrieved_at is not None
            and (since is None or s.retrieved_at >= since)
            and source in (None, s.source)
        )
        return done, len(self.want.totals)

    async def wait_refreshed(
        self, since: datetime | None, timeout: float, not_yet: list[str] | None = None
    ) -> float:
        """Seconds until every (work, source) (but those of works `not_yet` registered) was
        refreshed (ok) since `since`."""
        expected = len(self.want.totals) - len(not_yet or []) * len(SOURCES_RUN)

        async def all_done() -> bool:
            try:
                done, _ = await self.refreshed_since(since)
            except Exception:  # the store may still be recovering
                return False
            return done >= expected

        try:
            return await self.until(all_done, timeout, "refresh of every work")
        except AssertionError as exc:
            behind = await self.behind(since, set(not_yet or []))
            raise AssertionError(f"{exc}\nnot refreshed: {behind}") from None

    async def behind(self, since: datetime | None, skip: set[str]) -> dict[str, object]:
        """How many (work, source) are not refreshed (ok) since `since`, and a few of them
        with what the store holds."""
        assert self.store is not None
        works = sorted({w for w, _ in self.want.totals} - skip)
        states = await self.store.states_for(works)
        held = {(w, s.source): s for w, rows in states.items() for s in rows}
        late = []
        for pair in sorted(p for p in self.want.totals if p[0] in set(works)):
            state = held.get(pair)
            if (
                state is None
                or state.status is Status.ERROR
                or state.retrieved_at is None
                or (since is not None and state.retrieved_at < since)
            ):
                late.append(
                    (
                        pair,
                        None if state is None else (state.status, state.retrieved_at, state.error),
                    )
                )
        examples = [(pair, held, await self.due_of(*pair)) for pair, held in late[:5]]
        return {"count": len(late), "examples": examples}

    async def due_of(self, work_id: str, source: str) -> str:
        """Where the due-index has (work, source): its position (when it is next due) and
        whether the row there is a lease; what tells a lost request (a lease that never ends)
        from an entry the scheduler's scans do not reach (due, not leased)."""
        assert self.store is not None
        try:
            cql = await self.store._ready()
            found = await cql.run("position_get", (source, work_id))
            if not found or found[0].due_at is None:
                return "no due entry"
            at = int(found[0].due_at)
            rows = await cql.run("due_scan", (source, at // HOUR_US, at, at))
            leased = [bool(r.leased) for r in rows if r.work_id == work_id]
        except Exception as exc:  # a diagnosis: never hides the failure it explains
            return f"due entry unreadable: {exc!r}"
        when = datetime.fromtimestamp(at / 1e6, UTC).isoformat()
        row = "no row" if not leased else ("leased" if leased[0] else "due")
        return f"due at {when} (attempt {found[0].due_attempt}, {row})"

    async def wait_progress(
        self, since: datetime, timeout: float, source: str | None = None
    ) -> float:
        """Seconds until some (work, source) (of `source`, if given) was refreshed since
        `since`: the pipeline, or that source's fetcher, moves again."""

        async def moving() -> bool:
            try:
                return (await self.refreshed_since(since, source))[0] > 0
            except Exception:
                return False

        return await self.until(moving, timeout, "progress")

    async def report(self, since: datetime | None) -> Report:
        """The reconciliation against the oracle."""
        assert self.store is not None and self.bus is not None
        return await reconcile(self.store, self.bus, self.want, since)

    async def stop(self) -> None:
        """Stop the services (SIGTERM, timed), close the clients."""
        if self.supervisor is not None:
            took = await self.supervisor.stop_all()
            self.timings["slowest stop"] = max(took.values(), default=0.0)
        if self.bus is not None:
            await self.bus.close()
        if self.store is not None:
            await self.store.close()

    def print_summary(self, report: Report) -> None:
        """What the scenario measured, for the suite's output (pytest -s or the log)."""
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())
        print(f"\n[{self.name}] {report.summary()}\n[{self.name}] {timings}")
        for answer in self.api_answers:
            print(
                f"[{self.name}] API {answer.path}: {answer.status} in {answer.seconds:.2f} s"
                f"{' (JSON)' if answer.json else ''}"
                f"{f', Retry-After {answer.retry_after}' if answer.retry_after else ''}"
            )
        if self.supervisor is not None:
            restarts = {n: self.supervisor.restarts(n) for n in self.supervisor.services}
            print(f"[{self.name}] restarts: { ({k: v for k, v in restarts.items() if v}) }")


def now() -> datetime:
    """The current time in UTC (the clock the services use)."""
    return datetime.now(UTC)


async def truncate(store: CassandraStore) -> None:
    """Empty every table of the suite's keyspace (the schema stays: migrated once)."""
    cql = store._cql
    rows = await cql.query(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name=%s",
        (KEYSPACE,),
        keyspace=None,
    )
    for row in rows:
        if row.table_name != "schema_migrations":
            await cql.query(f"TRUNCATE {KEYSPACE}.{row.table_name}", keyspace=None)


def spawn_stub() -> subprocess.Popen[bytes]:
    """Start the synthetic stub upstream (`alm stub-upstream --synthetic`) on STUB_PORT."""
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    with (STATE / "logs" / "stub-upstream.log").open("ab") as log:
        return subprocess.Popen(
            [*ALM, "stub-upstream", "--synthetic", "--port", str(STUB_PORT)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


async def stub_ready(timeout: float = 60.0) -> None:
    """Wait until the stub upstream answers (its fault mode switched off)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await stub_fault(None)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def stub_fault(spec: dict[str, object] | None) -> None:
    """Switch the stub upstream's fault mode on (`spec`, see services/stub/server.py) or off."""
    url = f"http://127.0.0.1:{STUB_PORT}/_stub/fault"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        if spec is None:
            async with http.delete(url) as resp:
                assert resp.status == 200
        else:
            async with http.post(url, json=spec) as resp:
                assert resp.status == 200, await resp.text()
