"""`GET /`: the home page: how many works and sources, the most-cited, most-viewed and
most-discussed works (each group's leaders, services/api/leaders.py), the works whose numbers
changed last, and a search box (a GET form to `/works` with `q`). Its JSON twin is
`/api/v1/summary` (services/api/home.py), which reads the same figures."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from services.api.home import summary
from services.site.html import Alternate, page, text
from services.site.work_parts import work_path

TITLE = "Article-Level Metrics"
JSON = Alternate("/api/v1/summary", "These figures as JSON")
HEADINGS = {"cited": "Most cited", "viewed": "Most viewed", "discussed": "Most discussed"}


def _work_link(item: dict[str, Any]) -> str:
    shown = text(item["title"]) if item.get("title") else f"<code>{text(item['id'])}</code>"
    return f'<a href="{text(work_path(item["id"]))}">{shown}</a>'


def _doi(item: dict[str, Any]) -> str:
    doi = item.get("doi")
    if not doi:
        return ""
    return f' <a class="hint" href="https://doi.org/{text(quote(doi, safe="/"))}">{text(doi)}</a>'


def _leaders(group: str, board: dict[str, Any]) -> str:
    heading = HEADINGS.get(group, group.capitalize())
    rows = board["data"]
    if not rows:
        listing = f"<p>No work has a {text(group)} figure yet.</p>"
    else:
        items = "\n".join(
            f'<li data-group="{text(group)}">{_work_link(r)}{_doi(r)} '
            f'<span class="num" data-value="{r["value"]}">{r["value"]:,}</span></li>'
            for r in rows
        )
        listing = f"<ol>\n{items}\n</ol>"
    return f"""<section id="leaders-{text(group)}" aria-labelledby="h-{text(group)}">
<h2 id="h-{text(group)}">{text(heading)}</h2>
{listing}
</section>"""


def _recent(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return "<p>No numbers have changed since the change log began.</p>"
    items = "\n".join(
        f"<li>{_work_link(c)} · {text(c['source'] or '')} · "
        f'<time datetime="{text(c["at"])}">{text(c["at"][:16].replace("T", " "))}</time></li>'
        for c in changes
    )
    return f"<ul>\n{items}\n</ul>"


async def home_page(request: web.Request) -> web.Response:
    """The page (see the module's doc)."""
    data = await summary(request.app)
    leaders = "\n".join(_leaders(g, b) for g, b in data["leaders"].items())
    body = f"""<p>Citations, usage and attention for research works, from
<a href="/sources">{data["sources"]:,} sources</a>, for
<strong id="works-count">{data["works"]:,}</strong> works.</p>
<form method="get" action="/works" role="search">
<label>Search works <span class="hint">(title words, a DOI, PMID or PMCID, a publisher)</span>
<input type="search" name="q" required maxlength="500" autocapitalize="off"></label>
<button type="submit">Search</button>
</form>
<div class="leaders">
{leaders}
</div>
<section id="recent" aria-labelledby="h-recent">
<h2 id="h-recent">Recently changed</h2>
{_recent(data["recent"])}
</section>"""
    return page(TITLE, body, alternate=JSON)
