"""The site's routes and what each needs (merged into the API's access table)."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from services.api.access import Access, Rules
from services.site import badge, board, find, home, keys, signin, signup, sources, work

_CSS = files("services.site").joinpath("site.css").read_bytes()
_JS = files("services.site").joinpath("work.js").read_bytes()


async def stylesheet(request: web.Request) -> web.Response:
    """`GET /static/site.css`: the one stylesheet (from the package: no CDN)."""
    return web.Response(
        body=_CSS,
        content_type="text/css",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


async def script(request: web.Request) -> web.Response:
    """`GET /static/work.js`: the work page's live update (from the package)."""
    return web.Response(
        body=_JS,
        content_type="text/javascript",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def setup_site(app: web.Application) -> None:
    """Register the site's pages."""
    app.router.add_get("/", home.home_page)
    app.router.add_get("/static/site.css", stylesheet)
    app.router.add_get("/static/work.js", script)
    app[badge.BADGES] = badge.BadgeCache()
    app.router.add_get("/badge/{id:.+}.svg", badge.badge)
    app.router.add_get("/signup", signup.signup_form)
    app.router.add_post("/signup", signup.signup_submit)
    app.router.add_get("/signin", signin.signin_form)
    app.router.add_post("/signin", signin.signin)
    app.router.add_post("/signout", signin.signout)
    app.router.add_get("/sources", sources.sources_page)
    app.router.add_post("/sources/{name}/{action:pause|resume}", sources.control)
    app.router.add_get("/sources/{name}", board.board_page)
    app.router.add_get("/keys", keys.keys_page)
    app.router.add_post("/keys/{id}/revoke", keys.revoke)
    app.router.add_get("/works", find.find_work)
    app.router.add_get("/works/{id:.+}", work.work_page)


SITE_ACCESS: Rules = {
    ("GET", "/"): Access.READ,  # the home page
    ("GET", "/static/site.css"): Access.PUBLIC,
    ("GET", "/static/work.js"): Access.PUBLIC,
    # embedded in other sites' pages, whose readers send no key: open even with
    # ALM_API_REQUIRE_KEY, under the per-address quota
    ("GET", "/badge/{id}.svg"): Access.OPEN,
    ("GET", "/signup"): Access.OPEN,
    ("POST", "/signup"): Access.OPEN,
    ("GET", "/signin"): Access.OPEN,
    ("POST", "/signin"): Access.OPEN,
    ("POST", "/signout"): Access.PUBLIC,  # forgetting a key needs none, even a wrong one
    ("GET", "/sources"): Access.READ,
    # a page: the handler answers 401/403 as HTML (an admin key, from the signed-in cookie)
    ("POST", "/sources/{name}/{action}"): Access.OPEN,
    ("GET", "/sources/{name}"): Access.READ,  # a source's leaderboard
    ("GET", "/keys"): Access.OPEN,  # an admin's page; the handler answers 401/403 as HTML
    ("POST", "/keys/{id}/revoke"): Access.OPEN,
    ("GET", "/works"): Access.READ,
    ("GET", "/works/{id}"): Access.READ,  # like /api/v1/works/{id}
}
