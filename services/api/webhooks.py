"""Webhook management: register (the secret is shown once), list, show, delete, enable or
disable, and each hook's delivery log. Every route is for admins (services/api/access.py)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from services.api.access import require_admin
from services.api.errors import BadParameter, NotFound, error_response
from services.api.filters import filter_from_body
from services.api.params import int_param, read_json
from services.api.state import CLOCK, HOOKS, NOTIFY
from services.core.delivery import literal_private
from services.core.text import NAME_LIMIT, URL_LIMIT, shown
from services.core.timeutil import to_iso
from services.core.webhooks import MAX_HOOKS, Attempt, Hook, HookHealth

PREFIX = "/api/v1/webhooks/"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL_PATTERN = rf"^https?://{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?(?:[/?#][!-~]*)?$"
URL = re.compile(URL_PATTERN)
FIELDS = frozenset({"url", "filters", "description"})


def _time(moment: datetime | None) -> str | None:
    return to_iso(moment) if moment is not None else None


def present_hook(hook: Hook, health: HookHealth | None) -> dict[str, Any]:
    """A webhook as the API shows it (never its secret)."""
    h = health or HookHealth(hook.hook_id)
    return {
        "id": hook.hook_id,
        "url": hook.url,
        "description": hook.description,
        "filters": hook.filter.to_dict(),
        "created_at": to_iso(hook.created_at),
        "enabled": hook.enabled,
        "enabled_at": to_iso(hook.enabled_at),
        "disabled_reason": hook.disabled_reason,
        "disabled_at": _time(hook.disabled_at),
        "health": {
            "consecutive_failures": h.consecutive_failures,
            "last_success_at": _time(h.last_success_at),
            "last_failure_at": _time(h.last_failure_at),
            "last_error": h.last_error,
            "queued": h.queued,
            "retry_at": _time(h.retry_at),
        },
        "deliveries_url": f"{PREFIX}{hook.hook_id}/deliveries",
    }


def present_attempt(a: Attempt) -> dict[str, Any]:
    """One logged delivery attempt."""
    return {
        "event_id": a.event_id,
        "attempt": a.attempt,
        "at": to_iso(a.at),
        "outcome": a.outcome.value,
        "status": a.status,
        "error": a.error,
        "duration_ms": a.duration_ms,
        "next_attempt_at": _time(a.next_at),
    }


def _url(value: Any, allow_private: bool) -> str:
    """The receiver URL: http(s), a host name or IPv4 address, an optional port from 1 to
    65535, then printable ASCII (URL_PATTERN, the document's rule too); no user info."""
    if not isinstance(value, str):
        raise BadParameter("'url' must be the receiver's http(s) URL")
    if len(value) > URL_LIMIT:
        raise BadParameter(f"'url' has at most {URL_LIMIT} characters")
    if URL.fullmatch(value) is None:
        raise BadParameter(
            "'url' must be http(s)://host[:port][/path] (host name or IPv4 address, port 1 to "
            f"65535, printable ASCII), not {shown(value, 80)!r}"
        )
    if not allow_private and (why := literal_private(value)):
        raise BadParameter(f"'url': {why}; set ALM_WEBHOOK_ALLOW_PRIVATE=true to allow it")
    return value


async def create_webhook(request: web.Request) -> web.Response:
    """`POST /api/v1/webhooks`: register a receiver URL with filters; the answer holds the
    signing secret, shown this once."""
    require_admin(request)
    body: Any = await read_json(request)
    if not isinstance(body, dict):
        raise BadParameter('body must be a JSON object: {"url": ..., "filters": {...}}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BadParameter(f"body has unknown fields: {', '.join(map(repr, unknown[:5]))}")
    url = _url(body.get("url"), request.app[NOTIFY].allow_private)
    filters = body.get("filters", {})
    if not isinstance(filters, Mapping):
        raise BadParameter("'filters' must be an object (sources, groups, publishers, works)")
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > NAME_LIMIT:
        raise BadParameter(f"'description' must be a string of at most {NAME_LIMIT} characters")
    flt = await filter_from_body(request.app, filters)
    store = request.app[HOOKS]
    if len(await store.hooks()) >= MAX_HOOKS:
        return error_response(409, f"at most {MAX_HOOKS} webhooks: delete one first")
    now = request.app[CLOCK]()
    hook = Hook(
        hook_id=f"wh_{secrets.token_hex(12)}",
        url=url,
        secret=f"whsec_{secrets.token_urlsafe(32)}",
        filter=flt,
        created_at=now,
        enabled_at=now,
        description=description,
    )
    await store.add_hook(hook)
    shown_once = {**present_hook(hook, None), "secret": hook.secret}
    return web.json_response(
        shown_once, status=201, headers={"Location": f"{PREFIX}{hook.hook_id}"}
    )


async def list_webhooks(request: web.Request) -> web.Response:
    """`GET /api/v1/webhooks`: every webhook with its health (no secrets)."""
    require_admin(request)
    store = request.app[HOOKS]
    hooks = await store.hooks()
    health = await store.health([h.hook_id for h in hooks])
    data = [present_hook(h, health.get(h.hook_id)) for h in hooks]
    return web.json_response({"data": data, "total": len(data)})


async def _hook(request: web.Request) -> Hook:
    hook_id = request.match_info["id"]
    hook = await request.app[HOOKS].get_hook(hook_id)
    if hook is None:
        raise NotFound(f"no webhook {shown(hook_id, 60)!r}")
    return hook


async def get_webhook(request: web.Request) -> web.Response:
    """`GET /api/v1/webhooks/{id}`: one webhook, its health and why it is disabled, if so."""
    require_admin(request)
    hook = await _hook(request)
    health = await request.app[HOOKS].health([hook.hook_id])
    return web.json_response(present_hook(hook, health.get(hook.hook_id)))


async def delete_webhook(request: web.Request) -> web.Response:
    """`DELETE /api/v1/webhooks/{id}`: the webhook, its log and what it had queued."""
    require_admin(request)
    hook = await _hook(request)
    await request.app[HOOKS].delete_hook(hook.hook_id)
    return web.Response(status=204)


async def control_webhook(request: web.Request) -> web.Response:
    """`POST /api/v1/webhooks/{id}/enable|disable`: enable a disabled webhook again (its failure
    count starts over, what it had queued is retried at once), or disable it (optional
    `{"reason": ...}`)."""
    require_admin(request)
    hook = await _hook(request)
    enable = request.match_info["action"] == "enable"
    reason = None
    if request.body_exists:
        body: Any = await read_json(request)
        if not isinstance(body, dict) or set(body) - {"reason"}:
            raise BadParameter('body must be a JSON object, {"reason": "..."}')
        reason = body.get("reason")
        if "reason" in body and (not isinstance(reason, str) or len(reason) > NAME_LIMIT):
            raise BadParameter(f"'reason' must be a string of at most {NAME_LIMIT} characters")
    if not enable and reason is None:
        reason = "disabled by an operator"
    store = request.app[HOOKS]
    updated = await store.set_enabled(hook.hook_id, enable, reason, request.app[CLOCK]())
    if updated is None:
        raise NotFound(f"no webhook {hook.hook_id!r}")
    health = await store.health([hook.hook_id])
    return web.json_response(present_hook(updated, health.get(hook.hook_id)))


async def webhook_deliveries(request: web.Request) -> web.Response:
    """`GET /api/v1/webhooks/{id}/deliveries?limit=`: the newest delivery attempts, newest
    first (the log keeps the last ALM_WEBHOOK_LOG_SIZE)."""
    require_admin(request)
    hook = await _hook(request)
    limit = int_param(request, "limit", 50, 1, 10_000)
    attempts = await request.app[HOOKS].attempts(hook.hook_id, limit)
    data = [present_attempt(a) for a in attempts]
    return web.json_response({"webhook": hook.hook_id, "data": data, "total": len(data)})
