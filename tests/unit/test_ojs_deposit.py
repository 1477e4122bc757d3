"""The OJS ALM plugin's deposit: the payload parser, and `POST /api/v1/deposits/ojs` as the
plugin's scheduled task sends it (multipart form, as curl does with a PHP array) and checks
it (`success` set and `count == count($articles)`), resent the next day after a failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from services.core.deposits import Deposited, Refused, parse_line, parse_payload
from tests.unit.clients_kit import keyed_api_client
from tests.unit.pipeline_kit import Kit, pipeline_kit

# `"$doi $publishedDate $title\n"` per article; "Ma  pectrometry" is the plugin's /s+/ bug
PAYLOAD = (
    "10.1234/ojs.2024.1 2024-03-05 A Study of Ma  pectrometry\n"
    "10.1234/OJS.2024.2 1970-01-01 Undated\n"
    "10.1234/ojs.2024.3 2024-03-07 \n"
)


@pytest.mark.parametrize(
    ("line", "doi", "published", "title"),
    [
        (
            "10.1234/a 2024-03-05 A title with  spaces",
            "10.1234/a",
            date(2024, 3, 5),
            "A title with  spaces",
        ),
        ("10.1234/B 1970-01-01 x", "10.1234/b", None, "x"),
        ("10.1234/c 2024-03-05", "10.1234/c", date(2024, 3, 5), ""),
        ("https://doi.org/10.1234/d 2024-03-05 T", "10.1234/d", date(2024, 3, 5), "T"),
    ],
)
def test_line_accepted(line: str, doi: str, published: date | None, title: str) -> None:
    """DOI, date (1970-01-01 = none) and the rest of the line as the title."""
    parsed = parse_line(7, line)
    assert isinstance(parsed, Deposited)
    assert (parsed.line, parsed.doi.value, parsed.published, parsed.title) == (
        7,
        doi,
        published,
        title,
    )


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("spilled title line", "DOI"),
        ("10.1234/a", "DOI YYYY-MM-DD"),
        ("10.1234/a 2024-13-01 T", "date"),
        ("10.1234/a 05/03/2024 T", "date"),
        ("not-a-doi 2024-03-05 T", "not-a-doi"),
    ],
)
def test_line_refused(line: str, needle: str) -> None:
    """A line that is not an article is refused with a reason naming what is wrong."""
    parsed = parse_line(3, line)
    assert isinstance(parsed, Refused) and parsed.line == 3
    assert needle.lower() in parsed.error.lower()


def test_payload_lines_numbered_blank_skipped_crlf_tolerated() -> None:
    accepted, refused = parse_payload(
        "10.1234/a 2024-01-01 A\r\n\r\ntitle spill\n10.1234/b 2024-01-02 B\n"
    )
    assert [(d.line, d.doi.value) for d in accepted] == [(1, "10.1234/a"), (4, "10.1234/b")]
    assert [r.line for r in refused] == [3]


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with keyed_api_client(kit, tmp_path) as c:
        yield c


async def _deposit(client: TestClient[Any, Any], payload: str, multipart: bool = True) -> Any:
    form = FormData(default_to_multipart=multipart)
    form.add_field("api_key", client.key)  # type: ignore[attr-defined]
    form.add_field("payload", payload)
    resp = await client.post(
        "/api/v1/deposits/ojs",
        data=form,
        headers={"Accept": "text/xml, */*", "Expect": "100-continue"},
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _plugin_accepts(answer: Any, articles: int) -> bool:
    """`isset($r->success) && isset($r->count) && $r->count == count($articles)`."""
    return answer.get("success") is not None and answer.get("count") == articles


@pytest.mark.parametrize("multipart", [True, False])
async def test_deposit_registers_and_resend_is_harmless(
    client: TestClient[Any, Any], kit: Kit, multipart: bool
) -> None:
    """Every DOI is registered (and scheduled); the next day's resend counts them again."""
    answer = await _deposit(client, PAYLOAD, multipart)
    assert _plugin_accepts(answer, 3) and answer["errors"] == []
    for n in (1, 2, 3):
        assert (await client.get(f"/api/v1/works/10.1234/ojs.2024.{n}")).status == 200
    assert answer["success"].startswith("3 new")
    again = await _deposit(client, PAYLOAD, multipart)
    assert _plugin_accepts(again, 3) and again["success"].startswith("0 new")
    assert (await kit.store.count_works()) == 3


async def test_bad_lines_reported_good_ones_kept(client: TestClient[Any, Any]) -> None:
    """A title that spilled onto its own line is reported; the articles around it count."""
    answer = await _deposit(
        client, "10.1234/x.1 2024-01-01 First\nsecond line of it\n10.1234/x.2 2024-01-02 Next\n"
    )
    assert answer["count"] == 2
    assert [(e["line"], e["text"]) for e in answer["errors"]] == [(2, "second line of it")]
    assert (await client.get("/api/v1/works/10.1234/x.2")).status == 200


@pytest.mark.parametrize("body", [{"api_key": "k"}, {"api_key": "k", "payload": "  \n"}])
async def test_missing_payload_is_a_400(client: TestClient[Any, Any], body: dict[str, str]) -> None:
    resp = await client.post("/api/v1/deposits/ojs", data=body)
    assert resp.status == 400 and "payload" in (await resp.json())["error"]


@pytest.mark.parametrize("path", ["/api/v1/deposits/ojs", "/api/v5/articles", "/api/v3/articles"])
async def test_malformed_multipart_is_a_400(client: TestClient[Any, Any], path: str) -> None:
    """A multipart part whose header holds a control character (schemathesis found it a 500)."""
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="\x10"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="payload"\r\n\r\ny\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    resp = await client.post(
        path,
        data=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-HTTP-Method-Override": "GET",
        },
    )
    assert resp.status == 400, await resp.text()
    assert "form" in (await resp.json())["error"]
