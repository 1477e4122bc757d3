"""Who may manage webhooks: the one place the API decides it, until API keys exist.

`require_admin(request)` is the hook point. Today: with ALM_ADMIN_TOKEN set, the request must
carry that token, as `Authorization: Bearer <token>`, `X-API-Key: <token>` or `?api_key=<token>`
(the forms the coming API keys take); without it, only a client on the loopback interface may
(the embedded mode on one machine: nothing is open to the network by default). The key model
replaces this function's body (an admin key, or the key that owns the webhook).
"""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from services.api.errors import AccessDenied
from services.api.state import NOTIFY

REALM = 'Bearer realm="alm"'


def presented_token(request: web.Request) -> str | None:
    """The credential the request carries, in any of the accepted forms (None: none)."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("X-API-Key") or request.query.get("api_key")
    return key.strip() if key and key.strip() else None


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def require_admin(request: web.Request) -> None:
    """Return if the request may manage webhooks, else raise AccessDenied (401 or 403)."""
    token = request.app[NOTIFY].admin_token
    presented = presented_token(request)
    if token is None:
        if _loopback(request.remote):
            return
        raise AccessDenied(
            403,
            "webhooks are managed from the loopback interface unless ALM_ADMIN_TOKEN is set "
            "(then send it as Authorization: Bearer <token>)",
        )
    if presented is None:
        raise AccessDenied(
            401,
            "this needs the admin token: Authorization: Bearer <token> (or X-API-Key, api_key=)",
            {"WWW-Authenticate": REALM},
        )
    if not hmac.compare_digest(presented.encode(), token.encode()):
        raise AccessDenied(403, "the token presented is not the admin token")
