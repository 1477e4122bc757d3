"""The hook point of admin routes (`GET /api/v1/alerts`): `require_admin(request)`.

Today it admits requests from a loopback address only (the embedded mode's operator on the same
machine; a Kubernetes operator through `kubectl port-forward`). Forwarding headers
(X-Forwarded-For) are not trusted. The API-key model replaces the body of this function (an
admin key instead of the address); the routes call only `require_admin`.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

MESSAGE = "admin route: answers requests from a loopback address only (127.0.0.1, ::1)"


def require_admin(request: web.Request) -> None:
    """Return if `request` may use an admin route; else a JSON 403 (HTTPForbidden)."""
    remote = request.remote
    try:
        loopback = remote is not None and ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise web.HTTPForbidden(reason=MESSAGE)
