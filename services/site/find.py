"""`GET /works`: find a work's page by any of its identifiers (a form; `?id=` goes to
`/works/{id}`, 303, where an unknown work is the 404 page), or search (`?q=`: search.py)."""

from __future__ import annotations

from aiohttp import web

from services.core.identifiers import MAX_INPUT_LENGTH, InvalidIdentifier, parse_identifier
from services.site import search
from services.site.html import page, text
from services.site.work_parts import work_path

TITLE = "Find a work"


def _form(value: str = "", error: str = "") -> str:
    problem = ""
    if error:
        problem = f'<p class="error" id="problem" role="alert">{text(error)}</p>\n'
    described = ' aria-describedby="problem"' if error else ""
    return f"""<p>A work's numbers from every source, its history and its events.</p>
{problem}<form method="get" action="/works">
<label>DOI, PMID or PMCID <span class="hint">(e.g. 10.7717/peerj.4375 or PMC5815332)</span>
<input name="id" required maxlength="{MAX_INPUT_LENGTH}" value="{text(value[:MAX_INPUT_LENGTH])}"
 autocapitalize="off" spellcheck="false"{described}>
</label>
<button type="submit">Show the work</button>
</form>"""


async def find_work(request: web.Request) -> web.Response:
    """The form, or to the page of the work `?id=` names (303); a wrong id is the form again
    with the problem (400)."""
    if "q" in request.query:
        return await search.search_page(request)
    raw = request.query.get("id", "").strip()
    if not raw:
        return page(TITLE, await search.form_for(request) + _form())
    try:
        ident = parse_identifier(raw)
    except InvalidIdentifier as exc:
        return page(TITLE, _form(raw, str(exc)), status=400)
    return web.Response(status=303, headers={"Location": work_path(ident.work_id)})
