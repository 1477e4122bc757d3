"""The fault suite's own Kafka and Cassandra: `deploy/local/infra-up` with a private state
directory and private ports, so that killing, pausing or restarting them never touches the
servers other tests (or other people) use. Everything is by pid, from that directory's pid
files; nothing is ever stopped by name.

    ALM_FAULTS_DIR        state directory (default <repo>/.alm-faults)
    ALM_FAULTS_PORT_BASE  base of every port the suite uses (default 19000): Kafka +92/+93,
                          Cassandra +42 (native), +700 (storage), +199 (JMX), toxiproxy +474,
                          its proxies +401.., the stub upstream +90, the API +80
    ALM_JARS_DIR          jar cache to reuse (default: the main .alm-local/jars if complete)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("ALM_FAULTS_DIR", REPO / ".alm-faults"))
BASE = int(os.environ.get("ALM_FAULTS_PORT_BASE", "19000"))


def port(offset: int) -> int:
    """A port of the suite's private range."""
    return BASE + offset


KAFKA_PORT, KAFKA_CONTROLLER_PORT = port(92), port(93)
CASSANDRA_PORT, CASSANDRA_STORAGE_PORT, CASSANDRA_JMX_PORT = port(42), port(700), port(199)


def _jars() -> Path:
    """Where infra-up finds (or puts) the jars: a complete cache is reused, not downloaded."""
    given = os.environ.get("ALM_JARS_DIR")
    if given:
        return Path(given)
    main = REPO / ".alm-local" / "jars"
    if all((main / name / ".complete").is_file() for name in ("kafka", "cassandra")):
        return main
    return STATE / "jars"


def infra_env() -> dict[str, str]:
    """The environment deploy/local's scripts run with for the private servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALM_")}
    env.update(
        ALM_LOCAL_DIR=str(STATE),
        ALM_JARS_DIR=str(_jars()),
        ALM_KAFKA_PORT=str(KAFKA_PORT),
        ALM_KAFKA_CONTROLLER_PORT=str(KAFKA_CONTROLLER_PORT),
        ALM_CASSANDRA_PORT=str(CASSANDRA_PORT),
        ALM_CASSANDRA_STORAGE_PORT=str(CASSANDRA_STORAGE_PORT),
        ALM_CASSANDRA_JMX_PORT=str(CASSANDRA_JMX_PORT),
        ALM_PYTHON=sys.executable,
        ALM_STOP_TIMEOUT="60",
    )
    return env


@dataclass
class Cluster:
    """The private Kafka and Cassandra, and what a scenario may do to them."""

    kafka: str = f"127.0.0.1:{KAFKA_PORT}"
    cassandra_host: str = "127.0.0.1"
    cassandra_port: int = CASSANDRA_PORT

    def _script(self, name: str) -> str:
        result = subprocess.run(
            [str(REPO / "deploy" / "local" / name)],
            env=infra_env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(f"deploy/local/{name} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    async def up(self) -> str:
        """Start whichever server is not running and wait until both answer (infra-up)."""
        return await asyncio.to_thread(self._script, "infra-up")

    async def down(self) -> None:
        """Stop both servers (infra-down: by pid, waiting for exit)."""
        await asyncio.to_thread(self._script, "infra-down")

    def pid(self, name: str) -> int:
        """The pid of `kafka` or `cassandra` from the private pid file."""
        return int((STATE / "pids" / f"{name}.pid").read_text().strip())

    def pause(self, name: str) -> None:
        """SIGSTOP the server: it holds its connections and answers nothing."""
        os.kill(self.pid(name), signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT a paused server."""
        os.kill(self.pid(name), signal.SIGCONT)

    async def stop(self, name: str, timeout: float = 90.0) -> float:
        """SIGTERM the server and wait until it exited (SIGKILL after `timeout`); seconds taken."""
        pid = self.pid(name)
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        while _alive(pid):
            if time.monotonic() - started > timeout:
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.2)
        (STATE / "pids" / f"{name}.pid").unlink(missing_ok=True)
        return time.monotonic() - started


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie leader whose threads still run counts as running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[0] != "Z":
        return True
    return len(list(Path(f"/proc/{pid}/task").iterdir())) > 1
