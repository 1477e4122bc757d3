"""Domain errors the API maps to JSON responses in one middleware."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.core.identifiers import InvalidIdentifier


class NotFound(LookupError):
    """The thing asked for does not exist (JSON 404)."""


class BadParameter(ValueError):
    """A query parameter or body field is wrong (JSON 400); the message names it."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    """The JSON error body every failure uses."""
    return web.json_response({"error": message, "status": status}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors and aiohttp's HTTP errors into JSON bodies with the right status."""
    try:
        return await handler(request)
    except (InvalidIdentifier, BadParameter) as exc:
        return error_response(400, str(exc))
    except json.JSONDecodeError as exc:
        return error_response(400, f"request body is not JSON: {exc.msg}")
    except NotFound as exc:
        return error_response(404, str(exc.args[0]) if exc.args else "not found")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason or "error")
