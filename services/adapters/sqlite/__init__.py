"""The embedded mode's SQLite adapters, one module a port; `SqliteStore` composes them."""

from services.adapters.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
