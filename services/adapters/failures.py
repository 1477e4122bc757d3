"""Which failures are worth retrying: every adapter's exceptions sorted in one place.

- permanent: the same request can never succeed (a row or a record too large for the server, a
  value the schema refuses, an event that breaks its JSON Schema). Retrying would block what
  comes after it forever; the item goes to `alm.deadletter` with the reason instead.
- unavailable: a dependency is down, slow, overloaded or restarting (timeouts, unavailable
  replicas, refused connections, broker errors). Retried with backoff; the API answers 503.

Anything else (a bug, an error nobody foresaw) is retried like an unavailable dependency, with
backoff, and logged with its traceback: dead-lettering it would drop data for a fault of ours.
"""

from __future__ import annotations

import sqlite3
import warnings
from functools import cache

import cassandra
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException

from services.core.schema_check import SchemaViolation


@cache
def _permanent_types() -> tuple[type[BaseException], ...]:
    from aiokafka import errors as aio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
        from kafka import errors as kafka

    return (
        SchemaViolation,  # an event that does not match its JSON Schema
        ValueError,  # a value our code or a driver cannot encode (UnicodeError included)
        TypeError,  # a value of the wrong type for its column (the binder's refusal)
        ArithmeticError,  # a number out of range for its type
        cassandra.InvalidRequest,  # e.g. "Batch too large" alone, a key over 64 KiB
        aio.MessageSizeTooLargeError,
        aio.RecordTooLargeError,
        kafka.MessageSizeTooLargeError,
        sqlite3.DataError,  # e.g. "string or blob too big"
        sqlite3.IntegrityError,
    )


@cache
def _unavailable_types() -> tuple[type[BaseException], ...]:
    from aiokafka import errors as aio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import errors as kafka

    return (
        TimeoutError,  # asyncio's and the socket's
        OSError,  # connection refused or reset
        cassandra.DriverException,  # timeouts, unavailable replicas, overload, failures
        NoHostAvailable,
        ConnectionException,
        aio.KafkaError,
        kafka.KafkaError,
        sqlite3.OperationalError,  # "database is locked"
    )


def permanent(exc: BaseException) -> bool:
    """Whether retrying the same item can never succeed (it is dead-lettered instead)."""
    return isinstance(exc, _permanent_types())


def unavailable(exc: BaseException) -> bool:
    """Whether a dependency (store, bus) is down, slow or overloaded: try again later."""
    return not permanent(exc) and isinstance(exc, _unavailable_types())


def describe(exc: BaseException) -> str:
    """A one-line reason for a dead letter or a log: the exception's type and message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
