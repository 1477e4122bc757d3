"""Toxiproxy (github.com/Shopify/toxiproxy, built by bin/install-tools) between the fetchers
and the stub upstream: a loopback TCP proxy whose HTTP API adds "toxics" to a proxy's
connections (latency, a stall that ends in a close, a reset, a cut after N bytes).

API used (toxiproxy v2): POST /proxies {name, listen, upstream, enabled}; POST
/proxies/{name}/toxics {name, type, stream, toxicity, attributes}; DELETE
/proxies/{name}/toxics/{toxic}; GET /version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.faults.cluster import REPO, STATE


def binary() -> Path | None:
    """The toxiproxy server: ALM_TOXIPROXY, else what bin/install-tools built, else on PATH."""
    given = os.environ.get("ALM_TOXIPROXY")
    if given:
        return Path(given)
    built = REPO / ".alm-local" / "tools" / "toxiproxy-server"
    if built.is_file():
        return built
    found = shutil.which("toxiproxy-server")
    return Path(found) if found else None


class Toxiproxy:
    """A toxiproxy server of this session and its proxies."""

    def __init__(self, api_port: int) -> None:
        self.api = f"http://127.0.0.1:{api_port}"
        self.api_port = api_port
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        """Start the server (then await `ready`)."""
        path = binary()
        if path is None:
            raise RuntimeError("toxiproxy not found: run bin/install-tools (or set ALM_TOXIPROXY)")
        log = (STATE / "logs" / "toxiproxy.log").open("ab")
        self.proc = subprocess.Popen(
            [str(path), "-host", "127.0.0.1", "-port", str(self.api_port)],
            env={**os.environ, "LOG_LEVEL": "warn"},  # not a line per connection
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    async def ready(self) -> None:
        """Wait until the server's API answers."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                await self._call("GET", "/version")
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
        raise RuntimeError("toxiproxy did not answer within 20 s")

    def stop(self) -> None:
        """Stop the server (by its pid)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.request(method, self.api + path, json=body) as resp,
        ):
            if resp.status >= 400:
                raise RuntimeError(f"toxiproxy {method} {path}: {resp.status} {await resp.text()}")
            text = await resp.text()
            return json.loads(text) if text.lstrip().startswith(("{", "[")) else text

    async def proxy(self, name: str, listen: int, upstream: str) -> str:
        """A proxy listening on 127.0.0.1:`listen` to `upstream` (replacing one of that name);
        returns its address."""
        with contextlib.suppress(RuntimeError):  # none of that name yet
            await self._call("DELETE", f"/proxies/{name}")
        body = {"name": name, "listen": f"127.0.0.1:{listen}", "upstream": upstream}
        await self._call("POST", "/proxies", {**body, "enabled": True})
        return f"127.0.0.1:{listen}"

    async def add(
        self, proxy: str, toxic: str, kind: str, stream: str = "downstream", **attributes: int
    ) -> None:
        """Add a toxic: `kind` latency {latency, jitter}, timeout {timeout}, reset_peer
        {timeout}, limit_data {bytes}, bandwidth {rate}, slicer, slow_close."""
        body = {
            "name": toxic,
            "type": kind,
            "stream": stream,
            "toxicity": 1.0,
            "attributes": attributes,
        }
        await self._call("POST", f"/proxies/{proxy}/toxics", body)

    async def remove(self, proxy: str, toxic: str) -> None:
        """Remove a toxic: connections flow normally again."""
        await self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic}")
