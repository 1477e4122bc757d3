"""The sign-up page (services/site/signup.py) over HTTP: the form, a key shown once that then
works on the API, the form again with the problem (input escaped, never run), the sign-up
quota and a closed sign-up as pages, the stylesheet. The same flow in a real browser:
tests/browser/test_signup_page.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.core.quota import Rate
from services.site.html import SECURITY_HEADERS
from tests.unit.test_access import Api, api


@pytest.fixture
async def open_api(tmp_path: Path) -> AsyncIterator[Api]:
    async with api(tmp_path) as a:
        yield a


KEY = re.compile(r'<code class="key" id="key">(alm_[0-9a-f]{12}_[A-Za-z0-9_-]{43})</code>')


async def test_the_form_is_a_page_with_labels_and_an_alternate(open_api: Api) -> None:
    resp = await open_api.client.get("/signup")
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers[name] == value
    assert "<title>Get an API key · ALM</title>" in html
    assert '<link rel="stylesheet" href="/static/site.css">' in html
    assert '<link rel="alternate" type="application/json" href="/api/v1/openapi.json"' in html
    assert re.search(r'<label>[^<]*\n<input name="name"', html)  # each input inside its label
    assert re.search(r'<label>E-mail address .*\n<input name="email" type="email"', html)
    assert '<form method="post" action="/signup">' in html and "<script" not in html


async def test_a_signup_shows_a_key_once_that_works_on_the_api(open_api: Api) -> None:
    form = {"name": "Jane's lab", "email": "jane@example.org"}
    resp = await open_api.client.post("/signup", data=form)
    html = await resp.text()
    assert resp.status == 201, html
    assert resp.headers["Cache-Control"] == "no-store"
    match = KEY.search(html)
    assert match, html
    key = match.group(1)
    assert "issued to Jane&#x27;s lab" in html
    assert f'curl -H "Authorization: Bearer {key}"' in html
    me = await open_api.client.get("/api/v1/keys/me", headers={"X-API-Key": key})
    body = await me.json()
    assert me.status == 200 and body["role"] == "reader" and body["name"] == "Jane's lab"
    write = await open_api.client.post("/api/v1/works", json=["10.1/x"], headers={"X-API-Key": key})
    assert write.status == 403  # a reader key


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"name": "<script>alert(1)</script>", "email": "not-an-address"}, "&#x27;email&#x27;"),
        ({"name": "", "email": "jane@example.org"}, "&#x27;name&#x27;"),
        ({"name": "x\u202ey", "email": "jane@example.org"}, "&#x27;name&#x27;"),
    ],
)
async def test_a_wrong_field_gives_the_form_again_escaped(
    open_api: Api, form: dict[str, str], problem: str
) -> None:
    resp = await open_api.client.post("/signup", data=form)
    html = await resp.text()
    assert resp.status == 400
    assert re.search(r'<p class="error" id="problem" role="alert">[^<]*' + problem, html), html
    assert "<script>alert" not in html and "alm_" not in html
    if form["name"].startswith("<"):
        assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in html  # kept, escaped
    assert await open_api.keys.list_keys() == []


async def test_fields_it_does_not_take_and_json_are_refused(open_api: Api) -> None:
    extra = {"name": "a", "email": "a@example.org", "role": "admin"}
    assert (await open_api.client.post("/signup", data=extra)).status == 400
    as_json = await open_api.client.post("/signup", json={"name": "a", "email": "a@example.org"})
    assert as_json.status == 400
    assert await open_api.keys.list_keys() == []


async def test_the_quota_and_a_closed_signup_are_pages(tmp_path: Path) -> None:
    form = {"name": "a", "email": "a@example.org"}
    async with api(tmp_path / "a", rate_signup=Rate(1, 3600)) as a:
        assert (await a.client.post("/signup", data=form)).status == 201
        resp = await a.client.post("/signup", data=form)
        html = await resp.text()
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
        assert resp.content_type == "text/html" and "too many requests" in html
        assert len(await a.keys.list_keys()) == 1
    async with api(tmp_path / "b", signup=False) as b:
        for resp in (await b.client.get("/signup"), await b.client.post("/signup", data=form)):
            assert resp.status == 403 and "sign-up is closed" in await resp.text()
        assert await b.keys.list_keys() == []


async def test_the_stylesheet_is_served_from_the_package(open_api: Api) -> None:
    resp = await open_api.client.get("/static/site.css")
    assert resp.status == 200 and resp.content_type == "text/css"
    assert "max-age" in resp.headers["Cache-Control"]
    assert "X-RateLimit-Limit" not in resp.headers  # public: no quota spent on it
    css = await resp.text()
    assert ":focus-visible" in css and "@import" not in css and "url(" not in css
