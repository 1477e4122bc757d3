"""What the stores kept beside the main one (API keys, webhooks, publishers, data-quality
checks) share: the CassandraStore's session and keyspace, and statements of their own,
prepared once, on first use."""

from __future__ import annotations

from services.adapters.cassandra.session import CqlSession
from services.adapters.cassandra.store import CassandraStore


class Extension:
    """A store over `store`'s keyspace with its own `statements` (name -> CQL)."""

    def __init__(self, store: CassandraStore, statements: dict[str, str]) -> None:
        self.store = store
        self._statements = statements
        self._prepared = False

    async def _cql(self) -> CqlSession:
        """The session, with this store's statements prepared."""
        cql = await self.store.session()
        if not self._prepared:
            await cql.prepare(self._statements)
            self._prepared = True
        return cql
