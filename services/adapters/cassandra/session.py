"""asyncio over the DataStax cassandra-driver: one connected session, futures bridged to the loop.

The driver runs its own I/O thread; `execute_async` returns a `ResponseFuture` whose callbacks
fire on that thread. `CqlSession.query` hands each result to the awaiting coroutine with
`loop.call_soon_threadsafe`, following pages as they arrive, so the event loop never blocks on
Cassandra. Only connecting and preparing (once, at start) run on an executor thread.

Consistency: LOCAL_QUORUM for reads and writes (with RF=3 in production a write is on two
replicas of the local data centre before it is acknowledged, and a read sees it; on the single
local node it is simply that node), LOCAL_SERIAL for the conditional inserts (LWT).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import namedtuple
from collections.abc import AsyncIterator, Hashable, Iterable, Sequence
from typing import Any, TypeAlias, TypeVar

import structlog
from cassandra import ConsistencyLevel, DriverException
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import (
    BatchStatement,
    BoundStatement,
    PreparedStatement,
    SimpleStatement,
    ValueSequence,
)

from services.adapters.cassandra.batching import (
    BATCH_SETTINGS,
    Batch,
    Batcher,
    BatchLimits,
    Binder,
    request,
)
from services.adapters.cassandra.retry import IdempotentRetry, idempotent
from services.adapters.cassandra.settings import CassandraConnection
from services.adapters.cassandra.window import Window, collect_pages, release, settle

log = structlog.get_logger("alm.cassandra")

T = TypeVar("T")
Row = Any  # the driver's named tuples
Call = tuple[str, Sequence[Any]]  # a prepared statement by name, and its parameters
Request: TypeAlias = Call | BoundStatement | BatchStatement  # what `run_many` sends

READ_KEYS = 50  # partition keys per `IN` read

RECONNECT_MAX = 10.0  # seconds between attempts to reach a node that is down, at most
PROTOCOL_VERSION = 5  # Cassandra 4.0+; pinned so the driver does not probe and downgrade


_TABLE = re.compile(r"\b(FROM|INTO|UPDATE)\s+([a-z_][a-z0-9_]*)\b(?!\.)")


_ROW_TYPES: dict[tuple[str, ...], Any] = {}


def row_factory(colnames: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Row]:
    """Rows as named tuples, like the driver's default factory, but with one class per column
    list for the life of the process: the default builds a new namedtuple class for every
    result, which was the largest single cost of reading small results."""
    key = tuple(colnames)
    cls = _ROW_TYPES.get(key)
    if cls is None:
        names = [re.sub(r"\W", "", name) or "col" for name in key]
        cls = _ROW_TYPES[key] = namedtuple("Row", names, rename=True)
    return [cls(*row) for row in rows]


class SchemaMissing(RuntimeError):
    """The keyspace or its tables do not exist yet: run `alm db migrate`."""


class CqlSession:
    """A lazily connected driver session with asyncio-friendly execution."""

    def __init__(
        self,
        hosts: Sequence[str],
        port: int,
        keyspace: str,
        request_timeout: float = 20.0,
        max_in_flight: int = 256,
        connection: CassandraConnection | None = None,
    ) -> None:
        self.hosts = list(hosts)
        self.port = port
        self.keyspace = keyspace
        self.request_timeout = request_timeout
        self.max_in_flight = max_in_flight
        # credentials and TLS; None: neither (a local node)
        self.connection = connection if connection is not None else CassandraConnection()
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}
        self._binders: dict[str, Binder] = {}
        self._lock = threading.Lock()
        self.batch_limits = BatchLimits()  # read from the cluster when connecting

    # -- lifecycle ----------------------------------------------------------------------

    def _new_cluster(self) -> Cluster:
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
            request_timeout=self.request_timeout,
            row_factory=row_factory,
            retry_policy=IdempotentRetry(),  # a timed-out read or fixed write is sent again
        )
        conn = self.connection
        auth = None
        if conn.username is not None and conn.password is not None:
            auth = PlainTextAuthProvider(username=conn.username, password=conn.password)
        # With an ssl_context the driver verifies each node's certificate against the address
        # it connects to (its IP: contact points are resolved, peers come from system.peers),
        # passing it as server_hostname when check_hostname is on; no ssl_options needed.
        return Cluster(
            self.hosts,
            port=self.port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=10,
            # A node that was down (stopped, paused, restarted) is tried again within seconds,
            # not the driver's default of up to 10 minutes: services recover by themselves.
            reconnection_policy=ExponentialReconnectionPolicy(0.5, RECONNECT_MAX),
            protocol_version=PROTOCOL_VERSION,
            auth_provider=auth,
            ssl_context=conn.ssl_context(),
        )

    def _connect_sync(self) -> Session:
        with self._lock:
            if self._session is None:
                self._cluster = self._new_cluster()
                session = self._cluster.connect()
                self.batch_limits = _read_batch_limits(session)
                self._session = session
            return self._session

    async def session(self) -> Session:
        """The connected session (connecting on first use, off the event loop)."""
        if self._session is not None:
            return self._session
        return await asyncio.to_thread(self._connect_sync)

    async def check_keyspace(self) -> None:
        """SchemaMissing unless the keyspace exists (it is never `USE`d: every statement names
        it, via the protocol v5 per-request keyspace)."""
        rows = await self.query(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name=%s",
            (self.keyspace,),
            keyspace=None,
        )
        if not rows:
            raise SchemaMissing(
                f"Cassandra keyspace {self.keyspace!r} does not exist: run `alm db migrate`"
            )

    async def schema_change(self, statements: Sequence[str]) -> None:
        """Run DDL in the keyspace. Schema statements ignore the per-request keyspace, so they
        run on a short-lived connection that `USE`s it (never the one preparing statements)."""

        def run() -> None:
            cluster = self._new_cluster()
            try:
                ddl = cluster.connect(self.keyspace)
                for statement in statements:
                    ddl.execute(statement, timeout=120)
            finally:
                cluster.shutdown()

        await asyncio.to_thread(run)

    async def prepare(self, statements: dict[str, str]) -> None:
        """Prepare named statements once (after the keyspace is in use)."""
        session = await self.session()

        def run() -> dict[str, PreparedStatement]:
            prepared = {}
            for name, cql in statements.items():  # bound statements inherit idempotence
                prepared[name] = session.prepare(self.qualify(cql))
                prepared[name].is_idempotent = idempotent(cql)  # sent again on a timeout
            return prepared

        self._prepared.update(await asyncio.to_thread(run))
        self._binders.update(
            {name: Binder(self._prepared[name], self._table_of(name)) for name in statements}
        )

    def _table_of(self, name: str) -> Any | None:
        """The driver's schema metadata of the table statement `name` writes (None if unknown:
        batches are then sized by an estimate that can only be larger)."""
        columns = self._prepared[name].column_metadata or ()
        keyspace = self._cluster.metadata.keyspaces.get(self.keyspace) if self._cluster else None
        if not columns or keyspace is None:
            return None
        return keyspace.tables.get(columns[0].table_name)

    def qualify(self, cql: str) -> str:
        """`cql` with its table names prefixed by the keyspace (a prepared statement must name
        it: Cassandra warns when one relies on a session or request keyspace)."""
        return _TABLE.sub(lambda m: f"{m[1]} {self.keyspace}.{m[2]}", cql)

    def stmt(self, name: str) -> PreparedStatement:
        """A prepared statement by name."""
        return self._prepared[name]

    async def close(self) -> None:
        """Shut the driver down (its threads and connections)."""
        cluster, self._cluster, self._session = self._cluster, None, None
        self._prepared, self._binders = {}, {}
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    # -- execution ----------------------------------------------------------------------

    async def pages(
        self,
        statement: Any,
        params: Sequence[Any] | None = None,
        fetch_size: int = 5000,
        keyspace: str | None = "",
    ) -> AsyncIterator[list[Row]]:
        """Execute one statement and yield its result page by page (fetched on demand).

        A CQL string runs in this session's keyspace unless `keyspace` says otherwise (None:
        no keyspace, for system tables and creating the keyspace itself)."""
        session = await self.session()
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
        if isinstance(statement, PreparedStatement):
            bound = statement.bind(params or ())
            bound.fetch_size = fetch_size
            future = session.execute_async(bound)
        else:
            ks = self.keyspace if keyspace == "" else keyspace
            simple = SimpleStatement(statement, fetch_size=fetch_size, keyspace=ks)
            future = session.execute_async(simple, params)

        def on_page(page: Iterable[Row] | None) -> None:
            try:
                item: tuple[bool, Any] = (True, list(page or ()))
            except Exception as exc:  # never let a driver-thread failure leave us waiting
                item = (False, exc)
            loop.call_soon_threadsafe(arrived.put_nowait, item)

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(arrived.put_nowait, (False, exc))

        future.add_callbacks(on_page, on_error)
        try:  # released at the last page, an error, or once the reader stopped
            while True:
                ok, value = await arrived.get()
                if not ok:
                    raise value
                yield value
                if not future.has_more_pages:
                    return
                future.start_fetching_next_page()
        finally:
            release(future)

    def _submit(
        self, session: Session, statement: Any, params: Sequence[Any] | None = None
    ) -> asyncio.Future[list[Row]]:
        """Send one statement; a loop future resolved with every row of every page."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Row]] = loop.create_future()
        future = session.execute_async(statement, params)

        def deliver(rows: list[Row] | None, exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(settle, done, rows, exc)

        collect_pages(future, deliver)
        return done

    async def query(
        self, statement: Any, params: Sequence[Any] | None = None, keyspace: str | None = ""
    ) -> list[Row]:
        """Execute one CQL string; every row of every page (see `pages` for `keyspace`)."""
        session = await self.session()
        ks = self.keyspace if keyspace == "" else keyspace
        return await self._submit(session, SimpleStatement(statement, keyspace=ks), params)

    async def run(self, name: str, params: Sequence[Any]) -> list[Row]:
        """Execute a prepared statement by name."""
        return await self._submit(await self.session(), self._prepared[name], params)

    async def run_many(self, calls: Iterable[Request]) -> list[list[Row]]:
        """Execute prepared statements (or bound statements and batches, see `batches`), at
        most `max_in_flight` at once; results in order. On a failure nothing more is sent, what
        was sent is awaited, the first error is raised."""
        todo = list(calls)
        if not todo:
            return []
        return await Window(self, await self.session(), todo).run()

    def batches(self, calls: Iterable[Call]) -> list[BoundStatement | Batch]:
        """Writes grouped into UNLOGGED batches by replica set, in order within each group.

        The driver's per-request CPU (building, sending and settling a request) is what limits
        a Python writer, so many small rows go as one request. Grouping by the replicas of each
        row's partition (what the Spark connector calls grouping by replica set) means the
        coordinator, chosen token-aware from the batch's first row, owns every row of the batch:
        no extra hop, no coordinator fan-out. A batch holds at most `batch_limits` partitions
        and bytes as the server counts them (under the cluster's warning thresholds,
        services/adapters/cassandra/batching.py); `run_many` splits one the server refuses
        for its size anyway. Rows of one partition in
        a batch are applied atomically; across partitions an unlogged batch promises nothing
        more than separate writes, so callers order dependent writes in separate calls
        (history before state). The same row twice in one batch would get one timestamp (the
        larger value winning, not the later): callers pass each row once."""
        groups: dict[Hashable, Batcher] = {}
        one_node = self._one_node()
        binders = self._binders
        for name, params in calls:
            binder = binders[name]
            bound = binder(params)
            replicas = None if one_node else self._replicas(bound.routing_key)
            group = groups.get(replicas)
            if group is None:
                group = groups[replicas] = Batcher(self.batch_limits)
            group.add(bound, binder.cost(bound.values), binder.table)
        return [request(chunk) for group in groups.values() for chunk in group.finish()]

    def read_groups(self, name: str, keys: Sequence[Sequence[Any]]) -> list[list[int]]:
        """Indexes of `keys` (parameters of the single-partition statement `name`) grouped by
        replica set, at most READ_KEYS a group: one `IN` read per group."""
        if self._one_node():  # every key has the same replica: no need to route each one
            return [
                list(range(i, min(i + READ_KEYS, len(keys))))
                for i in range(0, len(keys), READ_KEYS)
            ]
        groups: dict[Hashable, list[int]] = {}
        for index, params in enumerate(keys):
            routing = self._prepared[name].bind(params).routing_key
            groups.setdefault(self._replicas(routing), []).append(index)
        return [
            group[start : start + READ_KEYS]
            for group in groups.values()
            for start in range(0, len(group), READ_KEYS)
        ]

    def bound_in(self, name: str, params: Sequence[Any], routing_of: Call) -> BoundStatement:
        """`name` (an `IN` read) bound to `params`, routed to the replicas of the partition of
        `routing_of` (the driver cannot route an `IN` on the partition key by itself)."""
        bound = _Routed(self._prepared[name])
        bound.bind(params)
        bound.fixed_key = self._prepared[routing_of[0]].bind(routing_of[1]).routing_key
        return bound

    def _one_node(self) -> bool:
        return self._cluster is not None and len(self._cluster.metadata.all_hosts()) == 1

    def _replicas(self, routing_key: bytes | None) -> Hashable:
        if routing_key is None or self._cluster is None:
            return None
        return tuple(self._cluster.metadata.get_replicas(self.keyspace, routing_key))


def _read_batch_limits(session: Session) -> BatchLimits:
    """The batch limits under the connected node's batch thresholds (Cassandra 4.0+
    `system_views.settings`), read once when connecting; Cassandra's defaults where it cannot
    tell."""
    try:
        rows = session.execute(
            "SELECT name, value FROM system_views.settings WHERE name IN %s",
            (ValueSequence(BATCH_SETTINGS),),
        )
    except DriverException as exc:  # no virtual tables (before 4.0), or not allowed
        log.warning("cassandra_batch_limits_unread", error=str(exc))
        return BatchLimits()
    return BatchLimits.from_settings({r.name: r.value for r in rows})


class _Routed(BoundStatement):  # type: ignore[misc]
    """A bound statement routed by a partition key given to it: the key of an `IN` read's
    first partition (its own would be the serialized list)."""

    fixed_key: bytes | None = None

    @property
    def routing_key(self) -> bytes | None:
        return self.fixed_key
