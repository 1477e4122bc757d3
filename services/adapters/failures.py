"""The adapters' exception types, sorted for services/core/failures.py: one family per driver.

`register_adapter_failures()` registers the three families in the process's registry; bootstrap
calls it before it builds a store or a bus (every entry point builds them there), and the tests'
conftest calls it for tests that build adapters themselves. Each family is registered as a
loader, so its driver is imported when a failure is first classified, as before.
"""

from __future__ import annotations

import warnings

from services.core.failures import FailureTypes, register


def sqlite_failures() -> FailureTypes:
    """SQLite's: a value too big or refused by a constraint, a locked database."""
    import sqlite3

    return FailureTypes(
        permanent=(
            sqlite3.DataError,  # e.g. "string or blob too big"
            sqlite3.IntegrityError,
        ),
        unavailable=(sqlite3.OperationalError,),  # "database is locked"
    )


def cassandra_failures() -> FailureTypes:
    """The Cassandra driver's: a refused request, timeouts and unreachable nodes."""
    import cassandra
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException

    return FailureTypes(
        permanent=(cassandra.InvalidRequest,),  # e.g. "Batch too large" alone, a key over 64 KiB
        unavailable=(
            cassandra.DriverException,  # timeouts, unavailable replicas, overload, failures
            NoHostAvailable,
            ConnectionException,
        ),
    )


def kafka_failures() -> FailureTypes:
    """aiokafka's and kafka-python's: a record too large, any other broker error."""
    from aiokafka import errors as aio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
        from kafka import errors as kafka

    return FailureTypes(
        permanent=(
            aio.MessageSizeTooLargeError,
            aio.RecordTooLargeError,
            kafka.MessageSizeTooLargeError,
        ),
        unavailable=(aio.KafkaError, kafka.KafkaError),
    )


def register_adapter_failures() -> None:
    """Register every adapter family's exception types (idempotent)."""
    for family in (sqlite_failures, cassandra_failures, kafka_failures):
        register(family)
