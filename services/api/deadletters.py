"""`GET /api/v1/deadletters?per_page=&before=` (admin): the newest dead letters (topic
`alm.deadletter`: records a consumer could not read or a refresh given up for good, written by
the scheduler, the fetchers and the aggregator: services/core/deadletters.py), newest first,
read from the tail of each partition with the bus's PartitionReader. `before` (what a page's
`next` gives: `partition:offset,...`) pages back: each partition is read below its offset, at
most `per_page` records of each. A record that is not a valid letter is listed as malformed
(services/core/deadletter_log.py). The HTML page of the same listing is deadletters_page.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.api.errors import BadParameter
from services.api.params import int_param
from services.api.state import LETTERS
from services.core.deadletter_log import DeadLetter, letter_of, newest_first
from services.core.events import TOPIC_DEADLETTER
from services.core.schema_check import validator
from services.core.text import shown

MAX_PER_PAGE = 200
BEFORE = re.compile(r"[0-9]{1,6}:[0-9]{1,19}(,[0-9]{1,6}:[0-9]{1,19}){0,999}")


async def list_deadletters(request: web.Request) -> web.Response:
    """A page of dead letters, newest first."""
    page = await letter_page(request)
    following = page.before and f"/api/v1/deadletters?{page.next_query}"
    return web.json_response(
        {
            "data": [d.to_dict() for d in page.letters],
            "per_page": page.per_page,
            "next": following or None,
        }
    )


@dataclass(frozen=True, slots=True)
class LetterPage:
    """One page: its letters, its size, and the `before` of the next page (None: none)."""

    letters: list[DeadLetter]
    per_page: int
    before: str | None

    @property
    def next_query(self) -> str:
        return f"per_page={self.per_page}&before={self.before}" if self.before else ""


async def letter_page(request: web.Request) -> LetterPage:
    """The page a request's `per_page` and `before` ask for (BadParameter for a bad one)."""
    per_page = int_param(request, "per_page", 100, 1, MAX_PER_PAGE)
    cursor = _before(request.query.get("before"))
    reader = request.app[LETTERS]
    if reader is None:
        raise web.HTTPServiceUnavailable(reason="no reader of the bus's topics in this process")
    count = await reader.partitions(TOPIC_DEADLETTER)
    if count == 0:
        return LetterPage([], per_page, None)
    ends = await reader.end_offsets(TOPIC_DEADLETTER, list(range(count)))
    before = ends if cursor is None else {p: min(cursor.get(p, 0), e) for p, e in ends.items()}
    ranges = {p: (max(0, b - per_page), b) for p, b in before.items() if b > 0}
    messages = await reader.read(TOPIC_DEADLETTER, ranges) if ranges else []
    checker = validator("failed_refresh")

    def problem(value: Mapping[str, Any]) -> str | None:
        if checker.is_valid(value):
            return None
        error = next(iter(checker.iter_errors(value)))
        where = "/".join(str(p) for p in error.instance_path) or "(top level)"
        return f"not a letter at {where}: {shown(error.message, 200)}"

    by_partition: dict[int, list[DeadLetter]] = {}
    for message in messages:
        by_partition.setdefault(message.partition, []).append(letter_of(message, problem))
    letters, after = newest_first(by_partition, before, per_page)
    more = bool(letters) and any(offset > 0 for offset in after.values())
    following = ",".join(f"{p}:{o}" for p, o in sorted(after.items())) if more else None
    return LetterPage(letters, per_page, following)


def _before(raw: str | None) -> dict[int, int] | None:
    if raw is None:
        return None
    if not BEFORE.fullmatch(raw):
        raise BadParameter(
            "parameter 'before' must be what a page's `next` gave (partition:offset,...)"
        )
    return {int(p): int(o) for p, o in (item.split(":") for item in raw.split(","))}
