"""`GET /admin/alerts` (admin): the stored data-quality alerts as an HTML page for operators.

The same listing as `GET /api/v1/alerts` (same parameters, filters, keyset pages and admin
check, services/api/alerts.py), as a table with a filter form, a link from each alert to its
work's page (`/works/{id}`), its JSON and the upstream calls behind that source's numbers, and
a link to the next page. Every value is HTML-escaped; the page loads nothing (a
Content-Security-Policy forbids scripts and other origins). Errors stay the API's JSON errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from urllib.parse import quote, urlencode

from aiohttp import web

from services.api.alerts import alert_page
from services.api.present import provenance_link
from services.api.state import CATALOG
from services.core.alerts import Alert, AlertKind
from services.core.catalog import Catalog
from services.core.timeutil import to_iso

PATH = "/admin/alerts"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.3em .5em;
vertical-align:top;text-align:left}th{background:#f3f3f3}code{font-size:12px;white-space:pre-wrap}
.error{color:#a00}.warning{color:#a60}.info{color:#06a}form{margin:1em 0}"""
ADMIN_LINKS = (
    ("/sources", "Sources"),
    ("/admin/alerts", "Data-quality alerts"),
    ("/admin/failures", "Failed refreshes"),
    ("/admin/deadletters", "Dead letters"),
)
COLUMNS = ("day", "at", "severity", "kind", "source", "work", "message", "details")


async def alerts_page(request: web.Request) -> web.Response:
    """The page of alerts the query asks for, as HTML."""
    page = await alert_page(request)
    query = urlencode(list(request.query.items()))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>ALM: data-quality alerts</title>",
        f"<style>{STYLE}</style></head><body>",
        nav(PATH),
        "<h1>Data-quality alerts</h1>",
        _form(request),
        f"<p>{len(page.alerts)} alert(s) on this page, newest day first. "
        f'<a href="{escape(url("/api/v1/alerts", query))}">This page as JSON</a>.</p>',
        _table(page.alerts) if page.alerts else "<p>No alert matches.</p>",
    ]
    if page.next_query is not None:
        parts.append(
            f'<p><a rel="next" href="{escape(url(PATH, page.next_query))}">Next page</a></p>'
        )
    parts.append("</body></html>")
    return web.Response(
        text="\n".join(parts), content_type="text/html", charset="utf-8", headers=HEADERS
    )


def nav(current: str) -> str:
    """The links between the admin pages (the current one not a link)."""
    items = [
        f"<strong>{escape(label)}</strong>"
        if path == current
        else f'<a href="{escape(path)}">{escape(label)}</a>'
        for path, label in ADMIN_LINKS
    ]
    return '<nav aria-label="admin pages">' + " | ".join(items) + "</nav>"


def url(path: str, query: str) -> str:
    """`path` with `query` (none if empty)."""
    return f"{path}?{query}" if query else path


def _form(request: web.Request) -> str:
    """The filter form, showing the request's current filters."""
    kind = request.query.get("kind", "")
    source = request.query.get("source", "")
    catalog: Catalog = request.app[CATALOG]
    sources = list(catalog)
    fields = [
        _select("kind", [k.value for k in AlertKind], kind),
        _select("source", sources, source),
        '<label>since <input type="date" name="since"'
        f' value="{escape(request.query.get("since", ""))}"></label>',
        '<label>per page <input type="number" name="per_page" min="1" max="1000"'
        f' value="{escape(request.query.get("per_page", "100"))}"></label>',
        '<button type="submit">Show</button>',
    ]
    return f'<form method="get" action="{PATH}">' + "\n".join(fields) + "</form>"


def _select(name: str, options: Iterable[str], chosen: str) -> str:
    items = ['<option value="">any</option>'] + [
        f'<option value="{escape(o)}"{" selected" if o == chosen else ""}>{escape(o)}</option>'
        for o in options
    ]
    return f'<label>{name} <select name="{name}">' + "".join(items) + "</select></label>"


def _table(alerts: list[Alert]) -> str:
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    rows = "\n".join(_row(a) for a in alerts)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>"


def _row(alert: Alert) -> str:
    work = ""
    if alert.work_id:
        path = quote(alert.work_id, safe="/:")
        work = f'<a href="{escape(f"/works/{path}")}">{escape(alert.work_id)}</a>'  # its page
        work += f' (<a href="{escape(f"/api/v1/works/{path}")}">JSON</a>'
        if alert.source:
            calls = provenance_link(alert.work_id, alert.source)
            work += f', <a href="{escape(calls)}">calls</a>'
        work += ")"
    details = json.dumps(dict(alert.details), sort_keys=True, ensure_ascii=False, default=str)
    cells = (
        escape(alert.day.isoformat()),
        escape(to_iso(alert.at)),
        f'<span class="{alert.severity.value}">{alert.severity.value}</span>',
        escape(alert.kind.value),
        escape(alert.source or ""),
        work,
        escape(alert.message),
        f"<code>{escape(details)}</code>" if alert.details else "",
    )
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
