"""Every file of schemas/ is served at /api/v1/schemas/{name} as written, with its media type;
an unknown name, or one that tries to leave the folder, is a JSON 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api.app import init_app
from services.bootstrap import api_context
from services.core.schema_check import SCHEMA_DIR
from services.settings import Settings

FILES = sorted(p.relative_to(SCHEMA_DIR).as_posix() for p in SCHEMA_DIR.rglob("*.json"))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(init_app(api_context(Settings(data_dir=tmp_path))))) as c:
        yield c


def test_the_folder_has_the_change_contract_and_its_history() -> None:
    """What the issue asks for is among the files (the test below serves them all)."""
    assert {"metric_changed.schema.json", "history/metric_changed.v1.0.schema.json"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
async def test_every_file_is_served_as_written(client: TestClient[Any, Any], name: str) -> None:
    """Each file comes back byte for byte, as application/schema+json for a JSON Schema and
    application/json otherwise, cacheable."""
    resp = await client.get(f"/api/v1/schemas/{name}")
    assert resp.status == 200
    assert await resp.read() == (SCHEMA_DIR / name).read_bytes()
    wanted = "application/schema+json" if name.endswith(".schema.json") else "application/json"
    assert resp.content_type == wanted
    assert "max-age" in resp.headers["Cache-Control"]


async def test_the_list_names_every_file(client: TestClient[Any, Any]) -> None:
    """GET /api/v1/schemas lists each file once, with the URL it is served at."""
    body = await (await client.get("/api/v1/schemas")).json()
    assert [d["name"] for d in body["data"]] == FILES
    assert body["total"] == len(FILES)
    for entry in body["data"]:
        assert (await client.get(entry["url"])).status == 200
    titles = {d["name"]: d["title"] for d in body["data"]}
    assert titles["metric_changed.schema.json"].startswith("alm.metrics.changed")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/schemas/nope.schema.json",
        "/api/v1/schemas/metric_changed",
        "/api/v1/schemas/../settings.py",
        "/api/v1/schemas/%2e%2e/services/settings.py",
        "/api/v1/schemas/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/schemas/history%2F..%2F..%2Fservices%2Fsettings.py",
        "/api/v1/schemas//etc/passwd",
        "/api/v1/schemas/history",
    ],
)
async def test_unknown_or_escaping_names_are_a_json_404(
    client: TestClient[Any, Any], path: str
) -> None:
    """Nothing outside the index is served: a JSON 404 whatever the name tries."""
    resp = await client.get(path)
    assert resp.status == 404
    body = await resp.json()
    assert body["status"] == 404
    assert "root:" not in await resp.text()
