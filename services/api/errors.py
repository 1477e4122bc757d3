"""Domain errors the API maps to JSON responses in one middleware, and the API's own deadline:
every failure of a handler, expected or not, answers `{"error": ..., "status": ...}` with the
right status; a store or bus that is down or slow makes a JSON 503 with Retry-After within a few
seconds, never a hang and never a plain-text 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import hdrs, web

from services.api.state import STORE_TIMEOUT
from services.core.failures import describe, unavailable
from services.core.identifiers import InvalidIdentifier
from services.core.text import shown

log = structlog.get_logger("alm.api")

RETRY_AFTER = 5  # seconds a client is asked to wait after a 503
STORE_CALLS = 3  # a request's deadline: this many store calls' worth of the store timeout


DEADLINE = web.RequestKey("deadline", asyncio.Timeout)  # the request's, set by json_errors


def lift_deadline(request: web.Request) -> None:
    """The request's deadline no longer applies: for a response that streams for longer than a
    request may take (the SSE stream, once its headers are sent), which bounds itself."""
    timeout = request.get(DEADLINE)
    if timeout is not None:
        timeout.reschedule(None)


class NotFound(LookupError):
    """The thing asked for does not exist (JSON 404)."""


class BadParameter(ValueError):
    """A query parameter or body field is wrong (JSON 400); the message names it."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# headers of aiohttp's HTTP errors that a JSON error keeps (405 names the allowed methods)
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.RETRY_AFTER, hdrs.LOCATION)
_MESSAGES = {
    404: "no such path",
    405: "method not allowed",
    413: "request body too large",
}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON error body every failure uses."""
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


def http_error(exc: web.HTTPException, path: str = "") -> web.Response:
    """aiohttp's own HTTP error (no route, wrong method, body too large) as a JSON error, with the
    headers that belong to it (`Allow` on a 405)."""
    headers = {str(k): exc.headers[k] for k in _KEPT_HEADERS if k in exc.headers}
    message = _MESSAGES.get(exc.status, exc.reason or "error")
    if exc.status == 404 and path:
        message = f"no such path: {shown(path)}"
    elif exc.status == 405 and hdrs.ALLOW in headers:
        message = f"method not allowed; allowed: {headers[hdrs.ALLOW]}"
    elif exc.status == 413 and isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = f"request body too large: {exc.text or ''}".strip().rstrip(":")
    return error_response(exc.status, message, headers)


def unavailable_response(message: str) -> web.Response:
    """503 with Retry-After: a dependency is down or slow; the same request may succeed later."""
    response = error_response(503, message)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors and aiohttp's HTTP errors into JSON bodies with the right status; a
    store or bus that is down, or a request over its deadline, into a JSON 503; anything else
    into a JSON 500 (logged, never a traceback to the client)."""
    deadline = request.app[STORE_TIMEOUT] * STORE_CALLS
    try:
        async with asyncio.timeout(deadline) as timeout:
            request[DEADLINE] = timeout
            return await handler(request)
    except TimeoutError:
        log.warning("api_request_timed_out", path=request.path, seconds=deadline)
        return unavailable_response(f"the store did not answer within {deadline:g} s")
    except (InvalidIdentifier, BadParameter) as exc:
        return error_response(400, str(exc))
    except json.JSONDecodeError as exc:
        return error_response(400, f"request body is not JSON: {exc.msg}")
    except NotFound as exc:
        return error_response(404, str(exc.args[0]) if exc.args else "not found")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error(exc, request.path)
    except Exception as exc:
        if unavailable(exc):
            log.warning("api_dependency_unavailable", path=shown(request.path), error=describe(exc))
            return unavailable_response(f"a dependency is unavailable: {describe(exc)}")
        log.exception("request_failed", method=request.method, path=shown(request.path))
        return error_response(500, f"internal error ({type(exc).__name__})")
