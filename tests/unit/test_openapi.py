"""The OpenAPI document (schemas/openapi.json) is valid OpenAPI 3.1, names exactly the app's
routes and handlers, and describes what the running API really answers."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate as validate_openapi

from services.adapters.sqlite.keys import SqliteKeyStore
from services.adapters.sqlite.publishers import SqlitePublishers
from services.api.access import Access
from services.api.app import init_app
from services.api.docs import OPENAPI_PATH
from services.api.routes import ACCESS
from services.bootstrap import api_context
from services.core.keys import Role
from services.core.publishers import Publisher
from services.core.schema_check import SCHEMA_DIR
from services.embedded import refresh_until_idle
from services.fetchers.registry import SOURCES
from services.keyring import create_key
from services.settings import Settings
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

PCBI = "10.1371/journal.pcbi.1000204"
PEERJ = "10.7717/peerj.4375"
UNKNOWN_UPSTREAM = "10.1234/not.in.fixtures"  # registered; every stub answers "not found"
DOC: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def _response(path: str, method: str, status: int) -> dict[str, Any]:
    """The documented response object, with a `$ref` to components.responses resolved."""
    responses = DOC["paths"][path][method]["responses"]
    found: dict[str, Any] = responses[str(status)]
    if "$ref" in found:
        found = DOC["components"]["responses"][found["$ref"].rsplit("/", 1)[1]]
    return found


def _validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator of `schema` in which `#/components/...` refs resolve against the document
    (built once per schema: each carries the document's components)."""
    return _compiled(json.dumps(schema, sort_keys=True))


@cache
def _compiled(schema: str) -> jsonschema_rs.Validator:
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": DOC["components"],
        **json.loads(schema),
    }
    return jsonschema_rs.validator_for(root)


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.instance_path)) or '(top)'}: {e.message}"
        for e in _validator(schema).iter_errors(instance)
    ]


def test_document_is_valid_openapi_3_1() -> None:
    """openapi-spec-validator accepts the document as OpenAPI 3.1, and so does the 2020-12
    meta-schema each component schema."""
    assert DOC["openapi"].startswith("3.1.")
    validate_openapi(DOC)
    for name, schema in DOC["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        ), name


def test_version_is_the_package_version() -> None:
    """info.version follows the installed `alm` package."""
    assert DOC["info"]["version"] == version("alm")


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    """The app's router and the document name the same (method, path) pairs, and each
    operation's x-handler is the function that route calls (HEAD routes are aiohttp's
    automatic twins of GET routes; the site's HTML pages, services/site, are not the API)."""
    app = init_app(api_context(Settings(data_dir=tmp_path)))
    routed = {
        (route.method.lower(), route.resource.canonical): route.handler
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and not route.handler.__module__.startswith("services.site.")
    }
    assert routed, "no API route"
    documented = {(method, path): op for method, path, op in _operations()}
    assert set(routed) == set(documented)
    for key, handler in routed.items():
        assert documented[key]["x-handler"] == f"{handler.__module__}.{handler.__qualname__}", key


def test_operation_ids_unique_and_path_parameters_declared() -> None:
    """Each operation has a unique operationId and declares every `{param}` of its path."""
    ids = [op["operationId"] for _, _, op in _operations()]
    assert len(ids) == len(set(ids))
    for _, path, op in _operations():
        in_path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert in_path == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path


def test_source_names_are_the_registry() -> None:
    """The SourceName enum lists exactly the installed sources (unknown ones are 400/404)."""
    assert DOC["components"]["schemas"]["SourceName"]["enum"] == sorted(SOURCES)


def test_export_metric_names_are_the_registry() -> None:
    """The CSV export's `metric` enum lists exactly the metrics the installed sources declare
    (any other is a 400)."""
    (metric,) = [
        p for p in DOC["paths"]["/api/v1/works.csv"]["get"]["parameters"] if p["name"] == "metric"
    ]
    declared = {spec.name for plugin in SOURCES.values() for spec in plugin.metrics}
    assert metric["schema"]["enum"] == sorted(declared)


def test_shared_shapes_match_the_event_schemas() -> None:
    """The work fields and the event item are the ones the topic schemas define."""
    work_event = json.loads((SCHEMA_DIR / "work.schema.json").read_text())
    observation = json.loads((SCHEMA_DIR / "observation.schema.json").read_text())
    schemas = DOC["components"]["schemas"]
    work_fields = work_event["properties"]["work"]["properties"]
    assert {k: schemas["Work"]["properties"][k] for k in work_fields} == work_fields
    event = {k: v for k, v in schemas["Event"].items() if k != "description"}
    assert event == observation["properties"]["events"]["items"]


def test_examples_match_their_schemas() -> None:
    """Every example in the document is valid against the schema beside it."""
    checked = 0
    for _, _, op in _operations():
        bodies = [op.get("requestBody", {})]
        bodies += [_response_object(r) for r in op["responses"].values()]
        for body in bodies:
            for media in body.get("content", {}).values():
                if "example" in media:
                    assert _errors(media["schema"], media["example"]) == []
                    checked += 1
    for response in DOC["components"]["responses"].values():
        for media in response["content"].values():
            if "example" in media:
                assert _errors(media["schema"], media["example"]) == []
                checked += 1
    assert checked >= 5


def _response_object(response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        found: dict[str, Any] = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        return found
    return response


async def _seed(k: Kit) -> None:
    """The works every test reads: refreshed, one with a failed call, one typed."""
    await k.register([PCBI, UNKNOWN_UPSTREAM])
    await refresh_until_idle(k.pipeline)
    # alone in its batch, so the failed call (Crossref batches works) fails only PEERJ
    k.fail("crossref", PEERJ, 503, "Service Unavailable", "text/plain")
    await k.register([PEERJ])
    await refresh_until_idle(k.pipeline)
    # one work as a publisher import leaves it: type and publisher id set
    pcbi = await k.store.get_work(PCBI)
    assert pcbi is not None
    await k.store.update_works([replace(pcbi, type="journal-article", publisher_id="340")])
    await SqlitePublishers(k.store).put_publisher(Publisher("340", "Public Library of Science"))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded store's file, made once for the module (refreshing through the stub is most
    of what a test here would cost): each test gets a copy of it."""
    folder = tmp_path_factory.mktemp("openapi-seed")

    async def make() -> None:
        async with pipeline_kit(folder) as k:
            await _seed(k)

    asyncio.run(make())
    return folder / "alm.sqlite"


@pytest.fixture
async def kit(tmp_path: Path, seeded: Path) -> AsyncIterator[Kit]:
    shutil.copyfile(seeded, tmp_path / "alm.sqlite")
    async with pipeline_kit(tmp_path) as k:
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with api_client(kit, tmp_path) as c:
        yield c


async def test_fixture_covers_the_nullable_branches(client: TestClient[Any, Any]) -> None:
    """The data the conformance calls run on has a failed source (alm null) and a not-found."""
    body = await (await client.get(f"/api/v1/works/{PEERJ}")).json()
    crossref = next(s for s in body["sources"] if s["name"] == "crossref")
    assert crossref["status"] == "error"
    assert crossref["alm"] is None
    unknown = await (await client.get(f"/api/v1/works/{UNKNOWN_UPSTREAM}")).json()
    assert {s["status"] for s in unknown["sources"]} == {"not_found"}


CALLS: list[tuple[str, str, str, Any, int]] = [
    # (documented path, method, request path, JSON body or None, expected status)
    ("/healthz", "get", "/healthz", None, 200),
    ("/readyz", "get", "/readyz", None, 200),
    ("/api/v1/openapi.json", "get", "/api/v1/openapi.json", None, 200),
    ("/api/v1/sources", "get", "/api/v1/sources", None, 200),
    ("/api/v1/sources/{name}/top", "get", "/api/v1/sources/crossref/top", None, 200),
    ("/api/v1/sources/{name}/top", "get", "/api/v1/sources/crossref/top?per_page=1", None, 200),
    ("/api/v1/sources/{name}/top", "get", "/api/v1/sources/nope/top", None, 404),
    ("/api/v1/summary", "get", "/api/v1/summary", None, 200),
    ("/api/v1/sources/{name}/top", "get", "/api/v1/sources/crossref/top?cursor=x", None, 400),
    ("/api/v1/sources/{name}/top", "get", "/api/v1/sources/crossref/top?per_page=0", None, 400),
    (
        "/api/v1/sources/{name}/{action}",
        "post",
        "/api/v1/sources/crossref/pause",
        {"reason": "maintenance"},
        200,
    ),
    ("/api/v1/sources/{name}/{action}", "post", "/api/v1/sources/crossref/resume", None, 200),
    ("/api/v1/sources/{name}/{action}", "post", "/api/v1/sources/nope/pause", None, 404),
    (
        "/api/v1/sources/{name}/{action}",
        "post",
        "/api/v1/sources/crossref/pause",
        {"reason": 5},
        400,
    ),
    ("/api/v1/works", "get", "/api/v1/works?per_page=2&page=1", None, 200),
    ("/api/v1/works", "get", f"/api/v1/works?ids={PEERJ},pmid:1", None, 200),
    ("/api/v1/works", "get", "/api/v1/works?per_page=1001", None, 400),
    ("/api/v1/works", "post", "/api/v1/works", ["10.1371/journal.pbio.1001555", "x"], 200),
    ("/api/v1/works", "post", "/api/v1/works", ["x", "10.12/y"], 200),
    ("/api/v1/works", "post", "/api/v1/works", ["10.1234/" + "a" * 2049], 400),
    ("/api/v1/works", "post", "/api/v1/works", {"ids": ["x"], "other": 1}, 400),
    ("/api/v1/works", "get", "/api/v1/works?ids=10.1234/a,,pmid:1", None, 400),
    ("/api/v1/works", "get", "/api/v1/works?per_page=%D9%A5", None, 400),
    ("/api/v1/works", "get", f"/api/v1/works?ids={PEERJ}&per_page=0", None, 400),
    (
        "/api/v1/works/{id}",
        "get",
        "/api/v1/works/10.%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94/x",
        None,
        400,
    ),
    ("/api/v1/works/{id}/history", "get", f"/api/v1/works/{PCBI}/history?source=", None, 400),
    ("/api/v5/articles", "get", f"/api/v5/articles?ids={PEERJ},pmid:1&type=doi", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?source_id=", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?page=0", None, 400),
    ("/api/v5/articles", "get", "/api/v5/articles?ids=10.9999/none", None, 200),
    ("/api/v1/works", "post", "/api/v1/works", {"ids": "not a list"}, 400),
    ("/api/v1/works/{id}", "get", f"/api/v1/works/{PEERJ}", None, 200),
    ("/api/v1/works/{id}", "get", f"/api/v1/works/{UNKNOWN_UPSTREAM}", None, 200),
    ("/api/v1/works/{id}", "get", "/api/v1/works/10.1234/never.registered", None, 404),
    ("/api/v1/works/{id}", "get", "/api/v1/works/not-a-doi", None, 400),
    ("/api/v1/works/{id}/history", "get", f"/api/v1/works/{PEERJ}/history?period=year", None, 200),
    ("/api/v1/works/{id}/history", "get", f"/api/v1/works/{PCBI}/history?period=day", None, 200),
    ("/api/v1/works/{id}/history", "get", f"/api/v1/works/{PCBI}/history?period=week", None, 400),
    ("/api/v5/articles", "get", f"/api/v5/articles?ids={PEERJ},{PCBI}&info=detail", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?info=summary&per_page=1&page=2", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?order=openalex", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?per_page=51", None, 200),
    ("/api/v1/works", "get", "/api/v1/works?publisher_id=340", None, 200),
    ("/api/v1/works", "get", "/api/v1/works?publisher_id=999&page=2", None, 200),
    ("/api/v1/works", "get", "/api/v1/works?publisher_id=PLOS", None, 400),
    ("/api/v1/works", "get", "/api/v1/works?cursor=*&per_page=1", None, 200),
    ("/api/v1/works", "get", "/api/v1/works?cursor=10.1371%2Fzzz", None, 200),
    ("/api/v1/works", "get", "/api/v1/works?cursor=*&publisher_id=340", None, 200),
    ("/api/v1/works", "get", "/api/v1/works?cursor=", None, 400),
    ("/api/v1/works.csv", "get", "/api/v1/works.csv", None, 200),
    ("/api/v1/works.csv", "get", "/api/v1/works.csv?source=crossref&metric=citations", None, 200),
    ("/api/v1/works.csv", "get", f"/api/v1/works.csv?ids={PEERJ},pmid:1&cursor=*", None, 200),
    ("/api/v1/works.csv", "get", "/api/v1/works.csv?publisher_id=340&metric=views", None, 200),
    ("/api/v1/works.csv", "get", "/api/v1/works.csv?metric=total", None, 400),
    ("/api/v1/works.csv", "get", "/api/v1/works.csv?source=nope", None, 400),
    ("/api/v5/articles", "get", "/api/v5/articles?publisher_id=340", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?publisher=public+library+of+science", None, 200),
    ("/api/v5/articles", "get", f"/api/v5/articles?ids={PEERJ},{PCBI}&publisher=340", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?publisher=Nobody", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?publisher_id=340&order=crossref", None, 200),
    ("/api/v5/articles", "get", "/api/v5/articles?publisher=" + "0" * 501, None, 400),
    (
        "/api/v1/works/{id}/provenance",
        "get",
        f"/api/v1/works/{PEERJ}/provenance",
        None,
        200,
    ),
    (
        "/api/v1/works/{id}/provenance",
        "get",
        f"/api/v1/works/{PCBI}/provenance?source=crossref&body=false",
        None,
        200,
    ),
    ("/api/v1/works/{id}/provenance", "get", f"/api/v1/works/{PCBI}/provenance?body=no", None, 400),
    ("/api/v1/works/{id}/provenance", "get", "/api/v1/works/10.1234/none/provenance", None, 404),
    ("/api/v1/alerts", "get", "/api/v1/alerts?per_page=1", None, 200),
    ("/api/v1/alerts", "get", "/api/v1/alerts?kind=spike&since=2026-01-01", None, 200),
    ("/api/v1/alerts", "get", "/api/v1/alerts?cursor=nope", None, 400),
    ("/admin/alerts", "get", "/admin/alerts?per_page=1", None, 200),
    ("/admin/alerts", "get", "/admin/alerts?kind=nope", None, 400),
    ("/api/v1/failures", "get", "/api/v1/failures?per_page=1", None, 200),
    ("/api/v1/failures", "get", "/api/v1/failures?order=work&source=crossref", None, 200),
    ("/api/v1/failures", "get", "/api/v1/failures?cursor=nope", None, 400),
    ("/admin/failures", "get", "/admin/failures?per_page=1", None, 200),
    ("/admin/failures", "get", "/admin/failures?order=nope", None, 400),
    ("/api/v1/deadletters", "get", "/api/v1/deadletters?per_page=5", None, 200),
    ("/api/v1/deadletters", "get", "/api/v1/deadletters?before=x", None, 400),
    ("/admin/deadletters", "get", "/admin/deadletters?per_page=5", None, 200),
    ("/api/v5/sources", "get", "/api/v5/sources", None, 200),
    ("/api/v3/articles", "get", f"/api/v3/articles?ids={PEERJ},{PCBI}&info=detail", None, 200),
    ("/api/v3/articles", "get", f"/api/v3/articles?ids={PEERJ}&source=nope", None, 404),
    ("/api/v3/articles", "get", f"/api/v3/articles?ids={PEERJ}&info=detail&year=2018", None, 200),
    ("/api/v3/articles", "get", f"/api/v3/articles?ids={PEERJ}&days=10&months=x", None, 200),
    ("/api/v3/articles/{id}", "get", f"/api/v3/articles/info:doi/{PEERJ}?info=history", None, 200),
    ("/api/v3/articles/{id}", "get", "/api/v3/articles/info:doi/10.9999/none", None, 404),
    ("/api/v5/sources/{name}", "get", "/api/v5/sources/crossref", None, 200),
    ("/api/v5/sources/{name}", "get", "/api/v5/sources/nope", None, 404),
    ("/api/v1/signup", "post", "/api/v1/signup", {"name": "Jane", "email": "j@example.org"}, 201),
    ("/api/v1/signup", "post", "/api/v1/signup", {"name": "Jane"}, 400),
    ("/api/v1/signup", "post", "/api/v1/signup", {"name": "J", "email": "<b>@x"}, 400),
    ("/api/v1/keys", "get", "/api/v1/keys?per_page=2", None, 200),
    ("/api/v1/keys", "get", "/api/v1/keys?per_page=0", None, 400),
    ("/api/v1/keys", "post", "/api/v1/keys", {"name": "site", "rate_per_minute": 60}, 201),
    ("/api/v1/keys", "post", "/api/v1/keys", {"name": "x", "role": "owner"}, 400),
    ("/api/v1/keys/me", "get", "/api/v1/keys/me", None, 200),
    ("/api/v1/keys/{id}", "get", "/api/v1/keys/{reader}", None, 200),
    ("/api/v1/keys/{id}", "get", "/api/v1/keys/000000000000", None, 404),
    ("/api/v1/keys/{id}", "get", "/api/v1/keys/NOT-AN-ID", None, 400),
    ("/api/v1/keys/{id}/revoke", "post", "/api/v1/keys/{reader}/revoke", None, 200),
    ("/api/v1/keys/{id}/revoke", "post", "/api/v1/keys/000000000000/revoke", None, 404),
]


@pytest.mark.parametrize(
    ("path", "method", "url", "body", "status"),
    CALLS,
    ids=[f"{c[1]} {c[2]} -> {c[4]}" for c in CALLS],
)
async def test_real_responses_match_the_document(
    client: TestClient[Any, Any],
    kit: Kit,
    path: str,
    method: str,
    url: str,
    body: Any,
    status: int,
) -> None:
    """A real call answers with a documented status, media type, headers and a body that the
    documented schema accepts (admin routes called with an admin key)."""
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    if ACCESS[(method.upper(), path)] in (Access.ADMIN, Access.KEY):
        kwargs["headers"] = await kit.admin_headers()
    if "{reader}" in url:
        reader, _ = await create_key(SqliteKeyStore(kit.store), "r", Role.READER, kit.clock())
        url = url.replace("{reader}", reader.key_id)
    resp = await client.request(method.upper(), url, **kwargs)
    assert resp.status == status, await resp.text()
    await _conforms(resp, path, method, status)


async def _conforms(resp: Any, path: str, method: str, status: int) -> None:
    documented = _response(path, method, status)
    assert resp.content_type in documented["content"]
    as_text = resp.content_type in ("text/html", "text/csv")
    payload = await (resp.text() if as_text else resp.json())
    assert _errors(documented["content"][resp.content_type]["schema"], payload) == []
    for name, header in documented.get("headers", {}).items():
        if "$ref" in header:
            header = DOC["components"]["headers"][header["$ref"].rsplit("/", 1)[1]]
        if header.get("required"):
            assert name in resp.headers, name
        if name in resp.headers and header["schema"].get("type") == "integer":
            assert _errors(header["schema"], int(resp.headers[name])) == [], name


def test_security_follows_the_access_table() -> None:
    """Every operation declares the security its route's access level enforces (none for
    public routes, optional keys for open and read routes, a required key otherwise) and
    documents the 401/403/429 it can answer."""
    for method, path, op in _operations():
        need = ACCESS[(method.upper(), path)]
        statuses = set(op["responses"])
        if need is Access.PUBLIC:
            assert "security" not in op and not {"401", "403", "429"} & statuses, path
            continue
        optional = need in (Access.OPEN, Access.READ)
        assert ({} in op["security"]) is optional, (method, path)
        assert {"bearerKey": []} in op["security"] and {"queryKey": []} in op["security"]
        assert {"401", "429"} <= statuses, (method, path)
        assert need is not Access.ADMIN or "403" in statuses, (method, path)


AUTH_CALLS: list[tuple[str, str, str, str | None, int]] = [
    # (documented path, method, request path, which key, expected status)
    ("/api/v1/works", "post", "/api/v1/works", None, 401),
    ("/api/v1/works", "post", "/api/v1/works", "reader", 403),
    ("/api/v1/works", "post", "/api/v1/works", "wrong", 401),
    ("/api/v1/works", "get", "/api/v1/works", "wrong", 401),
    ("/api/v1/keys", "get", "/api/v1/keys", "reader", 403),
    ("/api/v1/keys/me", "get", "/api/v1/keys/me", None, 401),
    ("/api/v1/sources/{name}/{action}", "post", "/api/v1/sources/crossref/pause", None, 401),
]


@pytest.mark.parametrize(
    ("path", "method", "url", "key", "status"),
    AUTH_CALLS,
    ids=[f"{c[1]} {c[2]} {c[3]} key -> {c[4]}" for c in AUTH_CALLS],
)
async def test_refusals_match_the_document(
    client: TestClient[Any, Any],
    kit: Kit,
    path: str,
    method: str,
    url: str,
    key: str | None,
    status: int,
) -> None:
    """401 and 403 answers are documented, with their body and WWW-Authenticate."""
    headers = {}
    if key == "reader":
        _, secret = await create_key(SqliteKeyStore(kit.store), "r", Role.READER, kit.clock())
        headers["X-API-Key"] = secret
    elif key == "wrong":
        headers["X-API-Key"] = "alm_000000000000_" + "A" * 43
    resp = await client.request(method.upper(), url, headers=headers, json=["10.1234/x"])
    assert resp.status == status, await resp.text()
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    await _conforms(resp, path, method, status)


async def test_a_spent_quota_matches_the_document(client: TestClient[Any, Any], kit: Kit) -> None:
    """The 429 of a spent quota carries the documented headers, and so do the answers before."""
    _, secret = await create_key(
        SqliteKeyStore(kit.store), "slow", Role.READER, kit.clock(), rate_per_minute=1
    )
    first = await client.get("/api/v1/works", headers={"X-API-Key": secret})
    await _conforms(first, "/api/v1/works", "get", 200)
    assert first.headers["X-RateLimit-Remaining"] == "0"
    second = await client.get("/api/v1/works", headers={"X-API-Key": secret})
    assert second.status == 429
    await _conforms(second, "/api/v1/works", "get", 429)
    assert int(second.headers["Retry-After"]) >= 1


async def test_detail_article_carries_events(client: TestClient[Any, Any]) -> None:
    """The v5 detail call above really exercises the Event schema (not an empty list)."""
    resp = await client.get(f"/api/v5/articles?ids={PEERJ}&info=detail")
    sources = (await resp.json())["data"][0]["sources"]
    assert any(s["events"] for s in sources)


async def test_metrics_are_not_on_the_public_port(client: TestClient[Any, Any]) -> None:
    """/metrics is neither served nor documented on the API's port by default."""
    resp = await client.get("/metrics")
    assert resp.status == 404
    assert _errors({"$ref": "#/components/schemas/Error"}, await resp.json()) == []
    assert "/metrics" not in DOC["paths"]


async def test_metrics_on_the_public_port_when_asked(tmp_path: Path) -> None:
    """With ALM_API_PUBLIC_METRICS the API port serves the Prometheus text exposition too."""
    settings = Settings.from_env({"ALM_API_PUBLIC_METRICS": "true"}).with_(data_dir=tmp_path)
    async with TestClient(TestServer(init_app(api_context(settings)))) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert "alm_upstream_requests_total" in await resp.text()


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [("GET", "/api/v1/nothing-here", 404), ("DELETE", "/api/v1/works", 405)],
)
async def test_unrouted_requests_get_the_error_body(
    client: TestClient[Any, Any], method: str, url: str, status: int
) -> None:
    """Unknown paths and methods answer with the Error schema the document describes."""
    resp = await client.request(method, url)
    assert resp.status == status
    assert _errors({"$ref": "#/components/schemas/Error"}, await resp.json()) == []
    if status == 405:
        assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


async def test_served_document_is_the_file(client: TestClient[Any, Any]) -> None:
    """GET /api/v1/openapi.json serves schemas/openapi.json byte for byte."""
    resp = await client.get("/api/v1/openapi.json")
    assert resp.content_type == "application/json"
    assert await resp.read() == OPENAPI_PATH.read_bytes()


@pytest.mark.parametrize("path", ["/api/v3/articles", "/api/v5/articles"])
def test_form_fields_of_the_overridden_posts_are_the_documented_ones(path: str) -> None:
    """The POST's form fields the server accepts are the ones the document lists (the GET's
    query parameters), but for `api_key`: the security schemes document where a key goes (a
    parameter of its own would let a client send two keys, which is a 400)."""
    from services.api import v3, v5

    accepted = {"/api/v3/articles": v3.PARAMETERS, "/api/v5/articles": v5.PARAMETERS}[path]
    accepted = set(accepted) - {"api_key"}
    body = DOC["paths"][path]["post"]["requestBody"]["content"]
    for content in body.values():
        assert set(content["schema"]["properties"]) == set(accepted)
    query = {p["name"] for p in DOC["paths"][path]["get"]["parameters"] if p["in"] == "query"}
    assert query == set(accepted)
