"""The Cassandra adapter (distributed mode): CassandraStore composes one part per port over a
keyspace (store.py lists them); session.py is the asyncio session over the driver, batching.py
how writes are cut into batches, settings.py the connection's credentials and TLS."""

from services.adapters.cassandra.settings import CassandraConnection
from services.adapters.cassandra.store import CassandraStore

__all__ = ["CassandraConnection", "CassandraStore"]
