"""Access tokens of sources with an auth step (OAuth2 client credentials): fetched once per
source, shared by all its calls, renewed when they expire or the upstream answers 401.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.core.events import FetchError
from services.core.sources import SourceConfig
from services.fetchers.base import (
    AccessToken,
    PayloadError,
    Source,
    UpstreamRequest,
    UpstreamResponse,
)

Sender = Callable[[Source, UpstreamRequest], Awaitable[UpstreamResponse | FetchError]]


@dataclass(frozen=True, slots=True)
class _Entry:
    auth: UpstreamRequest
    token: AccessToken
    expires_at: float | None  # monotonic seconds; None = until a 401


class TokenCache:
    """One token per source; concurrent callers wait for a single token call."""

    def __init__(self, margin: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._margin = margin
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetched: dict[str, int] = {}  # token calls per source

    async def get(
        self, source: Source, auth: UpstreamRequest, send: Sender
    ) -> AccessToken | FetchError:
        """The cached token of `source` for `auth`, else a fresh one from sending `auth`."""
        lock = self._locks.setdefault(source.name, asyncio.Lock())
        async with lock:
            entry = self._entries.get(source.name)
            if entry is not None and entry.auth == auth and not self._expired(entry):
                return entry.token
            self.fetched[source.name] = self.fetched.get(source.name, 0) + 1
            token = token_from(source, await send(source, auth))
            if isinstance(token, AccessToken):
                expires = None
                if token.expires_in is not None:
                    expires = self._clock() + max(0.0, token.expires_in - self._margin)
                self._entries[source.name] = _Entry(auth, token, expires)
            return token

    def drop(self, source: Source, token: AccessToken) -> None:
        """Forget `token` (the upstream refused it); the next call fetches a new one."""
        entry = self._entries.get(source.name)
        if entry is not None and entry.token == token:
            del self._entries[source.name]

    def _expired(self, entry: _Entry) -> bool:
        return entry.expires_at is not None and entry.expires_at <= self._clock()


def token_from(source: Source, reply: UpstreamResponse | FetchError) -> AccessToken | FetchError:
    """The token an auth call's reply carries, or why there is none."""
    if isinstance(reply, FetchError):
        return reply
    if reply.status in (400, 401, 403):
        message = f"{source.name} refused the client credentials (HTTP {reply.status})"
        return FetchError("config", message, retryable=False, http_status=reply.status)
    if not 200 <= reply.status < 300:
        message = f"{source.name} token call answered HTTP {reply.status}"
        return FetchError("http", message, retryable=True, http_status=reply.status)
    try:
        return source.parse_auth(reply)
    except PayloadError as exc:
        return FetchError("parse", f"malformed {source.name} token response: {exc}", True)


def client_credentials(config: SourceConfig) -> tuple[str, str] | None:
    """An OAuth2 client id and secret: `extra` client_id/client_secret, or api_key `id:secret`."""
    client_id = config.extra.get("client_id")
    secret = config.extra.get("client_secret")
    if client_id and secret:
        return client_id, secret
    if config.api_key and ":" in config.api_key:
        key_id, _, key_secret = config.api_key.partition(":")
        if key_id and key_secret:
            return key_id, key_secret
    return None


def basic_auth(user: str, password: str) -> str:
    """An HTTP Basic `Authorization` header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
