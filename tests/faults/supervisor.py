"""Every ALM service as its own process, restarted when it dies, as Kubernetes would.

A service that exits without being stopped on purpose is started again after RESTART_DELAY
(Kubernetes' first back-off is 10 s; a short one keeps the suite fast, and what is measured is
how the rest of the system copes, not the back-off). Each restart is recorded, with when.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.cluster import REPO

RESTART_DELAY = 1.0


@dataclass
class Service:
    """One supervised process."""

    name: str
    args: tuple[str, ...]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    wanted: bool = True  # restart it when it exits
    started_at: float = 0.0
    exits: list[tuple[float, int]] = field(default_factory=list)  # (when, exit code)

    def tail(self, lines: int = 30) -> str:
        """The end of its log (for failure messages)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        last = [line[:300] for line in text.splitlines()[-lines:]]
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(last)


class Supervisor:
    """Starts, watches, restarts, kills and stops the services of one scenario."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.services: dict[str, Service] = {}
        self._watch: asyncio.Task[None] | None = None

    def start(self, name: str, *args: str) -> Service:
        """Start `alm ARGS...` as a supervised process."""
        service = self.services.get(name) or Service(name, args, self.logs / f"{name}.log")
        self.services[name] = service
        service.wanted = True
        self._spawn(service)
        if self._watch is None:
            self._watch = asyncio.create_task(self._restart_dead())
        return service

    def _spawn(self, service: Service) -> None:
        with service.log.open("ab") as out:
            service.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli.main", *service.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                start_new_session=True,
            )
        service.started_at = time.monotonic()

    async def _restart_dead(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            for service in list(self.services.values()):
                proc = service.proc
                if proc is None or proc.poll() is None or not service.wanted:
                    continue
                service.exits.append((time.monotonic(), int(proc.returncode)))
                service.proc = None
                asyncio.get_running_loop().call_later(RESTART_DELAY, self._respawn, service)

    def _respawn(self, service: Service) -> None:
        if service.wanted and service.proc is None:
            self._spawn(service)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> float:
        """Send `sig` to the service (the supervisor restarts it); when it was sent."""
        proc = self.services[name].proc
        assert proc is not None and proc.poll() is None, f"{name} is not running"
        os.kill(proc.pid, sig)
        return time.monotonic()

    def restarts(self, name: str) -> int:
        """How many times the service exited and was (or is being) restarted."""
        return len(self.services[name].exits)

    def logs_text(self) -> str:
        """Every service's log tail."""
        return "\n".join(s.tail() for s in self.services.values())

    async def stop_all(self, timeout: float = 60.0) -> dict[str, float]:
        """SIGTERM every service and wait for each to exit (SIGKILL after `timeout`); seconds
        each took."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        took: dict[str, float] = {}
        started = time.monotonic()
        running = {s.name: s.proc for s in self.services.values() if s.proc is not None}
        for service in self.services.values():
            service.wanted = False
        for proc in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        while running:
            for name, proc in list(running.items()):
                if proc.poll() is not None:
                    took[name] = time.monotonic() - started
                    del running[name]
                elif time.monotonic() - started > timeout:
                    proc.kill()
            await asyncio.sleep(0.1)
        return took
