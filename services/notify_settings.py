"""Settings of the subscribers' channels (the SSE stream, webhooks and the notifier), read once
from the environment with the rest of `Settings` (its `notify` field)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A true/false variable (also 1/0, yes/no, on/off); unset or empty is false."""
    value = env.get(name, "").strip().lower()
    if value in ("", "false", "0", "no", "off"):
        return False
    if value in ("true", "1", "yes", "on"):
        return True
    raise ValueError(f"{name} must be true or false, not {env[name]!r}")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number within [low, high] from `name` (unset or empty: `default`), else a ValueError
    naming the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, not {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """How the SSE stream and webhook deliveries behave (defaults in brackets in the docs)."""

    # Until API keys exist: the token GET/POST/DELETE /api/v1/webhooks need (ALM_ADMIN_TOKEN);
    # unset, only loopback clients may use them (services/api/access.py).
    admin_token: str | None = field(default=None, repr=False)
    heartbeat: float = 15.0  # ALM_CHANGES_HEARTBEAT: seconds between SSE comment lines
    retry_ms: int = 3000  # ALM_CHANGES_RETRY_MS: the SSE `retry:` hint to clients
    max_seconds: float = 3600.0  # ALM_CHANGES_MAX_SECONDS: a stream is closed after (±10 %)
    client_queue: int = 1000  # ALM_CHANGES_CLIENT_QUEUE: frames a slow client may lag by
    max_clients: int = 1000  # ALM_CHANGES_MAX_CLIENTS: open streams per API process
    webhook_timeout: float = 10.0  # ALM_WEBHOOK_TIMEOUT: seconds a receiver has to answer
    retry_base: float = 5.0  # ALM_WEBHOOK_RETRY_BASE: first retry delay (doubling)
    retry_max: float = 3600.0  # ALM_WEBHOOK_RETRY_MAX: longest delay between retries
    max_failures: int = 15  # ALM_WEBHOOK_MAX_FAILURES: consecutive failures that disable
    log_size: int = 100  # ALM_WEBHOOK_LOG_SIZE: attempts kept per hook
    queue_limit: int = 100_000  # ALM_WEBHOOK_QUEUE_LIMIT: deliveries a failing hook may owe
    allow_private: bool = False  # ALM_WEBHOOK_ALLOW_PRIVATE: receivers on private addresses

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifySettings:
        """From the ALM_CHANGES_*, ALM_WEBHOOK_* and ALM_ADMIN_TOKEN variables."""
        return cls(
            admin_token=env.get("ALM_ADMIN_TOKEN") or None,
            heartbeat=_number(env, "ALM_CHANGES_HEARTBEAT", 15.0, 0.05, 3600),
            retry_ms=int(_number(env, "ALM_CHANGES_RETRY_MS", 3000, 0, 3_600_000)),
            max_seconds=_number(env, "ALM_CHANGES_MAX_SECONDS", 3600.0, 0.05, 7 * 86400),
            client_queue=int(_number(env, "ALM_CHANGES_CLIENT_QUEUE", 1000, 1, 1_000_000)),
            max_clients=int(_number(env, "ALM_CHANGES_MAX_CLIENTS", 1000, 1, 1_000_000)),
            webhook_timeout=_number(env, "ALM_WEBHOOK_TIMEOUT", 10.0, 0.1, 300),
            retry_base=_number(env, "ALM_WEBHOOK_RETRY_BASE", 5.0, 0.01, 86400),
            retry_max=_number(env, "ALM_WEBHOOK_RETRY_MAX", 3600.0, 0.01, 7 * 86400),
            max_failures=int(_number(env, "ALM_WEBHOOK_MAX_FAILURES", 15, 1, 1_000_000)),
            log_size=int(_number(env, "ALM_WEBHOOK_LOG_SIZE", 100, 1, 10_000)),
            queue_limit=int(_number(env, "ALM_WEBHOOK_QUEUE_LIMIT", 100_000, 1, 100_000_000)),
            allow_private=_flag(env, "ALM_WEBHOOK_ALLOW_PRIVATE"),
        )
