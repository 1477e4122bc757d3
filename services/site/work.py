"""`GET /works/{id}`: one work's page: its metadata with links to the DOI, PubMed and PMC; its
figure per group and each source's ALM slots, as `GET /api/v1/works/{id}` gives them (the
same presenter); each source's history as a chart by day, month or year (`?period=`, month by
default) with a table beside it; its events; status, last error and when it was retrieved,
with a link to the upstream calls behind the numbers; and the badge with the HTML to embed it.
With script, the numbers and charts follow the change stream (work.js); without, the page is
whole as served.

Any accepted form of the id (a DOI as a URL or `doi:`, a PMID, a PMCID); a wrong one is a 400
page, an unknown work a 404 page, a wrong period a 400 page. The page is kept as bytes by id,
period and origin until the work's numbers change (services/api/rendered.py)."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import quote

from aiohttp import web

from services.api.credentials import own_origin
from services.api.errors import BadParameter, NotFound
from services.api.lookup import find_in
from services.api.params import choice_param
from services.api.present import present_history, present_work
from services.api.rendered import Rendered
from services.api.state import CATALOG, CLOCK, RENDERED, STORE
from services.api.v5_events import v5_event
from services.core.history import PERIODS, Period
from services.core.identifiers import InvalidIdentifier
from services.site.html import SECURITY_HEADERS, Alternate, page, text
from services.site.work_parts import (
    MAX_EVENTS,
    badge_snippet,
    events_list,
    groups_table,
    history_section,
    metadata,
    period_switch,
    sources_table,
    work_path,
)

PAGE = "page"  # its answers' kind among the kept ones
SCRIPT = "/static/work.js"  # the live update (progressive enhancement)
# the site's policy, plus this origin's script and its reads (the page again, the change stream)
CSP = SECURITY_HEADERS["Content-Security-Policy"] + "; script-src 'self'; connect-src 'self'"


def _problem(title: str, why: str, status: int) -> web.Response:
    body = f"""<p role="alert">{text(why)}</p>
<p>A work is named by its DOI (<code>10.7717/peerj.4375</code>, or as a
<code>https://doi.org/</code> link), its PMID or its PMCID.</p>"""
    return page(title, body, status=status)


async def work_page(request: web.Request) -> web.Response:
    """The page (see the module's docstring)."""
    app = request.app
    cache = app[RENDERED]
    try:
        chosen = choice_param(request, "period", PERIODS) or "month"
        key = (PAGE, request.match_info["id"], chosen, own_origin(request))
        if (kept := cache.get(key)) is not None:  # services/api/rendered.py
            if cache.stale(key, kept):
                cache.refresh(PAGE, [key], lambda keys: _again(app, keys))
            return kept.response(request)
        shown = await _render(app, key)
    except InvalidIdentifier as exc:
        return _problem("Not a work identifier", str(exc), 400)
    except BadParameter as exc:
        return _problem("Wrong parameter", str(exc), 400)
    except NotFound as exc:
        return _problem("Unknown work", f"{exc}.", 404)
    return shown.response(request)


async def _again(app: web.Application, keys: list[tuple[str, str, str, str]]) -> None:
    """Render the kept pages of `keys` ((PAGE, id, period, origin)) again, one by one."""
    for key in keys:
        with contextlib.suppress(NotFound):  # no longer registered: its page expires
            await _render(app, key)


async def _render(app: web.Application, key: tuple[str, str, str, str]) -> Rendered:
    """The page `key` ((PAGE, id, period, origin)) names: the work the id names by that
    period, as served at that origin; kept under `key`."""
    _, raw, chosen, origin = key
    work = await find_in(app[STORE], raw)
    period: Period = PERIODS[PERIODS.index(chosen)]
    store, catalog = app[STORE], app[CATALOG]
    states = (await store.states_for([work.work_id]))[work.work_id]
    shown = present_work(catalog, work, states)
    names = [source["name"] for source in shown["sources"]]
    points, events_of = await asyncio.gather(  # both at once; every source's events in one read
        store.history_of(work.work_id, names), store.events_by_source(work.work_id, names)
    )
    today = app[CLOCK]().date()
    histories = {h["source"]: h for h in present_history(catalog, points, states, period, today)}
    path = work_path(work.work_id)
    api = f"/api/v1/works/{quote(work.work_id, safe='/:')}"
    kind, value = next(((i.type.value, i.value) for i in work.identifiers()), ("doi", ""))
    v5 = f"/api/v5/articles?type={kind}&ids={quote(value, safe='/:')}"
    sections = []
    for source in shown["sources"]:
        name, display = source["name"], source["display_name"]
        events = events_of.get(name, [])
        group = catalog.group(name)
        listed = [v5_event(name, group, e) for e in events[:MAX_EVENTS]]
        detail = f"{v5}&source_id={quote(name)}&info=detail"
        shown_name, shown_display = text(name), text(display)
        sections.append(
            f'<section id="source-{shown_name}" aria-labelledby="h-{shown_name}">'
            f'<h3 id="h-{shown_name}">{shown_display}</h3>'
            f"{history_section(name, display, histories.get(name))}"
            f"{events_list(listed, len(events), detail)}"
            f'<p><a href="{text(source["provenance"])}">Upstream calls behind the '
            f"{shown_display} numbers</a></p></section>"
        )
    title = work.title or work.work_id
    body = f"""{metadata(shown)}
<p id="live" role="status" class="hint" data-work="{text(work.work_id)}"></p>
<section id="numbers" aria-labelledby="h-numbers"><h2 id="h-numbers">Numbers</h2>
{groups_table(shown["groups"])}
{sources_table(shown["sources"])}
</section>
<section id="history" aria-labelledby="h-history"><h2 id="h-history">History</h2>
{period_switch(path, period)}
<div id="charts">{"".join(sections) or "<p>No history yet.</p>"}</div>
</section>
<section aria-labelledby="h-badge"><h2 id="h-badge">Badge</h2>
{badge_snippet(origin, work.work_id)}
</section>
<script src="{SCRIPT}" defer></script>"""
    alternate = Alternate(api, "This work as JSON")
    shown_page = page(title, body, alternate=alternate, headers={"Content-Security-Policy": CSP})
    assert isinstance(shown_page.body, bytes)
    headers = {k: v for k, v in shown_page.headers.items() if k != "Content-Length"}
    return app[RENDERED].put(key, work.work_id, shown_page.body, states, headers)
