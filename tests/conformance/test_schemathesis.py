"""schemathesis over the OpenAPI document, against the embedded app on loopback (stub upstream,
SQLite, the whole pipeline running): every operation, every phase (examples, coverage,
fuzzing, stateful), all checks, a bounded number of examples per operation. It must find no
server error and no disagreement between the document and the server.

ALM_SCHEMATHESIS_EXAMPLES (default 100) bounds the examples per operation; the seed is fixed
(ALM_SCHEMATHESIS_SEED, default 20260101; empty for a random one) so that CI is repeatable.
A 413, 414 or 431 counts as refusing invalid data (see CONFIG). Every operation is exercised
with a real admin key (CONFIG's [auth.openapi.bearerKey]): schemathesis's ignored_auth check
also sends the operations that need a key without one and with a made-up one, and expects
them refused. Quotas are off (a 429 on a valid request would read as a refusal of valid data;
tests/unit/test_access.py checks them). Stateful links come from the
document's own `links`: schemathesis's dependency-analysis
inference feeds values it finds anywhere in a response (the `input` echoed for an invalid id,
a whole list rendered as one string) into parameters and then calls the rejection a failure of
"schema-valid" data, which they are not.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from services.api.app import init_app
from services.api.docs import OPENAPI_PATH
from services.api.server import serve
from services.bootstrap import api_context
from services.embedded import Pacing, refresh_until_idle, run_services
from services.notify_settings import NotifySettings
from services.settings import SAMPLE_WORKS, AccessSettings, Settings
from tests.unit.pipeline_kit import pipeline_kit

EXAMPLES = int(os.environ.get("ALM_SCHEMATHESIS_EXAMPLES") or "100")
SEED = os.environ.get("ALM_SCHEMATHESIS_SEED", "20260101")
CONFIG = """
[phases.stateful.inference]
algorithms = ["location-headers"]

# A request refused as too large (413 body, 414 URL, 431 header) is refused all the same: a
# negative `ids` of 100 entries over their maxLength can be longer than the request line limit.
[auth.openapi.bearerKey]
bearer = "${ALM_TEST_ADMIN_KEY}"

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415",
                     "422", "428", "429", "431", "5xx"]
"""


def _operation_count() -> int:
    """How many operations the document describes (each must be selected and tested)."""
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    paths = json.loads(OPENAPI_PATH.read_text())["paths"].values()
    return sum(1 for item in paths for method in item if method in methods)


def _sample_ids() -> list[str]:
    lines = SAMPLE_WORKS.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.timeout(1800)
async def test_schemathesis_finds_no_server_error_and_no_mismatch(tmp_path: Path) -> None:
    """Every case schemathesis generates gets a documented status, media type and body: no 5xx,
    valid requests accepted, invalid ones refused, 405s with Allow."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register(_sample_ids())
        await refresh_until_idle(kit.pipeline)
        admin = (await kit.admin_headers())["Authorization"].removeprefix("Bearer ")
        unlimited = AccessSettings(rate_anonymous=None, rate_reader=None, rate_signup=None)
        # The change stream ends each response within a fraction of a second (the server's
        # own limit, ALM_CHANGES_MAX_SECONDS) so that every case of it completes; the webhook
        # routes want the admin key like every admin route (CONFIG's bearerKey), and may
        # register receivers on loopback.
        notify = NotifySettings(max_seconds=0.2, heartbeat=0.1, allow_private=True)
        settings = Settings(
            data_dir=tmp_path, status_cache_seconds=0, access=unlimited, notify=notify
        )
        runner = await serve(
            init_app(api_context(settings, store=kit.store, bus=kit.bus)), "127.0.0.1", 0
        )
        stop = asyncio.Event()
        pipeline = asyncio.create_task(run_services(kit.pipeline, stop, Pacing(tick_seconds=1.0)))
        try:
            host, port = runner.addresses[0][:2]
            config = tmp_path / "schemathesis.toml"
            config.write_text(CONFIG)
            args = ["--no-color", "--config-file", str(config), "run", str(OPENAPI_PATH)]
            args += ["--url", f"http://{host}:{port}", "--checks", "all", "--workers", "1"]
            args += ["--max-examples", str(EXAMPLES), "--report-dir", str(tmp_path / "report")]
            args += ["--seed", SEED] if SEED else []
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "schemathesis.cli",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=tmp_path,
                env={**os.environ, "ALM_TEST_ADMIN_KEY": admin},
            )
            output = (await proc.communicate())[0].decode("utf-8", "replace")
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            await pipeline
            await runner.cleanup()
    cases = re.search(r"(\d+) generated", output)
    print(f"schemathesis: {cases.group(1) if cases else '?'} cases in {elapsed:.0f} s")
    (tmp_path / "schemathesis.txt").write_text(output)
    failures = output[output.find("FAILURES") :] if "FAILURES" in output else output
    short = "\n".join(line[:500] for line in failures.splitlines())  # curl lines can be 100 kB
    assert proc.returncode == 0, short[:30000]
    operations = _operation_count()
    assert f"{operations} selected / {operations} total" in output
    assert re.search(rf"Tested: {operations}\b", output)
