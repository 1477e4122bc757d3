"""`GET /admin/failures` (admin): the failed refreshes as an HTML page for operators.

The same listing as `GET /api/v1/failures` (same parameters, keyset pages and admin check,
services/api/failures.py), as a table with a filter form: when the refresh failed, the source,
the work (a link to its page `/works/{id}`, its JSON and the upstream calls behind that
source's numbers), the due entry's attempt and the error. Every value is HTML-escaped (an error
carries upstream text); the page loads nothing (admin_page.py's Content-Security-Policy)."""

from __future__ import annotations

from html import escape
from urllib.parse import quote, urlencode

from aiohttp import web

from services.api.admin_page import HEADERS, STYLE, nav, url
from services.api.failures import failure_page
from services.api.present import provenance_link
from services.api.state import CATALOG
from services.core.catalog import Catalog
from services.core.failed_refreshes import FailedRefresh, FailureOrder
from services.core.timeutil import to_iso

PATH = "/admin/failures"
COLUMNS = ("failed at", "source", "work", "attempt", "error")
ORDERS = {FailureOrder.NEWEST: "newest first", FailureOrder.WORK: "by work id"}


async def failures_page(request: web.Request) -> web.Response:
    """The page of failed refreshes the query asks for, as HTML."""
    page = await failure_page(request)
    query = urlencode(list(request.query.items()))
    twin = escape(url("/api/v1/failures", query))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>ALM: failed refreshes</title>",
        f'<link rel="alternate" type="application/json" href="{twin}">',
        f"<style>{STYLE}</style></head><body>",
        nav(PATH),
        "<h1>Failed refreshes</h1>",
        "<p>Works whose last refresh from a source failed; each is retried with backoff, and"
        " leaves this list when a refresh succeeds.</p>",
        _form(request, page.order),
        f"<p>{len(page.failures)} failure(s) on this page, {ORDERS[page.order]}. "
        f'<a href="{twin}">This page as JSON</a>.</p>',
        _table(page.failures) if page.failures else "<p>No failed refresh matches.</p>",
    ]
    if page.next_query is not None:
        parts.append(
            f'<p><a rel="next" href="{escape(url(PATH, page.next_query))}">Next page</a></p>'
        )
    parts.append("</body></html>")
    return web.Response(
        text="\n".join(parts), content_type="text/html", charset="utf-8", headers=HEADERS
    )


def _form(request: web.Request, order: FailureOrder) -> str:
    """The filter form, showing the request's current filters."""
    catalog: Catalog = request.app[CATALOG]
    chosen = request.query.get("source", "")
    sources = ['<option value="">any</option>'] + [
        f'<option value="{escape(s)}"{" selected" if s == chosen else ""}>{escape(s)}</option>'
        for s in catalog
    ]
    orders = [
        f'<option value="{o.value}"{" selected" if o is order else ""}>{label}</option>'
        for o, label in ORDERS.items()
    ]
    fields = [
        '<label>source <select name="source">' + "".join(sources) + "</select></label>",
        '<label>order <select name="order">' + "".join(orders) + "</select></label>",
        '<label>per page <input type="number" name="per_page" min="1" max="1000"'
        f' value="{escape(request.query.get("per_page", "100"))}"></label>',
        '<button type="submit">Show</button>',
    ]
    return f'<form method="get" action="{PATH}">' + "\n".join(fields) + "</form>"


def _table(failures: list[FailedRefresh]) -> str:
    head = "".join(f'<th scope="col">{c}</th>' for c in COLUMNS)
    rows = "\n".join(_row(f) for f in failures)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>"


def _row(failure: FailedRefresh) -> str:
    path = quote(failure.work_id, safe="/:")
    work = (
        f'<a href="{escape(f"/works/{path}")}">{escape(failure.work_id)}</a>'
        f' (<a href="{escape(f"/api/v1/works/{path}")}">JSON</a>,'
        f' <a href="{escape(provenance_link(failure.work_id, failure.source))}">calls</a>)'
    )
    cells = (
        escape(to_iso(failure.failed_at)),
        escape(failure.source),
        work,
        "" if failure.attempt is None else str(failure.attempt),
        f'<span class="error">{escape(failure.error)}</span>',
    )
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
