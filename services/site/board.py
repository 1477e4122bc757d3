"""`/sources/{name}`: a source's leaderboard page, its works by its counting metric, most
first, a page at a time through the keyset cursor of services/api/board.py (whose JSON,
`/api/v1/sources/{name}/top`, is the page's `<link rel=alternate>`)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from services.api.board import MAX_PER_PAGE, PER_PAGE, api_path, encode, read_board
from services.api.errors import BadParameter, NotFound
from services.api.params import int_param
from services.core.works import Work
from services.site.html import Alternate, page, text
from services.site.work_parts import work_path


def _row(rank: int, work: Work | None, work_id: str, value: int) -> str:
    title = text(work.title) if work and work.title else f"<code>{text(work_id)}</code>"
    doi = work.doi if work else None
    doi_cell = (
        f'<a href="https://doi.org/{text(quote(doi, safe="/"))}">{text(doi)}</a>' if doi else "—"
    )
    return (
        f'<tr><td class=num data-label="Rank">{rank:,}</td>'
        f'<th scope="row"><a href="{text(work_path(work_id))}">{title}</a></th>'
        f'<td data-label="DOI">{doi_cell}</td>'
        f'<td class=num data-label="Count">{value:,}</td></tr>'
    )


def _missing(name: str) -> web.Response:
    body = f"""<p role="alert">There is no source named <code>{text(name)}</code>.</p>
<p><a href="/sources">Every source</a>.</p>"""
    return page("No such source", body, status=404)


async def board_page(request: web.Request) -> web.Response:
    """`GET /sources/{name}?cursor=`: the leaderboard page (404 page: no such source)."""
    name = request.match_info["name"]
    try:
        per_page = int_param(request, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
        board = await read_board(request, per_page)
    except NotFound:
        return _missing(name)
    except BadParameter as exc:
        body = f'<p role="alert">{text(exc)}.</p><p><a href="/sources/{text(quote(name))}">'
        return page("Wrong parameter", body + "The first page</a>.</p>", status=400)
    source, metric = board.source, board.source.counting_metric
    title = f"{source.display_name}: most {metric}"
    cursor = request.query.get("cursor")
    alternate = Alternate(api_path(name, cursor, per_page), "This page of the leaderboard as JSON")
    here = f"/sources/{quote(name, safe='')}"
    links = []
    if cursor:
        links.append(f'<a href="{text(here)}">First page</a>')
    if board.next:
        more = f"?cursor={quote(encode(board.next), safe='')}" + (
            f"&per_page={per_page}" if per_page != PER_PAGE else ""
        )
        links.append(f'<a rel="next" href="{text(here + more)}">Next page</a>')
    nav = f'<nav aria-label="Pages"><p>{" · ".join(links)}</p></nav>' if links else ""
    if not board.rows:
        listing = f"<p>No work has a {text(metric)} count from {text(source.display_name)}"
        listing += " yet.</p>" if not cursor else " beyond the previous page.</p>"
    else:
        listing = f"""<div class="scroll"><table>
<caption>Works by {text(metric)} from {text(source.display_name)}, most first</caption>
<thead><tr><th scope=col>Rank</th><th scope=col>Work</th><th scope=col>DOI</th>
<th scope=col>{text(metric.capitalize())}</th></tr></thead>
<tbody>
{chr(10).join(_row(*row) for row in board.rows)}
</tbody></table></div>"""
    body = f"""<p>{text(source.description or source.display_name)} ·
group <strong>{text(source.group.value)}</strong> ·
<a href="/sources#{text(name)}">state of every source</a></p>
{listing}
{nav}"""
    return page(title, body, alternate=alternate)
