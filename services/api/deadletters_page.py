"""`GET /admin/deadletters` (admin): the newest dead letters as an HTML page for operators.

The same listing as `GET /api/v1/deadletters` (services/api/deadletters.py): when, the source,
the work (a link to its page), the topic the failed record came from, the reason, and where the
letter is (partition and offset); a record that is not a valid letter is shown as malformed,
with why. Every value is HTML-escaped (reasons and keys carry what was received); the page loads
nothing (admin_page.py's Content-Security-Policy)."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from aiohttp import web

from services.api.admin_page import HEADERS, STYLE, nav, url
from services.api.deadletters import letter_page
from services.core.deadletter_log import DeadLetter
from services.core.timeutil import to_iso

PATH = "/admin/deadletters"
COLUMNS = ("failed at", "source", "work", "from topic", "reason", "where")


async def deadletters_page(request: web.Request) -> web.Response:
    """The page of dead letters the query asks for, as HTML."""
    page = await letter_page(request)
    query = "&".join(
        f"{k}={quote(v)}" for k, v in request.query.items() if k in ("per_page", "before")
    )
    twin = escape(url("/api/v1/deadletters", query))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>ALM: dead letters</title>",
        f'<link rel="alternate" type="application/json" href="{twin}">',
        f"<style>{STYLE}</style></head><body>",
        nav(PATH),
        "<h1>Dead letters</h1>",
        "<p>Records of <code>alm.deadletter</code>, newest first: events a service could not"
        " read, and refreshes given up for good. They are kept as long as the topic keeps"
        " them.</p>",
        f"<p>{len(page.letters)} letter(s) on this page. "
        f'<a href="{twin}">This page as JSON</a>.</p>',
        _table(page.letters) if page.letters else "<p>No dead letter.</p>",
    ]
    if page.before is not None:
        parts.append(
            f'<p><a rel="next" href="{escape(url(PATH, page.next_query))}">Older letters</a></p>'
        )
    parts.append("</body></html>")
    return web.Response(
        text="\n".join(parts), content_type="text/html", charset="utf-8", headers=HEADERS
    )


def _table(letters: list[DeadLetter]) -> str:
    head = "".join(f'<th scope="col">{c}</th>' for c in COLUMNS)
    rows = "\n".join(_row(d) for d in letters)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>"


def _row(letter: DeadLetter) -> str:
    work = ""
    if letter.work_id:
        path = quote(letter.work_id, safe="/:")
        work = f'<a href="{escape(f"/works/{path}")}">{escape(letter.work_id)}</a>'
    elif letter.key:
        work = f"key <code>{escape(letter.key)}</code>"
    reason = escape(letter.reason or "")
    if letter.malformed:
        reason = f'<span class="error">malformed: {escape(letter.malformed)}</span> ' + reason
    cells = (
        escape(to_iso(letter.failed_at)) if letter.failed_at else "",
        escape(letter.source or ""),
        work,
        escape(letter.topic or ""),
        reason,
        f"{letter.partition}:{letter.offset}",
    )
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
