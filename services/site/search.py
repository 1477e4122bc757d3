"""`GET /works?q=`: the search page. Words of titles and publishers' names, or an identifier
(which goes straight to its work's page, 303, as `?id=` does), a page of results at a time
with a link to the next (the API's cursor), filters by publisher and by a source with a
non-zero count, sorting by a group's figure or a source's count (at most 1,000 matches), and
a `<link rel=alternate>` to the same page of `/api/v1/works?q=` as JSON."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from services.api.errors import BadParameter
from services.api.search import Found, search
from services.api.state import CATALOG, PUBLISHERS
from services.core.catalog import Catalog
from services.core.metrics import Group
from services.core.publishers import Publisher
from services.core.search import MAX_QUERY
from services.core.works import Work
from services.site.html import Alternate, page, text
from services.site.work_parts import work_path

TITLE = "Search works"
PER_PAGE = 20
MAX_LISTED_PUBLISHERS = 200  # more than this: the publisher filter is a member id field
FILTERS = ("q", "publisher_id", "source", "sort")


def _option(value: str, label: str, chosen: str) -> str:
    selected = " selected" if value == chosen else ""
    return f'<option value="{text(value)}"{selected}>{text(label)}</option>'


def search_form(query: dict[str, str], catalog: Catalog, known: list[Publisher]) -> str:
    """The search box with its filters, filled in with `query`."""
    chosen_pub, chosen_src = query.get("publisher_id", ""), query.get("source", "")
    if len(known) <= MAX_LISTED_PUBLISHERS:
        options = "".join(_option(p.member_id, p.name, chosen_pub) for p in known)
        publisher = f"""<label>Publisher
<select name="publisher_id">{_option("", "Any publisher", chosen_pub)}{options}</select></label>"""
    else:
        publisher = f"""<label>Publisher <span class="hint">(Crossref member id)</span>
<input name="publisher_id" inputmode="numeric" pattern="[1-9][0-9]{{0,9}}"
 value="{text(chosen_pub[:10])}"></label>"""
    sources = "".join(
        _option(name, catalog[name].display_name, chosen_src) for name in sorted(catalog)
    )
    chosen_sort = query.get("sort", "")
    groups = "".join(_option(g.value, f"Most {g.value}", chosen_sort) for g in Group)
    by_source = "".join(
        _option(name, f"{catalog[name].display_name} count", chosen_sort)
        for name in sorted(catalog)
    )
    return f"""<form method="get" action="/works" role="search" class="search">
<label>Title words, publisher, DOI, PMID or PMCID
<input type="search" name="q" required maxlength="{MAX_QUERY}"
 value="{text(query.get("q", "")[:MAX_QUERY])}" autocapitalize="off" spellcheck="false"></label>
{publisher}
<label>Counted by <select name="source">{_option("", "Any source", chosen_src)}{sources}</select>
</label>
<label>Sort by <select name="sort">{_option("", "Registration", chosen_sort)}{groups}{by_source}
</select></label>
<button type="submit">Search</button>
</form>"""


def _result(work: Work) -> str:
    title = text(work.title or work.work_id)
    doi = (
        f' <a class="doi" href="https://doi.org/{text(work.doi)}">doi:{text(work.doi)}</a>'
        if work.doi
        else ""
    )
    publisher = f' <span class="publisher">{text(work.publisher)}</span>' if work.publisher else ""
    return f'<li><a href="{text(work_path(work.work_id))}">{title}</a><br>{doi}{publisher}</li>'


def _results(found: Found, query: dict[str, str]) -> str:
    if not found.works:
        return '<p id="results" role="status">No work matches.</p>'
    items = "\n".join(_result(w) for w in found.works)
    more = ""
    if found.next_cursor is not None:
        href = "/works?" + urlencode({**query, "cursor": found.next_cursor})
        more = f'<p><a rel="next" href="{text(href)}">Next page</a></p>'
    return f"""<h2 id="results">Results</h2>
<ol class="results" aria-labelledby="results">
{items}
</ol>
{more}"""


async def form_for(request: web.Request) -> str:
    """The search form, empty (for the find page)."""
    known = await request.app[PUBLISHERS].list_publishers()
    return search_form({}, request.app[CATALOG], known)


async def search_page(request: web.Request) -> web.Response:
    """A page of results (an identifier found: its work's page, 303); a query that cannot be
    searched is the form again with the problem (400)."""
    query = {k: request.query[k] for k in FILTERS if request.query.get(k)}  # the form's blanks
    cursor = {"cursor": request.query["cursor"]} if "cursor" in request.query else {}
    catalog: Catalog = request.app[CATALOG]
    known = await request.app[PUBLISHERS].list_publishers()
    form = search_form(query, catalog, known)
    try:
        cleaned = request.clone(rel_url=request.rel_url.with_query({"q": "", **query, **cursor}))
        found = await search(cleaned, PER_PAGE)
    except BadParameter as exc:
        problem = f'<p class="error" role="alert">{text(str(exc))}</p>'
        return page(TITLE, problem + form, status=400)
    if found.by_identifier and found.works:
        raise web.HTTPSeeOther(work_path(found.works[0].work_id))
    api = "/api/v1/works?" + urlencode(
        {**query, "per_page": PER_PAGE, "cursor": request.query.get("cursor", "*")}
    )
    alternate = Alternate(api, "These results as JSON")
    return page(TITLE, form + _results(found, query), alternate=alternate)
