"""The Crossref catalogue client: a publisher, the size of a window of its works, and a page of
them, over the shared HTTP layer (the `crossref` source's rate limit, which adapts to
Crossref's `x-rate-limit-*` headers; its User-Agent with the contact address).

The HTTP layer this client is given must not retry by itself (`HttpSettings(retries=0)`): a
page asked for with a cursor moves the cursor on the server even if the answer is lost, so
asking again with the same cursor would skip a page unseen. Pages are therefore asked for once,
and the import decides (services/catalogue_import.py); the other calls (a member, a prefix, a
count) are idempotent and retried here.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from services.core.catalogue_state import Scope, ScopeKind, Window
from services.core.events import FetchError
from services.core.publishers import Publisher
from services.core.sources import SourceConfig
from services.fetchers.base import PayloadError, Source, UpstreamRequest
from services.fetchers.base import UpstreamResponse as Response
from services.fetchers.crossref_catalogue import (
    WorksPage,
    count_request,
    describe,
    member_request,
    parse_member,
    parse_page,
    parse_prefix,
    prefix_request,
    refused_cursor,
    works_request,
)
from services.fetchers.http import HttpCaller

T = TypeVar("T")
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


class CatalogueError(Exception):
    """A catalogue call that failed. `retryable`: asking again later may work; `unsent`: the
    upstream surely did not act on it (a 429, our own rate limit), so a cursor is unmoved."""

    def __init__(self, message: str, retryable: bool = False, unsent: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.unsent = unsent


class NotInCrossref(CatalogueError):
    """Crossref has no such member or prefix."""


class CursorRefused(CatalogueError):
    """Crossref refused the cursor (expired after five minutes unused, or unreadable): the
    window must start again from `cursor=*`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class CatalogueClient:
    """Catalogue calls to Crossref for one import."""

    def __init__(
        self,
        caller: HttpCaller,
        source: Source,
        config: SourceConfig,
        attempts: int = 4,
        backoff: float = 2.0,
    ) -> None:
        self.caller = caller
        self.source = source
        self.config = config
        self.attempts = attempts  # tries of an idempotent call
        self.backoff = backoff  # seconds before its second try, doubled after each

    async def publisher(self, scope: Scope, now: datetime) -> Publisher:
        """The member whose works `scope` names (a prefix is looked up to find it)."""
        member_id = scope.value
        if scope.kind is ScopeKind.PREFIX:
            answer = await self._idempotent(prefix_request(scope.value, self.config))
            if answer.status == 404:
                raise NotInCrossref(f"Crossref knows no DOI prefix {scope.value}")
            member_id = _parsed(parse_prefix, answer)
        answer = await self._idempotent(member_request(member_id, self.config))
        if answer.status == 404:
            raise NotInCrossref(f"Crossref knows no member {member_id}")
        return _parsed(lambda r: parse_member(r, now), answer)

    async def count(self, scope: Scope, window: Window) -> int:
        """How many of the scope's works were indexed in `window`."""
        answer = await self._idempotent(count_request(scope, window, self.config))
        return _parsed(parse_page, answer).total

    async def page(self, scope: Scope, window: Window, cursor: str, rows: int) -> WorksPage:
        """One page of the works indexed in `window`, asked for once (see the module's note)."""
        request = works_request(scope, window, cursor, rows, self.config)
        answer = await self._send(request)
        if refused_cursor(answer, cursor):
            raise CursorRefused(f"Crossref refused the cursor ({describe(answer)})")
        if answer.status == 404:
            raise NotInCrossref(f"Crossref has no works route for {scope.key}")
        _check(answer)
        return _parsed(parse_page, answer)

    def pause_left(self) -> float:
        """Seconds until Crossref allows the next call (its Retry-After, our rate limit)."""
        return max(0.0, self.caller.gate(self.source).limiter.paused_until - time.monotonic())

    async def _send(self, request: UpstreamRequest) -> Response:
        reply = await self.caller.call(self.source, request)
        if isinstance(reply, FetchError):
            unsent = reply.kind == "rate_limited"
            raise CatalogueError(f"{reply.kind}: {reply.message}", reply.retryable, unsent)
        return reply

    async def _idempotent(self, request: UpstreamRequest) -> Response:
        """Send a call that may be repeated; transient failures are retried with backoff."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                answer = await self._send(request)
                if answer.status != 404:
                    _check(answer)
                return answer
            except CatalogueError as exc:
                if not exc.retryable or attempt == self.attempts:
                    raise
            await asyncio.sleep(delay + random.uniform(0, delay / 2))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


def _check(answer: Response) -> None:
    """CatalogueError for an answer that is not a success (transient ones retryable)."""
    if 200 <= answer.status < 300:
        return
    transient = answer.status in _TRANSIENT
    raise CatalogueError(
        f"Crossref answered {describe(answer)}",
        retryable=transient,
        unsent=answer.status == 429,
    )


def _parsed(parse: Callable[[Response], T], answer: Response) -> T:
    """`parse(answer)`, a PayloadError becoming a retryable CatalogueError (a truncated or
    garbled answer is usually a passing fault)."""
    try:
        return parse(answer)
    except PayloadError as exc:
        raise CatalogueError(f"unexpected answer from Crossref: {exc}", retryable=True) from exc
