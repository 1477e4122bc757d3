"""Which failures are worth retrying, over a registry of exception types.

- permanent: the same request can never succeed (a row or a record too large for the server, a
  value the schema refuses, an event that breaks its JSON Schema). Retrying would block what
  comes after it forever; the item goes to `alm.deadletter` with the reason instead.
- unavailable: a dependency is down, slow, overloaded or restarting (timeouts, unavailable
  replicas, refused connections, broker errors). Retried with backoff; the API answers 503.

Anything else (a bug, an error nobody foresaw, an exception type no adapter registered) is
retried like an unavailable dependency, with backoff, and logged with its traceback:
dead-lettering it would drop data for a fault of ours.

The core knows Python's own types; each adapter family (SQLite, Cassandra, Kafka) registers its
driver's types (services/adapters/failures.py, `register_adapter_failures`, which bootstrap calls
before it builds a store or a bus). A family may register a loader instead of the types, so a
driver is imported when a failure is first classified, not when the process starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.core.schema_check import SchemaViolation

ExceptionTypes = tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class FailureTypes:
    """The exception types of one family, by kind."""

    permanent: ExceptionTypes = ()
    unavailable: ExceptionTypes = ()


Family = FailureTypes | Callable[[], FailureTypes]
"""The types themselves, or a loader that imports the driver and returns them."""

CORE_TYPES = FailureTypes(
    permanent=(
        SchemaViolation,  # an event that does not match its JSON Schema
        ValueError,  # a value our code or a driver cannot encode (UnicodeError included)
        TypeError,  # a value of the wrong type for its column (the binder's refusal)
        ArithmeticError,  # a number out of range for its type
    ),
    unavailable=(
        TimeoutError,  # asyncio's and the socket's
        OSError,  # connection refused or reset
    ),
)


class Failures:
    """A registry of exception types by kind; a type registered nowhere is unknown."""

    def __init__(self, *families: Family) -> None:
        self._families: list[Family] = []
        self._loaded: FailureTypes | None = None
        for family in families:
            self.register(family)

    def register(self, family: Family) -> None:
        """Add a family's types (registering the same family again changes nothing)."""
        if family not in self._families:
            self._families.append(family)
            self._loaded = None

    def _types(self) -> FailureTypes:
        if self._loaded is None:
            found = [f if isinstance(f, FailureTypes) else f() for f in self._families]
            self._loaded = FailureTypes(
                tuple(t for f in found for t in f.permanent),
                tuple(t for f in found for t in f.unavailable),
            )
        return self._loaded

    def permanent(self, exc: BaseException) -> bool:
        """Whether retrying the same item can never succeed (it is dead-lettered instead)."""
        return isinstance(exc, self._types().permanent)

    def unavailable(self, exc: BaseException) -> bool:
        """Whether a dependency (store, bus) is down, slow or overloaded: try again later."""
        return not self.permanent(exc) and isinstance(exc, self._types().unavailable)


FAILURES = Failures(CORE_TYPES)
"""The process's registry: the core's types, and what the adapters in use registered."""


def register(family: Family) -> None:
    """Register an adapter family's exception types in the process's registry."""
    FAILURES.register(family)


def permanent(exc: BaseException) -> bool:
    """Whether retrying the same item can never succeed (it is dead-lettered instead)."""
    return FAILURES.permanent(exc)


def unavailable(exc: BaseException) -> bool:
    """Whether a dependency (store, bus) is down, slow or overloaded: try again later."""
    return FAILURES.unavailable(exc)


def describe(exc: BaseException) -> str:
    """A one-line reason for a dead letter or a log: the exception's type and message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
