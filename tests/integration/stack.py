"""Run ALM services as real processes (`python -m services.cli.main ...`) for integration tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.adapters.kafka import KafkaBus
from services.core.events import TOPIC_CHANGED
from services.core.ports import Message
from tests.integration.conftest import Infra

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(infra: Infra, prefix: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a distributed-mode service of this test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALM_")}
    env.update(
        ALM_BUS="kafka",
        ALM_STORE="cassandra",
        ALM_KAFKA_BOOTSTRAP=infra.kafka,
        ALM_CASSANDRA_HOSTS=infra.cassandra_host,
        ALM_CASSANDRA_PORT=str(infra.cassandra_port),
        ALM_CASSANDRA_KEYSPACE=infra.keyspace,
        ALM_TOPIC_PREFIX=prefix,
        ALM_DATA_DIR=str(data_dir),
        ALM_LOG_LEVEL="warning",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


@dataclass
class Service:
    """One service process and its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stopped: bool = False  # by the test, on purpose

    def tail(self, lines: int = 40) -> str:
        """The end of its log (for failure messages)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        last = [line[:400] for line in text.splitlines()[-lines:]]
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(last)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Signal it and wait for it to exit; returns the exit code."""
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
            await asyncio.sleep(0.1)
        return int(self.proc.returncode)


@dataclass
class Stack:
    """The services a test started; all stopped at the end."""

    env: dict[str, str]
    logs: Path
    services: list[Service] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Service:
        """Start `alm ARGS...` as a background process."""
        log = self.logs / f"{name}.log"
        out = log.open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
        out.close()
        service = Service(name, proc, log)
        self.services.append(service)
        return service

    async def run(self, *args: str) -> str:
        """Run `alm ARGS...` to completion; its output (fails the test if it fails)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli.main",
            *args,
            env=self.env,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        assert proc.returncode == 0, f"alm {' '.join(args)} failed:\n{text}"
        return text

    def check_alive(self) -> None:
        """Fail with the logs of any service that died."""
        dead = [s for s in self.services if not s.stopped and s.proc.poll() is not None]
        assert not dead, "service died:\n" + "\n".join(s.tail() for s in dead)

    def logs_text(self) -> str:
        """Every service's log tail."""
        return "\n".join(s.tail() for s in self.services)

    async def stop_all(self) -> None:
        """Stop every service still running."""
        await asyncio.gather(*(s.stop() for s in self.services))


async def changed_events(bus: KafkaBus) -> list[Message]:
    """Everything on alm.metrics.changed of this bus's prefix."""
    parts = list(range(await bus.partitions(TOPIC_CHANGED)))
    ends = await bus.end_offsets(TOPIC_CHANGED, parts)
    return await bus.read(TOPIC_CHANGED, {p: (0, end) for p, end in ends.items()})


async def eventually(check: object, timeout: float, what: str, stack: Stack | None = None) -> None:
    """Await `check()` until it returns true, failing after `timeout` seconds."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if stack is not None:
            stack.check_alive()
        if time.monotonic() > deadline:
            logs = stack.logs_text() if stack else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        await asyncio.sleep(0.5)
