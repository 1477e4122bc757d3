"""How the existing ALM clients read an answer, restated as checks (docs/clients.md): pyalm
(lagotto/pyalm 3d4df6a, `pyalm.py`, `cleanup.py`, `events.py`), rOpenSci `alm` 0.4.1, almviz and
the OJS ALM plugin. Each check applies the client's own conversion (pyalm's `strptime` formats,
`int()` on numeric strings, R's scalar-only data frames, JavaScript's `new Date`), so a field a
client would choke on fails here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from aiohttp.test_utils import TestClient

from tests.unit.pipeline_kit import Kit, api_client

ALM_TIME = "%Y-%m-%dT%H:%M:%SZ"  # pyalm cleanup._parse_dates / Lagotto's iso8601
ALM_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
V5_SLOTS = ("pdf", "html", "readers", "comments", "likes", "total")
V3_KEYS = ("pdf", "html", "shares", "groups", "comments", "likes", "citations", "total")
SCALAR = (str, int, float, bool, type(None))


def alm_time(value: Any, nullable: bool = True) -> None:
    """pyalm: `strptime(v, '%Y-%m-%dT%H:%M:%SZ')`; a fraction of a second crashes it."""
    if value is None and nullable:
        return
    assert isinstance(value, str) and ALM_TIME_RE.fullmatch(value), value
    datetime.strptime(value, ALM_TIME)


def count(value: Any) -> None:
    """A JSON integer or null (pyalm `int()`s strings; JavaScript would concatenate them)."""
    assert value is None or (isinstance(value, int) and not isinstance(value, bool)), value


def issued(value: Any) -> None:
    """pyalm: the three date parts joined with '-' and parsed `%Y-%m-%d`; R: year and month."""
    assert isinstance(value, dict) and list(value) == ["date-parts"], value
    [parts] = value["date-parts"]
    assert len(parts) == 3 and all(isinstance(p, int) for p in parts), parts
    datetime.strptime("-".join(str(p) for p in parts), "%Y-%m-%d")


def history_rows(rows: Any, period: str, slots: tuple[str, ...]) -> None:
    """pyalm adds `date` to each row from year[-month[-day]]; charts plot `row[slot]`."""
    assert isinstance(rows, list), rows
    fmt = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d"}[period]
    fields = {"year": ("year",), "month": ("year", "month"), "day": ("year", "month", "day")}
    for row in rows:
        datetime.strptime("-".join(str(row[f]) for f in fields[period]), fmt)
        assert "total" in row
        for slot in slots:
            count(row.get(slot))


def years_sum_months(source: dict[str, Any]) -> None:
    """The issue's history rule: by_year is the per-year sum of by_month where months exist."""
    if not source["by_month"]:
        return
    sums: dict[int, int] = {}
    for row in source["by_month"]:
        sums[row["year"]] = sums.get(row["year"], 0) + row["total"]
    assert {r["year"]: r["total"] for r in source["by_year"]} == sums


def v3_histories(source: dict[str, Any]) -> None:
    """ALM 2.x `histories` (`info=history|detail`): rOpenSci alm 0.1 reads each entry by
    position, `str_split(x[[1]], "T")[[1]][[1]]` as the date and `x[[2]]` as the total (a null
    makes `sapply` return a list its `data.frame` rejects); 2013's pyalm `strptime`s
    `update_date` and `int()`s `total`. Newest first (ALM: `retrieved_at DESC`), the first
    entry being the source's last retrieval: its `update_date` and `metrics.total`."""
    rows = source["histories"]
    assert isinstance(rows, list), rows
    for entry in rows:
        assert list(entry) == ["update_date", "total"], entry
        alm_time(entry["update_date"], nullable=False)
        datetime.strptime(entry["update_date"].split("T")[0], "%Y-%m-%d")
        assert isinstance(entry["total"], int) and not isinstance(entry["total"], bool), entry
        assert entry["total"] >= 0
    stamps = [entry["update_date"] for entry in rows]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps), stamps
    if source["update_date"] is None:
        assert rows == []
    else:
        assert rows, source["name"]
        assert rows[0] == {
            "update_date": source["update_date"],
            "total": source["metrics"]["total"] or 0,
        }


def v5_envelope(body: Any) -> None:
    """pyalm: `data` a list, the rest handed over as meta; R: every other key a scalar."""
    assert isinstance(body, dict)
    assert list(body) == ["total", "total_pages", "page", "error", "data"]
    assert all(isinstance(body[k], int) for k in ("total", "total_pages", "page"))
    assert body["error"] is None and isinstance(body["data"], list)


def v5_work(work: dict[str, Any], with_sources: bool) -> None:
    """Every field pyalm, R (`get_details`, `doiorid`) and almviz read from one work."""
    assert isinstance(work["id"], str) and work["id"]  # R names results by it (character(1))
    for key in ("doi", "title", "canonical_url", "pmid", "pmcid", "mendeley_uuid", "scp", "wos"):
        assert key in work and isinstance(work[key], str | None), key
    for key in ("publisher_id", "ark"):
        assert key in work and isinstance(work[key], SCALAR), key
    assert work["pmcid"] is None or work["pmcid"].isdigit()
    assert all(isinstance(v, SCALAR) for k, v in work.items() if k not in ("issued", "sources"))
    issued(work["issued"])
    for group in ("viewed", "saved", "discussed", "cited"):
        assert isinstance(work[group], int)
    alm_time(work["update_date"])
    assert ("sources" in work) is with_sources
    for source in work.get("sources", []):
        v5_source(source)


def v5_source(source: dict[str, Any]) -> None:
    """pyalm `Source`/`Metrics`, R `get_totals`/`get_sumby`, almviz's article page."""
    for key in ("name", "display_name"):
        assert isinstance(source[key], str)
    assert source["group_name"] in ("viewed", "saved", "discussed", "cited", "recommended")
    assert isinstance(source["events_url"], str | None)
    assert list(source["metrics"]) == list(V5_SLOTS)
    for value in source["metrics"].values():
        count(value)
    alm_time(source["update_date"])
    for period in ("day", "month", "year"):
        history_rows(source[f"by_{period}"], period, ("html", "pdf", "total"))
    years_sum_months(source)


def v5_event(entry: dict[str, Any]) -> None:
    """pyalm's event classes and R `alm_events`: `event` first, strict `event_time`, CSL with
    an author list, a container-title string and a lower-case `url` (almviz, R)."""
    assert list(entry) == ["event", "event_time", "event_url", "event_csl"], list(entry)
    alm_time(entry["event_time"])
    assert isinstance(entry["event_url"], str | None)
    csl(entry["event_csl"])


def csl(item: dict[str, Any]) -> None:
    """almviz `show.js` and R `parse_csl` read these without checking."""
    assert isinstance(item["author"], list)
    for author in item["author"]:
        assert isinstance(author["family"], str) and isinstance(author["given"], str)
    assert isinstance(item["container-title"], str)
    assert "title" in item and "type" in item and "url" in item
    parts = item.get("issued", {}).get("date-parts", [[0]])[0]
    assert 1 <= len(parts) <= 3 and all(isinstance(p, int) for p in parts)


def journal_cite(event: dict[str, Any]) -> None:
    """pyalm `CrossRef`: `int()` on fl_count/year/first_page/issue/volume when strings; R reads
    publication_type, contributors.contributor, issn."""
    for key in ("fl_count", "year", "first_page", "issue", "volume"):
        value = event[key]
        if isinstance(value, str):
            int(value)
        else:
            count(value)
    for key in ("article_title", "doi", "issn", "journal_abbreviation", "journal_title"):
        assert isinstance(event[key], str | None), key
    assert isinstance(event["publication_type"], str)
    for person in event["contributors"]["contributor"]:
        assert {"contributor_role", "first_author", "given_name", "sequence", "surname"} <= set(
            person
        )


# -- keys ------------------------------------------------------------------------------------

# The keys the tests write where a client sends its configured key; requests go out with a key
# this server issued instead (same request, same place), as a deployment's client would send.
PLACEHOLDER_KEYS = ("k123", "journal-key", "k", "K")
_PLACEHOLDER = re.compile(r"(api_key=)(?:" + "|".join(PLACEHOLDER_KEYS) + r")(?=&|$)")


def with_key(text: str, key: str) -> str:
    """`text` (a URL or query) with a placeholder `api_key=` value replaced by `key`."""
    return _PLACEHOLDER.sub(lambda m: m.group(1) + key, text)


class KeyedClient:
    """A test client whose requests carry `key` where the test wrote a placeholder key (in the
    URL, or as the `api_key` field of a dict body)."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def _data(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        data = kwargs.get("data")
        if isinstance(data, dict) and data.get("api_key") in PLACEHOLDER_KEYS:
            kwargs = {**kwargs, "data": {**data, "api_key": self.key}}
        return kwargs

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(with_key(path, self.key), **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(with_key(path, self.key), **self._data(kwargs))

    def options(self, path: str, **kwargs: Any) -> Any:
        return self.client.options(with_key(path, self.key), **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, with_key(path, self.key), **self._data(kwargs))


@asynccontextmanager
async def keyed_api_client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """The API's test client over `kit`, each placeholder key the clients send replaced by an
    admin key this server issued (sent where the client sends its key)."""
    async with api_client(kit, tmp_path) as client:
        key = (await kit.admin_headers())["Authorization"].removeprefix("Bearer ")
        yield cast(TestClient[Any, Any], KeyedClient(client, key))
