"""The API replica's view of the key store: each key id read at most once per `ttl` seconds.

A key created, changed or revoked by another replica or by `alm keys` is seen here within
`ttl` (ALM_API_KEY_CACHE_SECONDS, default 10 s): that is the bound on how long a revoked key
keeps working. Ids no key has are remembered too (a client sending a wrong key again and again
costs one read per `ttl`); concurrent requests for one id share one read, which is given up
after `read_timeout` seconds (a store that hangs fails the waiting requests with TimeoutError,
the API's JSON 503, and the next request reads again instead of joining a read that never
ends); at most `max_entries` ids are kept, the oldest dropped first.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from services.core.keys import ApiKey, KeyStore


class KeyCache:
    """Keys by id, read through from a KeyStore."""

    def __init__(
        self,
        keys: KeyStore,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
        read_timeout: float = 10.0,
    ) -> None:
        self.keys = keys
        self.ttl = ttl
        self.read_timeout = read_timeout
        self._clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[ApiKey | None, float]] = OrderedDict()
        self._loading: dict[str, asyncio.Task[ApiKey | None]] = {}

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id as the store had it at most `ttl` seconds ago."""
        entry = self._entries.get(key_id)
        if entry is not None and self._clock() < entry[1]:
            return entry[0]
        task = self._loading.get(key_id)
        if task is None:
            task = asyncio.create_task(self._load(key_id))
            self._loading[key_id] = task
            task.add_done_callback(lambda done: self._loaded(key_id, done))
        return await asyncio.shield(task)

    async def _load(self, key_id: str) -> ApiKey | None:
        async with asyncio.timeout(self.read_timeout):
            key = await self.keys.get_key(key_id)
        self.put(key_id, key)
        return key

    def _loaded(self, key_id: str, task: asyncio.Task[ApiKey | None]) -> None:
        self._loading.pop(key_id, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone away

    def put(self, key_id: str, key: ApiKey | None) -> None:
        """Remember `key` for `key_id` (what this replica itself just wrote)."""
        self._entries.pop(key_id, None)
        self._entries[key_id] = (key, self._clock() + self.ttl)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
