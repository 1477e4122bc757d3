"""Crossref's catalogue routes on the stub upstream: `/members/{id}`, `/prefixes/{p}` and their
`/works`, answered in the recorded shapes (tests/fixtures/upstream/crossref/catalogues/README.md)
with cursors that behave like api.crossref.org's Elasticsearch scrolls: `cursor=*` opens a
snapshot of the query's works, the same cursor string comes back on every page while the
server keeps the position, a cursor unused for `cursor_ttl` seconds (five minutes) is gone, and
an unknown one answers the recorded 404 `cursor-invalid`. Beyond the last page, pages are empty.

A catalogue is the member's recorded works (`records/`) followed by generated ones, each drawn
deterministically from its position, so a catalogue of any size costs a list of index days.
Tests and benchmarks can resize it, add or re-index works, and make pages fail (`PageFault`).
"""

from __future__ import annotations

import base64
import bisect
import copy
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from services.stub.upstream import StubAnswer, StubRequest

NOT_FOUND = "Resource not found."
SCROLL_PREFIX = b"\x0equeryThenFetch"  # what Elasticsearch scroll ids start with


@dataclass(slots=True)
class PageFault:
    """Works pages fail: after `after` more pages are served, `times` page requests (None: all
    until cleared) answer `status`; with `advance`, the scroll moves on as if the page had been
    served and its answer lost."""

    after: int = 0
    times: int | None = None
    status: int = 503
    advance: bool = False
    retry_after: int | None = None  # seconds, sent as Retry-After (a 429's)


@dataclass(slots=True)
class _Scroll:
    positions: list[int]
    offset: int
    used: float


def _pick(weights: Mapping[str, Any], byte: int) -> str:
    """A key of `weights` (each a share, or an object with one) chosen by `byte` (0-255)."""
    shares = [(k, v["share"] if isinstance(v, dict) else v) for k, v in weights.items()]
    point = byte * sum(s for _, s in shares) / 256
    for key, share in shares:
        point -= share
        if point < 0:
            return key
    return shares[-1][0]


class Catalogue:
    """One member's works, recorded ones first, then generated ones."""

    def __init__(self, spec: Mapping[str, Any], recorded: list[dict[str, Any]]) -> None:
        self.spec = spec
        self.member = str(spec["member"])
        self.prefix = str(spec["prefix"])
        self.recorded = recorded
        self.size = len(recorded) + int(spec["works"])
        indexed = spec["indexed"]
        self.first_day = date.fromisoformat(indexed["from"]).toordinal()
        self.last_day = date.fromisoformat(indexed["until"]).toordinal()
        self.moved: dict[int, int] = {}  # position -> index day set by `reindex`/`add`
        self._days: list[int] | None = None
        self._order: tuple[list[int], list[int]] | None = None  # (days sorted, positions)
        self._years: list[list[int]] | None = None

    def _digest(self, position: int) -> bytes:
        return hashlib.blake2b(f"{self.member}:{position}".encode(), digest_size=16).digest()

    def index_day(self, position: int) -> int:
        """The ordinal of the day `position` was last indexed."""
        if position in self.moved:
            return self.moved[position]
        if position < len(self.recorded):
            parts = self.recorded[position]["indexed"]["date-parts"][0]
            return date(*parts).toordinal()
        h = self._digest(position)
        spec = self.spec["indexed"]
        spread = int.from_bytes(h[8:12], "big")
        if h[12] * 100 // 256 < int(spec["recent_share"]):
            return self.last_day - spread % int(spec["recent_days"])
        return self.first_day + spread % (self.last_day - self.first_day + 1)

    def item(self, position: int) -> dict[str, Any]:
        """The work at `position` as a full `/works` item."""
        if position < len(self.recorded):
            item = dict(self.recorded[position])
        else:
            item = self._generated(position)
        day = date.fromordinal(self.index_day(position))
        moment = datetime(day.year, day.month, day.day, 4, 12, 31, tzinfo=UTC)
        item["indexed"] = {
            "date-parts": [[day.year, day.month, day.day]],
            "date-time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timestamp": int(moment.timestamp() * 1000),
        }
        return item

    def _generated(self, position: int) -> dict[str, Any]:
        h = self._digest(position)
        spec = self.spec
        journal = _pick(spec["journals"], h[0])
        about = spec["journals"][journal]
        number = int(spec["first_number"]) + position - len(self.recorded)
        doi = spec["doi"].format(journal=journal, number=number)
        year = self.year(position)
        issued = [year, 1 + h[2] % 12, 1 + h[3] % 28]
        subjects, topics = spec["titles"]["subjects"], spec["titles"]["topics"]
        title = f"{subjects[h[4] % len(subjects)]} {topics[h[5] % len(topics)]} in {year}"
        return {
            "reference-count": h[6] % 80,
            "publisher": spec["publisher"],
            "DOI": doi,
            "type": _pick(spec["types"], h[7]),
            "source": "Crossref",
            "is-referenced-by-count": h[13] % 60,
            "title": [title],
            "prefix": self.prefix,
            "member": self.member,
            "container-title": [about["title"]],
            "issued": {"date-parts": [issued]},
            "published": {"date-parts": [issued]},
            "URL": f"https://doi.org/{doi}",
            "resource": {"primary": {"URL": spec["landing"].format(site=about["site"], doi=doi)}},
        }

    def days(self) -> list[int]:
        """The index day of every position."""
        if self._days is None:
            self._days = [self.index_day(p) for p in range(self.size)]
        return self._days

    def matching(self, start: date | None, end: date | None) -> list[int]:
        """Positions indexed from `start` to `end` (days included), by index day."""
        if self._order is None:
            pairs = sorted((d, p) for p, d in enumerate(self.days()))
            self._order = ([d for d, _ in pairs], [p for _, p in pairs])
        keys, positions = self._order
        low = bisect.bisect_left(keys, start.toordinal()) if start else 0
        high = bisect.bisect_right(keys, end.toordinal()) if end else len(keys)
        return positions[low:high]

    def _changed(self) -> None:
        self._days, self._order, self._years = None, None, None

    def resize(self, works: int) -> None:
        """Serve `works` generated works after the recorded ones."""
        self.size = len(self.recorded) + works
        self._changed()

    def add(self, count: int, indexed: date) -> list[str]:
        """`count` new works indexed on `indexed`; their DOIs."""
        start, self.size = self.size, self.size + count
        for position in range(start, self.size):
            self.moved[position] = indexed.toordinal()
        self._changed()
        return [str(self.item(p)["DOI"]) for p in range(start, self.size)]

    def reindex(self, positions: list[int], indexed: date) -> None:
        """The works at `positions` re-indexed on `indexed` (their index date moves)."""
        for position in positions:
            self.moved[position] = indexed.toordinal()
        self._changed()

    def year(self, position: int) -> int:
        """The year the work at `position` was issued."""
        if position < len(self.recorded):
            return int(self.recorded[position]["issued"]["date-parts"][0][0])
        first, last = self.spec["issued_years"]
        return int(first + self._digest(position)[1] % (last - first + 1))

    def years(self) -> list[list[int]]:
        """`dois-by-issued-year`: [[year, works]], most works first."""
        if self._years is None:
            counts: dict[int, int] = {}
            for position in range(self.size):
                year = self.year(position)
                counts[year] = counts.get(year, 0) + 1
            self._years = [
                [y, n] for y, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            ]
        return self._years


def _fault_answer(fault: PageFault) -> StubAnswer:
    """The HTML error page a gateway answers with (as recorded for 429s)."""
    reason = "Too Many Requests" if fault.status == 429 else "Service Unavailable"
    body = f"<html><body><h1>{fault.status} {reason}</h1></body></html>".encode()
    headers = {"Content-Type": "text/html"}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    return StubAnswer(fault.status, body, headers)


def _failure(kind: str, value: str, message: str) -> StubAnswer:
    """A Crossref `validation-failure` (HTTP 400) naming the bad value."""
    entry = {"type": kind, "value": value, "message": message}
    body = {"status": "failed", "message-type": "validation-failure", "message": [entry]}
    return StubAnswer.json(body, status=400)


class CatalogueStub:
    """The catalogue routes of the Crossref stub."""

    def __init__(
        self, fixtures: Path, clock: Callable[[], float] = time.monotonic, cursor_ttl: float = 300
    ) -> None:
        self.members = _load(fixtures / "members")
        self.prefixes = _load(fixtures / "prefixes")
        self.catalogues: dict[str, Catalogue] = {}
        recorded = [r["message"] for r in _load(fixtures / "records").values()]
        for member, spec in _load(fixtures / "catalogues").items():
            mine = [r for r in recorded if str(r.get("member")) == member]
            self.catalogues[member] = Catalogue(spec, sorted(mine, key=lambda r: str(r["DOI"])))
        self.clock = clock
        self.cursor_ttl = cursor_ttl
        self.scrolls: dict[str, _Scroll] = {}
        self.fault: PageFault | None = None
        self.pages_served = 0
        self._serial = 0

    def answer(self, request: StubRequest) -> StubAnswer:
        """A `/members/...` or `/prefixes/...` request."""
        parts = request.path.strip("/").split("/")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "works"):
            return StubAnswer.text(NOT_FOUND, 404)
        kind, key = parts[0], parts[1]
        if kind == "members" and key in self.members:
            if len(parts) == 2:
                return StubAnswer.json(self._member(key))
            return self._works(request, self.catalogues.get(key))
        if kind == "prefixes" and key in self.prefixes:
            if len(parts) == 2:
                return StubAnswer.json(self.prefixes[key])
            owner = next((c for c in self.catalogues.values() if c.prefix == key), None)
            return self._works(request, owner)
        return StubAnswer.text(NOT_FOUND, 404)

    def _member(self, member: str) -> dict[str, Any]:
        answer: dict[str, Any] = copy.deepcopy(self.members[member])
        catalogue = self.catalogues.get(member)
        if catalogue is not None:
            years = catalogue.years()
            this_year = max((y for y, _ in years), default=0)
            current = sum(n for y, n in years if y >= this_year - 2)
            answer["message"]["counts"] = {
                "current-dois": current,
                "backfile-dois": catalogue.size - current,
                "total-dois": catalogue.size,
            }
            answer["message"]["breakdowns"] = {"dois-by-issued-year": years}
        return answer

    def _works(self, request: StubRequest, catalogue: Catalogue | None) -> StubAnswer:
        rows_text = request.param("rows", "20")
        if not rows_text.isdigit() or int(rows_text) > 1000:
            return _failure("parameter-not-valid", rows_text, "Rows must be an integer <= 1000")
        rows, cursor = int(rows_text), request.param("cursor")
        window = _window(request.param("filter"))
        if isinstance(window, StubAnswer):
            return window
        select = [s for s in request.param("select").split(",") if s]
        if cursor and cursor != "*":
            return self._next(cursor, rows, select, catalogue)
        positions = catalogue.matching(*window) if catalogue else []
        if rows == 0 or not cursor:
            return self._page(positions[:rows], len(positions), rows, select, catalogue, None)
        scroll_id = self._new_cursor()
        self.scrolls[scroll_id] = _Scroll(positions, 0, self.clock())
        return self._next(scroll_id, rows, select, catalogue)

    def _next(
        self, cursor: str, rows: int, select: list[str], catalogue: Catalogue | None
    ) -> StubAnswer:
        self._expire()
        scroll = self.scrolls.get(cursor)
        if scroll is None:
            body = {
                "status": "failed",
                "message-type": "resource-failure",
                "message": [
                    {
                        "type": "cursor-invalid",
                        "value": cursor,
                        "message": "Cursor specified but it is invalid",
                    }
                ],
            }
            return StubAnswer.json(body, status=404)
        scroll.used = self.clock()
        page = scroll.positions[scroll.offset : scroll.offset + rows]
        fault = self._fault()
        if fault is not None:
            if fault.advance:
                scroll.offset += len(page)
            return _fault_answer(fault)
        scroll.offset += len(page)
        self.pages_served += 1
        return self._page(page, len(scroll.positions), rows, select, catalogue, cursor)

    def _fault(self) -> PageFault | None:
        fault = self.fault
        if fault is None:
            return None
        if fault.after > 0:
            fault.after -= 1
            return None
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self.fault = None
        return fault

    def _page(
        self,
        positions: list[int],
        total: int,
        rows: int,
        select: list[str],
        catalogue: Catalogue | None,
        cursor: str | None,
    ) -> StubAnswer:
        items = []
        for position in positions:
            assert catalogue is not None
            item = catalogue.item(position)
            items.append({k: v for k, v in item.items() if k in select} if select else item)
        message: dict[str, Any] = {"facets": {}}
        if cursor is not None:
            message["next-cursor"] = cursor
        message.update(
            {
                "total-results": total,
                "items": items,
                "items-per-page": rows,
                "query": {"start-index": 0, "search-terms": None},
            }
        )
        return StubAnswer.json(
            {
                "status": "ok",
                "message-type": "work-list",
                "message-version": "1.0.0",
                "message": message,
            }
        )

    def _new_cursor(self) -> str:
        """A scroll id in Elasticsearch's shape (base64 with `+`, `/` and `=` in it)."""
        self._serial += 1
        body = SCROLL_PREFIX + self._serial.to_bytes(8, "big") + b">\xfb\xef\xff\xe0"
        return base64.b64encode(body).decode()

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, s in self.scrolls.items() if now - s.used > self.cursor_ttl]:
            del self.scrolls[key]

    def resize(self, works: int) -> None:
        """Every catalogue with `works` generated works (benchmarks)."""
        for catalogue in self.catalogues.values():
            catalogue.resize(works)


def _window(raw: str) -> tuple[date | None, date | None] | StubAnswer:
    """The index-date window of a `filter` value, or the validation failure it deserves."""
    bounds: dict[str, date] = {}
    for part in (p for p in raw.split(",") if p):
        name, _, value = part.partition(":")
        if name not in ("from-index-date", "until-index-date"):
            return _failure("filter-not-available", name, f"Filter {name} is not served here")
        try:
            bounds[name] = date.fromisoformat(value)
        except ValueError:
            return _failure("filter-not-valid", value, f"Date {value!r} is not YYYY-MM-DD")
    return bounds.get("from-index-date"), bounds.get("until-index-date")


def _load(directory: Path) -> dict[str, Any]:
    """Every `*.json` of `directory` by file name (without `.json`)."""
    return {p.name[: -len(".json")]: json.loads(p.read_text()) for p in directory.glob("*.json")}
