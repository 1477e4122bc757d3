"""Cassandra adapter of the PublisherStore port (services/core/publishers.py), in the keyspace of
the CassandraStore it is given (migration 007): `publishers` and `catalogue_imports` hold one
JSON record per publisher and per import scope (small tables, read whole for the lists), and
`publisher_works` lists each publisher's works in work-id order over 16 shards, like
`work_index` (a page merges the shards; a count reads them: O(the publisher's works), for
listings). An index entry is only served if the work still names that publisher."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

from services.adapters.cassandra.extension import Extension
from services.adapters.cassandra.rows import SHARDS
from services.adapters.cassandra.store import CassandraStore
from services.core.catalogue_state import ImportState, Scope
from services.core.publishers import Publisher
from services.core.works import Work

STATEMENTS: dict[str, str] = {
    "publisher_put": "INSERT INTO publishers (member_id, record, updated_at) VALUES (?,?,?)",
    "publisher_get": "SELECT record FROM publishers WHERE member_id=?",
    "publisher_all": "SELECT record FROM publishers",
    "import_put": "INSERT INTO catalogue_imports (scope, member_id, state, updated_at)"
    " VALUES (?,?,?,?)",
    "import_get": "SELECT state FROM catalogue_imports WHERE scope=?",
    "import_all": "SELECT state FROM catalogue_imports",
    "pubwork_put": "INSERT INTO publisher_works (publisher_id, shard, work_id) VALUES (?,?,?)",
    "pubwork_del": "DELETE FROM publisher_works WHERE publisher_id=? AND shard=? AND work_id=?",
    "pubwork_page": "SELECT work_id FROM publisher_works WHERE publisher_id=? AND shard=? LIMIT ?",
    "pubwork_after": "SELECT work_id FROM publisher_works"
    " WHERE publisher_id=? AND shard=? AND work_id > ? LIMIT ?",
    "pubwork_count": "SELECT count(*) FROM publisher_works WHERE publisher_id=? AND shard=?",
}


def _shard(work_id: str) -> int:
    return zlib.crc32(work_id.encode()) % SHARDS


class CassandraPublishers(Extension):
    """Publishers, their imports and their works in the distributed mode's keyspace."""

    def __init__(self, store: CassandraStore) -> None:
        super().__init__(store, STATEMENTS)

    async def put_publisher(self, publisher: Publisher) -> None:
        """Store `publisher` (replacing what was known of it)."""
        cql = await self._cql()
        record = json.dumps(publisher.to_dict())
        await cql.run("publisher_put", (publisher.member_id, record, self.store.clock()))

    async def get_publisher(self, member_id: str) -> Publisher | None:
        """The publisher with this Crossref member id."""
        rows = await (await self._cql()).run("publisher_get", (member_id,))
        return Publisher.from_dict(json.loads(rows[0].record)) if rows else None

    async def list_publishers(self) -> list[Publisher]:
        """Every publisher, by name."""
        rows = await (await self._cql()).run("publisher_all", ())
        found = [Publisher.from_dict(json.loads(r.record)) for r in rows]
        return sorted(found, key=lambda p: (p.name.casefold(), p.member_id))

    async def put_import(self, state: ImportState) -> None:
        """Store the state of the import of `state.scope`."""
        cql = await self._cql()
        record = json.dumps(state.to_dict())
        await cql.run("import_put", (state.scope.key, state.member_id, record, self.store.clock()))

    async def get_import(self, scope: Scope) -> ImportState | None:
        """The latest import of `scope`, complete or not."""
        rows = await (await self._cql()).run("import_get", (scope.key,))
        return ImportState.from_dict(json.loads(rows[0].state)) if rows else None

    async def list_imports(self) -> list[ImportState]:
        """The latest import of every scope."""
        rows = await (await self._cql()).run("import_all", ())
        found = [ImportState.from_dict(json.loads(r.state)) for r in rows]
        return sorted(found, key=lambda s: s.scope.key)

    async def index_publisher_works(
        self, add: Sequence[tuple[str, str]], remove: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Add and remove (publisher id, work id) entries, batched by replica set."""
        cql = await self._cql()
        calls = [("pubwork_del", (p, _shard(w), w)) for p, w in remove]
        calls += [("pubwork_put", (p, _shard(w), w)) for p, w in add]
        await cql.run_many(cql.batches(calls))

    async def publisher_works(self, publisher_id: str, offset: int, limit: int) -> list[Work]:
        """A page of the publisher's works in work-id order (the shards merged)."""
        cql = await self._cql()
        pages = await cql.run_many(
            ("pubwork_page", (publisher_id, s, offset + limit)) for s in range(SHARDS)
        )
        ids = sorted(r.work_id for rows in pages for r in rows)[offset : offset + limit]
        found = await self.store.get_works(ids)
        return [found[w] for w in ids if w in found and found[w].publisher_id == publisher_id]

    async def publisher_works_after(
        self, publisher_id: str, after: str | None, limit: int
    ) -> tuple[list[Work], str | None]:
        """A keyset page: `limit` ids after `after` from each shard, merged, the first `limit`
        kept (16 x `limit` rows read however deep the page); an index entry whose work now
        names another publisher is skipped, but the next page still goes on after it."""
        cql = await self._cql()
        pages = await cql.run_many(
            ("pubwork_after", (publisher_id, s, after or "", limit)) for s in range(SHARDS)
        )
        ids = sorted(r.work_id for rows in pages for r in rows)[:limit]
        found = await self.store.get_works(ids)
        works = [found[w] for w in ids if w in found and found[w].publisher_id == publisher_id]
        return works, ids[-1] if len(ids) == limit else None

    async def count_publisher_works(self, publisher_id: str) -> int:
        """How many works the index lists for the publisher."""
        cql = await self._cql()
        counts = await cql.run_many(("pubwork_count", (publisher_id, s)) for s in range(SHARDS))
        return sum(int(rows[0][0]) for rows in counts)
