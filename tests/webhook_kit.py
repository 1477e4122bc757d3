"""A webhook receiver on loopback for the tests: it verifies each delivery's signature as a real
receiver would, answers from a script (a status per request, then 200), and keeps what it got."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from services.core.delivery import verify


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    status: int  # what it answered
    signed: bool  # the signature verified with the receiver's secret
    at: float  # time.time() when it arrived

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers `script` statuses in order (then `then`), recording every request."""

    secret: str = ""
    script: list[int] = field(default_factory=list)
    then: int = 200
    delay: float = 0.0  # seconds before answering (timeouts)
    got: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.script.pop(0) if self.script else self.then
        signed = bool(self.secret) and verify(
            self.secret, request.headers.get("ALM-Signature", ""), body, int(time.time())
        )
        entry = Received(dict(request.headers), body, status, signed, time.time())
        self.got.append(entry)
        if self.on_request is not None:
            self.on_request(entry)
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=status, text="scripted answer")

    async def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1; the URL deliveries go to."""
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, real_port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{real_port}/hook"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    def delivered(self) -> list[Received]:
        """The requests it answered 2xx, signed correctly."""
        return [r for r in self.got if 200 <= r.status < 300 and r.signed]

    async def wait_for(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `check()` holds (failing after `timeout` seconds)."""
        async with asyncio.timeout(timeout):
            while not check():  # noqa: ASYNC110 (checks may read state other than arrivals)
                await asyncio.sleep(0.02)
