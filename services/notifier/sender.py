"""Sending one webhook delivery over HTTP: signed, timed, and classified by its answer.

Receivers are outside the deployment's trust: redirects are not followed, at most 1 KiB of an
error body is read, and unless ALM_WEBHOOK_ALLOW_PRIVATE is set, a receiver on a loopback,
private, link-local or otherwise non-public address is refused, checked on the addresses the
name resolves to when connecting (a name that resolves to a public address at registration and
a private one later gets nowhere either).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from services.core.delivery import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    HOOK_HEADER,
    SIGNATURE_HEADER,
    is_public,
    literal_private,
    outcome_of,
    signature_header,
)
from services.core.text import one_line
from services.core.webhooks import Hook, Outcome

ERROR_BODY = 1024  # bytes of a failed answer's body kept as the error
ERROR_TEXT = 300  # characters of an error kept in the log


class PrivateAddress(OSError):
    """The receiver's address is not a public one (refused unless allowed)."""


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, keeping only public addresses (PrivateAddress if none is left)."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The public addresses `host` resolves to."""
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if is_public(r["host"])]
        if not kept:
            raise PrivateAddress(f"{host} resolves to no public address")
        return kept

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class Sent:
    """What one attempt came to."""

    outcome: Outcome
    status: int | None = None
    error: str | None = None
    duration: float = 0.0
    retry_after: float | None = None  # seconds the receiver asked to wait (429, 503)


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class Sender:
    """Delivers signed change events to receivers; one HTTP session for all hooks."""

    def __init__(self, timeout: float, allow_private: bool, user_agent: str) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        resolver = None if self.allow_private else PublicResolver()
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=32, resolver=resolver)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": self.user_agent},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def headers(self, hook: Hook, event_id: str, body: bytes, attempt: int) -> dict[str, str]:
        """The headers of one attempt, signed now."""
        return {
            "Content-Type": "application/json",
            EVENT_HEADER: "metric_changed",
            EVENT_ID_HEADER: event_id,
            HOOK_HEADER: hook.hook_id,
            ATTEMPT_HEADER: str(attempt),
            SIGNATURE_HEADER: signature_header(hook.secret, int(time.time()), body),
        }

    async def send(self, hook: Hook, event_id: str, body: bytes, attempt: int) -> Sent:
        """POST `body` to the hook's URL and classify what happened."""
        assert self._session is not None, "use `async with Sender(...)`"
        if not self.allow_private and (why := literal_private(hook.url)):
            return Sent(Outcome.REFUSED, error=f"refused: {why} (ALM_WEBHOOK_ALLOW_PRIVATE)")
        started = time.perf_counter()
        try:
            async with self._session.post(
                hook.url,
                data=body,
                headers=self.headers(hook, event_id, body, attempt),
                allow_redirects=False,
            ) as resp:
                outcome = outcome_of(resp.status)
                error = None
                if outcome is not Outcome.DELIVERED:
                    text = (await resp.content.read(ERROR_BODY)).decode("utf-8", "replace")
                    error = one_line(f"HTTP {resp.status}: {text}")[:ERROR_TEXT]
                return Sent(
                    outcome,
                    resp.status,
                    error,
                    time.perf_counter() - started,
                    _retry_after(resp.headers.get("Retry-After"), time.time()),
                )
        except TimeoutError:
            return self._failed(Outcome.RETRY, f"timed out after {self.timeout:g} s", started)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, PrivateAddress):
                return self._failed(Outcome.REFUSED, f"refused: {exc.os_error}", started)
            return self._failed(Outcome.RETRY, f"connection failed: {exc}", started)
        except (aiohttp.ClientError, OSError) as exc:
            return self._failed(Outcome.RETRY, f"{type(exc).__name__}: {exc}", started)

    @staticmethod
    def _failed(outcome: Outcome, error: str, started: float) -> Sent:
        return Sent(outcome, None, one_line(error)[:ERROR_TEXT], time.perf_counter() - started)
