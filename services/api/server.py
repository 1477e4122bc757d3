"""The API's HTTP server: request limits sized to the documented ones, and JSON answers for the
errors aiohttp raises before any handler or middleware runs (a bad request line, an over-long
URL or header).

aiohttp answers those from `RequestHandler.handle_error` with a text/plain page and status 400
whatever the cause; ApiRunner serves the application through a request handler that answers
JSON instead, with 414 for a request line over MAX_LINE_SIZE and 431 for a header over
MAX_FIELD_SIZE or too many headers.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from services.core.identifiers import MAX_DOI_LENGTH
from services.core.text import one_line, shown

log = structlog.get_logger("alm.api")

# The request line of a lookup of the documented maximum (`ids=` of 100 DOIs of MAX_DOI_LENGTH
# characters, every character percent-encoded as 3 bytes: about 90 KB) fits with room to spare.
MAX_IDS_IN_URL = 100
MAX_LINE_SIZE = 128 * 1024
MAX_FIELD_SIZE = 16 * 1024  # one header line (aiohttp's default is 8190 bytes)
# A registration of the most identifiers a POST takes (1,000) of the longest form accepted
# (2,048 characters) fits: 2 MiB. aiohttp's default is 1 MiB; it was 8 MiB here.
MAX_BODY_SIZE = 2 * 1024 * 1024

assert MAX_IDS_IN_URL * (3 * MAX_DOI_LENGTH + 3) < MAX_LINE_SIZE
assert MAX_LINE_SIZE != MAX_FIELD_SIZE  # how a LineTooLong is told apart (414 or 431)

HANDLER_ARGS: dict[str, Any] = {"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE}


def _status_of(status: int, exc: BaseException | None) -> tuple[int, str]:
    """The status and message an error raised while reading the request deserves."""
    if isinstance(exc, http_exceptions.LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == MAX_LINE_SIZE:
            return 414, f"request line longer than {MAX_LINE_SIZE} bytes"
        return 431, f"a request header is longer than {MAX_FIELD_SIZE} bytes"
    if isinstance(exc, http_exceptions.BadHttpMessage) and "many headers" in exc.message:
        return 431, "too many request headers"
    if isinstance(exc, http_exceptions.HttpProcessingError):
        return exc.code or status, f"bad request: {one_line(exc.message)}"
    if status == 504:
        return 504, "the request took too long"
    return status, "internal error" if status >= 500 else "bad request"


class JsonRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors as JSON error bodies."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON error for a request aiohttp could not parse (or a failure outside every
        middleware); the connection is closed after it, as aiohttp does."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        code, text = _status_of(status, exc)
        if code >= 500:
            log.error("request_failed", status=code, error=shown(repr(exc)), exc_info=exc)
        else:
            log.info("request_refused", status=code, error=text, remote=request.remote)
        resp = web.json_response({"error": text, "status": code}, status=code)
        resp.force_close()
        return resp


class ApiServer(web.Server):
    """aiohttp's low-level server, making JsonRequestHandlers."""

    def __call__(self) -> RequestHandler:
        return JsonRequestHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """An AppRunner serving the application through ApiServer."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return ApiServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


async def serve(
    app: web.Application, host: str, port: int, shutdown_timeout: float = 60.0
) -> ApiRunner:
    """Start serving `app` on host:port; the caller cleans the returned runner up (waiting up
    to `shutdown_timeout` seconds for requests in progress)."""
    runner = ApiRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
