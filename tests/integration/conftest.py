"""Fixtures for the integration suite: the real Kafka and Cassandra from deploy/local.

Everything is skipped unless ALM_INTEGRATION is set (bin/test sets it after
`deploy/local/infra-up`). With it set, the servers must answer: a run that cannot reach them
fails instead of passing quietly. Each run gets its own keyspace and topic/group prefix, so
runs never see each other's data; both are removed at the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pytest

KAFKA = os.environ.get("ALM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
CASSANDRA_HOST = os.environ.get("ALM_CASSANDRA_HOSTS", "127.0.0.1").split(",")[0]
CASSANDRA_PORT = int(os.environ.get("ALM_CASSANDRA_PORT", "9042"))


@dataclass(frozen=True)
class Infra:
    """Where the servers are and this run's private names."""

    kafka: str
    cassandra_host: str
    cassandra_port: int
    keyspace: str
    prefix: str  # topics and consumer groups of this run start with it


def _cluster(infra: Infra) -> Any:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(), request_timeout=60)
    return Cluster(
        [infra.cassandra_host],
        port=infra.cassandra_port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=10,
    )


def _check_servers(infra: Infra) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
        from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=infra.kafka, request_timeout_ms=10_000)
        admin.list_topics()
        admin.close()
    except Exception as exc:
        pytest.fail(f"ALM_INTEGRATION is set but Kafka at {infra.kafka} does not answer: {exc}")
    try:
        cluster = _cluster(infra)
        cluster.connect().execute("SELECT release_version FROM system.local")
        cluster.shutdown()
    except Exception as exc:
        pytest.fail(
            f"ALM_INTEGRATION is set but Cassandra at {infra.cassandra_host}:"
            f"{infra.cassandra_port} does not answer: {exc}"
        )


def _cleanup_keyspace(infra: Infra) -> None:
    """Drop `infra.keyspace` (a test's own keyspace, at its end)."""
    cluster = _cluster(infra)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {infra.keyspace}")
    finally:
        cluster.shutdown()


def _cleanup(infra: Infra) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaAdminClient

    cluster = _cluster(infra)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {infra.keyspace}")
    finally:
        cluster.shutdown()
    admin = KafkaAdminClient(bootstrap_servers=infra.kafka)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(infra.prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """The running servers (skips the test unless ALM_INTEGRATION is set)."""
    if not os.environ.get("ALM_INTEGRATION"):
        pytest.skip(
            "integration tests need Kafka and Cassandra: run deploy/local/infra-up, then set "
            "ALM_INTEGRATION=1 (bin/test does both)"
        )
    run = secrets.token_hex(4)
    found = Infra(KAFKA, CASSANDRA_HOST, CASSANDRA_PORT, f"alm_it_{run}", f"it{run}.")
    _check_servers(found)
    yield found
    if not os.environ.get("ALM_KEEP_TEST_DATA"):
        _cleanup(found)


@pytest.fixture(scope="session")
def cassandra_store(infra: Infra) -> Iterator[Any]:
    """This run's keyspace, migrated once for the session: a CassandraStore usable from any
    test's loop (the contract tests of every port over it share it)."""
    yield from migrated_store(infra)


def migrated_store(infra: Infra) -> Iterator[Any]:
    """A CassandraStore on `infra`'s keyspace, migrated, usable from any test's loop (a
    fixture's body: it yields the store, then closes it)."""
    from services.adapters.cassandra import CassandraStore

    store = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
    with ThreadPoolExecutor(1) as pool:  # its own loop: this fixture may be set up inside one
        pool.submit(asyncio.run, store.migrate()).result()
        yield store
        pool.submit(asyncio.run, store.close()).result()


def own_keyspace(infra: Infra, tag: str) -> Iterator[Any]:
    """`migrated_store` on a keyspace of the caller's own (a module's data apart from the
    session's), dropped afterwards."""
    mine = replace(infra, keyspace=f"{infra.keyspace}_{tag}{secrets.token_hex(3)}")
    yield from migrated_store(mine)
    _cleanup_keyspace(mine)
