"""`/sources`: every source, whether it collects or is paused (why, since when), how many
works it has numbers for and how many of those failed last time, its last successful fetch,
its error rate and upstream calls per refresh over 24 h and how many works are due from it
(services/api/source_figures.py), each name linking to its leaderboard; with an admin key (signed in
on the site) a form per source to pause it with a reason or resume it, which does what
`POST /api/v1/sources/{name}/pause|resume` does."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.access import CALLER
from services.api.source_figures import SourceFigures, source_figures
from services.api.state import CATALOG, CLOCK, STORE, TOTALS
from services.api.views import MAX_REASON
from services.core.control import describe_source, set_paused
from services.site.html import Alternate, page, text

TITLE = "Sources"
JSON = Alternate("/api/v1/sources", "These sources as JSON")


def _state(source: dict[str, Any]) -> str:
    if not source["paused"]:
        return '<span class="ok">collecting</span>'
    since = f" since <time>{text(source['paused_since'])}</time>" if source["paused_since"] else ""
    reason = f": {text(source['pause_reason'])}" if source["pause_reason"] else ""
    return f'<strong class="paused">paused</strong>{since}{reason}'


def _controls(source: dict[str, Any]) -> str:
    name, title = text(source["name"]), text(source["display_name"])
    if source["paused"]:
        return f"""<form method="post" action="/sources/{name}/resume" class="inline">
<button type="submit">Resume {title}</button></form>"""
    return f"""<form method="post" action="/sources/{name}/pause" class="inline">
<label>Reason for pausing {title}
<input name="reason" maxlength="{MAX_REASON}" placeholder="optional"></label>
<button type="submit">Pause {title}</button></form>"""


def _figures(f: SourceFigures | None) -> str:
    """The recent-activity cells: last success, error rate, calls per refresh, works due."""
    if f is None:
        return '<td data-label="Last success">—</td>' + "<td class=num>—</td>" * 3
    last = "never"
    if f.last_ok:
        shown = f.last_ok.strftime("%Y-%m-%d %H:%M")
        last = f'<time datetime="{text(f.last_ok.isoformat())}">{text(shown)}</time>'
    rate = f"{f.error_rate:.1%}" if f.error_rate is not None else "—"
    calls = f"{f.calls_per_refresh:.2f}" if f.calls_per_refresh is not None else "—"
    due = f"{f.due:,}+" if f.due_capped else f"{f.due:,}"
    return (
        f'<td data-label="Last success">{last}</td>'
        f'<td class=num data-label="Errors in 24 h">{rate}</td>'
        f'<td class=num data-label="Calls a refresh">{calls}</td>'
        f'<td class=num data-label="Works due">{due}</td>'
    )


async def sources_page(request: web.Request) -> web.Response:
    """`GET /sources`: the table (with pause and resume forms for an admin)."""
    summary = await request.app[TOTALS].source_summary(request.app[STORE])
    statuses = await request.app[STORE].source_statuses()
    figures = await source_figures(request.app)
    admin = request[CALLER].admin
    rows = []
    for name, source in sorted(request.app[CATALOG].items()):
        shown = describe_source(source, statuses.get(name))
        counts = summary.get(name, {"works": 0, "errors": 0})
        controls = f'<td data-label="Control">{_controls(shown)}</td>' if admin else ""
        group, works, errors = text(shown["group"]), counts["works"], counts["errors"]
        failed = f"{errors:,}"
        if admin and errors:  # the works behind the count (services/api/failures_page.py)
            failed = f'<a href="/admin/failures?source={text(name)}">{failed}</a>'
        rows.append(
            f'<tr id="{text(name)}"><th scope="row"><a href="/sources/{text(name)}">'
            f"{text(shown['display_name'])}</a> "
            f'<code>{text(name)}</code></th><td data-label="Group">{group}</td>'
            f'<td data-label="State">{_state(shown)}</td>'
            f'<td class=num data-label="Works">{works:,}</td>'
            f'<td class=num data-label="In error">{failed}</td>'
            f"{_figures(figures.get(name))}{controls}</tr>"
        )
    head = "<th scope=col>Pause or resume</th>" if admin else ""
    note = (
        '<p>Signed in with an admin key: <a href="/keys">API keys</a>,'
        ' <a href="/admin/failures">failed refreshes</a>, <a href="/admin/deadletters">dead'
        ' letters</a>, <a href="/admin/alerts">data-quality alerts</a>.</p>'
        if admin
        else '<p><a href="/signin">Sign in with an admin key</a> to pause or resume a source.</p>'
    )
    body = f"""{note}
<div class="scroll"><table>
<caption>Every source and its state</caption>
<thead><tr><th scope=col>Source</th><th scope=col>Group</th><th scope=col>State</th>
<th scope=col>Works</th><th scope=col>In error</th><th scope=col>Last success</th>
<th scope=col>Errors in 24 h</th><th scope=col>Calls a refresh</th><th scope=col>Works due</th>
{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></div>"""
    return page(TITLE, body, alternate=JSON)


async def control(request: web.Request) -> web.Response:
    """`POST /sources/{name}/pause|resume` (a form, `reason` optional): done and back to the
    sources page (303), or a page saying why not: 401 signed out, 403 not an admin key, 404
    no such source, 400 a reason too long."""
    caller = request[CALLER]
    if not caller.admin:
        code, why = (403, "this needs an admin key") if caller.key else (401, "sign in first")
        link = '<p><a href="/signin">Sign in with an admin key</a>.</p>'
        return page("Not allowed", f"<p>{text(why)}.</p>{link}", status=code)
    name, action = request.match_info["name"], request.match_info["action"]
    if name not in request.app[CATALOG]:
        return page("No such source", f"<p>There is no source named {text(name)}.</p>", 404)
    form = await request.post()
    reason = form.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        reason = None
    elif len(reason) > MAX_REASON:
        body = f"<p>A reason takes at most {MAX_REASON} characters.</p>"
        return page("Reason too long", body, status=400)
    status = set_paused(name, action == "pause", reason, request.app[CLOCK]())
    await request.app[STORE].set_source_status(status)
    return web.Response(status=303, headers={"Location": f"/sources#{name}"})
