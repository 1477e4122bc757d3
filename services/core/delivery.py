"""The rules of a webhook delivery, as pure functions: how a body is signed, which answers are
tried again, how long to wait before the next try.

Signature (the scheme Stripe and GitHub use, docs/changes.md): the header
`ALM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the HMAC, keyed with the webhook's
secret (UTF-8), is over `<t>.<body>` (the timestamp's digits, a dot, the body's bytes). A
receiver recomputes it over the bytes it got, compares in constant time, and refuses a
timestamp too far from its clock (a replay). Every attempt is signed afresh.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from urllib.parse import urlsplit

from services.core.webhooks import Outcome

SIGNATURE_HEADER = "ALM-Signature"
EVENT_ID_HEADER = "ALM-Event-Id"  # the change's event_id: the idempotency key
EVENT_HEADER = "ALM-Event"  # metric_changed
HOOK_HEADER = "ALM-Webhook-Id"
ATTEMPT_HEADER = "ALM-Delivery-Attempt"  # 1 for the first try of an event
TOLERANCE = 300  # seconds a receiver should accept between t= and its own clock
RETRIED = frozenset({408, 429})  # 4xx answers that mean "later", not "never"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` keyed with `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The value of ALM-Signature: `t=<timestamp>,v1=<signature>`."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = TOLERANCE) -> bool:
    """Whether `header` (an ALM-Signature value) signs `body` with `secret` at a time within
    `tolerance` seconds of `now`: what a receiver does (docs/changes.md has it standalone)."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    wanted = signature(secret, timestamp, body)
    return any(hmac.compare_digest(wanted, v.strip()) for k, v in parts if k.strip() == "v1")


def outcome_of(status: int) -> Outcome:
    """What a receiver's HTTP status means: 2xx delivered; 5xx, 408 and 429 try again later;
    any other answer (a redirect, which is not followed, or a 4xx) will not change."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status >= 500 or status in RETRIED:
        return Outcome.RETRY
    return Outcome.FAILED


def backoff(attempt: int, base: float, cap: float, rand: float) -> float:
    """Seconds to wait after failed try number `attempt` (1, 2, ...): `base` doubled each
    time up to `cap`, with "equal jitter" (half fixed, half random; `rand` in [0, 1)) so that
    the receivers of many failing deliveries are not called back all at once."""
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return float(ceiling / 2 + ceiling / 2 * rand)


def retry_delay(attempt: int, base: float, cap: float, rand: float, after: float | None) -> float:
    """The backoff, or the receiver's own Retry-After (seconds) if it asked for longer, never
    beyond `cap`."""
    delay = backoff(attempt, base, cap, rand)
    if after is not None and after > delay:
        delay = min(after, cap)
    return delay


def is_public(address: str) -> bool:
    """Whether `address` is a globally routable unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return bool(ip.is_global) and not ip.is_multicast


def literal_private(url: str) -> str | None:
    """Why `url`'s host is refused without resolving it (a private IP literal or localhost);
    None if it is a name or a public address."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is a loopback name"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if is_public(host) else f"{host} is not a public address"
