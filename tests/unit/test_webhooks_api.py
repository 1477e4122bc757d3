"""The webhook routes: register (secret shown once), list, show, delete, enable and disable,
the delivery log; checked input; and who may use them (an admin key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from services.adapters.sqlite.keys import SqliteKeyStore
from services.api import webhooks
from services.api.docs import OPENAPI_PATH
from services.core.keys import Role
from services.core.schema_check import SCHEMA_DIR
from services.core.works import Work
from services.fetchers.registry import SOURCES
from services.keyring import create_key
from tests.unit.changes_kit import AT, Api, api

HOOK = {"url": "https://hooks.example.org/alm", "description": "the CRIS"}


async def create(env: Api, body: Any, **headers: str) -> Any:
    resp = await env.client.post("/api/v1/webhooks", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return resp


async def test_register_shows_the_secret_once(tmp_path: Path) -> None:
    """POST answers 201 with Location and the signing secret; GET never shows the secret."""
    async with api(tmp_path) as env:
        resp = await create(env, {**HOOK, "filters": {"sources": ["crossref"]}})
        made = await resp.json()
        assert made["id"].startswith("wh_")
        assert made["secret"].startswith("whsec_") and len(made["secret"]) > 40
        assert resp.headers["Location"] == f"/api/v1/webhooks/{made['id']}"
        shown = await (await env.client.get(resp.headers["Location"])).json()
        listed = await (await env.client.get("/api/v1/webhooks")).json()
    assert "secret" not in shown
    assert made["secret"] not in str(listed)
    assert shown == {k: v for k, v in made.items() if k != "secret"}
    assert listed == {"data": [shown], "total": 1}
    assert shown["enabled"] is True
    assert shown["filters"] == {
        "sources": ["crossref"],
        "groups": [],
        "publishers": [],
        "works": [],
    }
    assert shown["health"]["consecutive_failures"] == 0


async def test_filters_name_works_by_any_identifier(tmp_path: Path) -> None:
    """A registered work named by its PMID is stored as its work id; publishers normalised."""
    async with api(tmp_path) as env:
        await env.store.register([Work("10.5555/pm", pmid="777")])
        filters = {"works": ["pmid:777", "https://doi.org/10.5555/New"], "publishers": [" A  B "]}
        made = await (await create(env, {**HOOK, "filters": filters})).json()
    assert made["filters"]["works"] == ["10.5555/new", "10.5555/pm"]
    assert made["filters"]["publishers"] == ["a b"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({}, "'url'"),
        ({"url": "ftp://x.org/"}, "http(s)://host"),
        ({"url": "https://"}, "http(s)://host"),
        ({"url": "http://x.org:99999/"}, "port 1 to 65535"),
        ({"url": " https://x.org/"}, "http(s)://host"),
        ({"url": "https://user:pw@x.org/"}, "http(s)://host"),
        ({"url": "https://x.org/a b"}, "http(s)://host"),
        ({"url": "http://127.0.0.1:9/"}, "ALM_WEBHOOK_ALLOW_PRIVATE"),
        ({"url": "http://localhost/"}, "loopback"),
        ({"url": "http://169.254.169.254/"}, "not a public address"),
        ({**HOOK, "secret": "mine"}, "unknown fields"),
        ({**HOOK, "filters": []}, "'filters'"),
        ({**HOOK, "filters": {"sources": ["nope"]}}, "filters.sources"),
        ({**HOOK, "filters": {"sources": "crossref"}}, "list of strings"),
        ({**HOOK, "filters": {"groups": ["liked"]}}, "filters.groups"),
        ({**HOOK, "filters": {"colour": ["red"]}}, "unknown fields"),
        ({**HOOK, "filters": {"works": ["nonsense"]}}, "nonsense"),
        ({**HOOK, "description": "x" * 501}, "description"),
        ({"url": "https://x.org/" + "a" * 3000}, "2048"),
    ],
)
async def test_bad_registrations_are_a_400_naming_the_problem(
    tmp_path: Path, body: Any, message: str
) -> None:
    """Every field is checked before anything is stored."""
    async with api(tmp_path) as env:
        resp = await env.client.post("/api/v1/webhooks", json=body)
        assert resp.status == 400, await resp.text()
        assert message in (await resp.json())["error"]
        assert (await (await env.client.get("/api/v1/webhooks")).json())["total"] == 0


async def test_private_receivers_when_allowed(tmp_path: Path) -> None:
    """With ALM_WEBHOOK_ALLOW_PRIVATE a loopback receiver is accepted (local testing)."""
    async with api(tmp_path, allow_private=True) as env:
        await create(env, {"url": "http://127.0.0.1:9/hook"})


async def test_delete_removes_the_hook(tmp_path: Path) -> None:
    """DELETE is a 204; the hook and its log are gone (404)."""
    async with api(tmp_path) as env:
        made = await (await create(env, HOOK)).json()
        resp = await env.client.delete(f"/api/v1/webhooks/{made['id']}")
        assert resp.status == 204
        for path in (f"/api/v1/webhooks/{made['id']}", f"/api/v1/webhooks/{made['id']}/deliveries"):
            assert (await env.client.get(path)).status == 404
        assert (await env.client.delete(f"/api/v1/webhooks/{made['id']}")).status == 404


async def test_disable_with_a_reason_and_enable_again(tmp_path: Path) -> None:
    """A hook disabled (by hand here; by the notifier after failures) shows why; enabling
    clears the reason and restarts its failure count."""
    async with api(tmp_path) as env:
        made = await (await create(env, HOOK)).json()
        base = f"/api/v1/webhooks/{made['id']}"
        resp = await env.client.post(f"{base}/disable", json={"reason": "receiver moved"})
        off = await resp.json()
        assert (off["enabled"], off["disabled_reason"]) == (False, "receiver moved")
        assert off["disabled_at"] is not None
        on = await (await env.client.post(f"{base}/enable")).json()
        assert (on["enabled"], on["disabled_reason"], on["disabled_at"]) == (True, None, None)
        assert on["enabled_at"] >= made["enabled_at"]
        bad = await env.client.post(f"{base}/enable", json={"why": 1})
        assert bad.status == 400
        assert (await env.client.post(f"{base}/disable", json={"reason": None})).status == 400
        assert (await env.client.post("/api/v1/webhooks/wh_nope/enable")).status == 404


async def test_at_most_max_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering past the limit is a 409 that says so."""
    monkeypatch.setattr(webhooks, "MAX_HOOKS", 2)
    async with api(tmp_path) as env:
        await create(env, HOOK)
        await create(env, HOOK)
        resp = await env.client.post("/api/v1/webhooks", json=HOOK)
        assert resp.status == 409
        assert "at most 2" in (await resp.json())["error"]


ROUTES = [
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/wh_x"),
    ("DELETE", "/api/v1/webhooks/wh_x"),
    ("POST", "/api/v1/webhooks/wh_x/enable"),
    ("GET", "/api/v1/webhooks/wh_x/deliveries"),
]


@pytest.mark.parametrize(
    ("credential", "status"),
    [
        ("none", 401),
        ("reader", 403),
        ("wrong", 401),
        ("basic", 401),
        ("bearer", 200),
        ("header", 200),
        ("query", 200),
    ],
)
async def test_an_admin_key_guards_every_route(
    tmp_path: Path, credential: str, status: int
) -> None:
    """Each webhook route needs an admin key (routes.ACCESS): none or a wrong one is a 401
    with WWW-Authenticate, a reader key a 403; an admin key works in each accepted form. The
    change stream needs no key, but a wrong one is refused there too."""
    async with api(tmp_path, admin=False) as env:
        admin = env.admin["Authorization"].removeprefix("Bearer ")
        _, reader = await create_key(SqliteKeyStore(env.store), "r", Role.READER, AT)
        headers, query = {
            "none": ({}, ""),
            "reader": ({"Authorization": f"Bearer {reader}"}, ""),
            "wrong": ({"Authorization": "Bearer alm_000000000000_" + "x" * 43}, ""),
            "basic": ({"Authorization": "Basic c2VjcmV0"}, ""),
            "bearer": ({"Authorization": f"Bearer {admin}"}, ""),
            "header": ({"X-API-Key": admin}, ""),
            "query": ({}, f"?api_key={admin}"),
        }[credential]
        for method, path in ROUTES:
            body = HOOK if method == "POST" and path.endswith("webhooks") else None
            resp = await env.client.request(method, path + query, headers=headers, json=body)
            if status == 200:
                assert resp.status not in (401, 403), (method, path)
            else:
                assert resp.status == status, (method, path)
                assert (await resp.json())["status"] == status
            if status == 401:
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        stream = await env.client.get("/api/v1/changes", headers=headers)
        assert stream.status == (401 if credential == "wrong" else 200)
        stream.close()


def test_the_document_states_the_rules_the_code_applies() -> None:
    """The OpenAPI document's URL rule is the one the API checks, and the stream's source
    filter names exactly the installed sources."""
    doc = json.loads(OPENAPI_PATH.read_text())
    body = doc["paths"]["/api/v1/webhooks"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["url"]["pattern"] == webhooks.URL_PATTERN
    params = {p["name"]: p for p in doc["paths"]["/api/v1/changes"]["get"]["parameters"]}
    names = params["source"]["schema"]["items"]["pattern"].split("(?:")[1].split(")")[0]
    assert names.split("|") == sorted(SOURCES)


async def test_answers_match_the_document(tmp_path: Path) -> None:
    """A registration, the list, one hook and its log validate against their schemas."""
    doc = json.loads(OPENAPI_PATH.read_text())

    def valid(name: str, value: Any) -> bool:
        root = {"components": doc["components"], "$ref": f"#/components/schemas/{name}"}
        return bool(jsonschema_rs.validator_for(root).is_valid(value))

    async with api(tmp_path) as env:
        made = await (await create(env, {**HOOK, "filters": {"groups": ["cited"]}})).json()
        shown = await (await env.client.get(f"/api/v1/webhooks/{made['id']}")).json()
    assert valid("WebhookCreated", made)
    assert valid("Webhook", shown)
    assert not valid("Webhook", made)  # the secret is only in the creation's answer


def test_the_stream_documents_the_change_event_as_published() -> None:
    """The document's MetricChanged (the SSE events' and webhook bodies' data) is the topic's
    schema, not a second description of it."""
    doc = json.loads(OPENAPI_PATH.read_text())
    published = json.loads((SCHEMA_DIR / "metric_changed.schema.json").read_text())
    documented = doc["components"]["schemas"]["MetricChanged"]
    assert documented == {k: v for k, v in published.items() if not k.startswith("$")}
