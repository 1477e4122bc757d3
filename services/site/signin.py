"""Signing in on the site with an API key: `POST /signin` checks the key and keeps it in the
`alm_key` cookie (HttpOnly, SameSite=Strict, Secure over HTTPS, for the browser session), which
the pages read (services/api/credentials); `POST /signout` forgets it. A wrong key spends the
client address's quota as on the API, so the form is no faster way to guess keys."""

from __future__ import annotations

from aiohttp import web

from services.api.access import CALLER, GUARD, Refused
from services.api.credentials import SITE_COOKIE, own_origin
from services.site.html import page, text

TITLE = "Sign in"


def _form(error: str = "") -> str:
    problem = ""
    if error:
        problem = f'<p class="error" id="problem" role="alert">{text(error)}</p>\n'
    return f"""<p>Sign in with your API key to see what it may do here; an admin key pauses and
resumes sources. The key stays in this browser until you sign out or close it.</p>
{problem}<form method="post" action="/signin">
<label>API key
<input name="key" type="password" autocomplete="off" required maxlength="200"
 spellcheck="false"{' aria-describedby="problem"' if error else ""}>
</label>
<button type="submit">Sign in</button>
</form>
<p>No key yet? <a href="/signup">Get one</a>.</p>"""


async def signin_form(request: web.Request) -> web.Response:
    """`GET /signin`: the form."""
    return page(TITLE, _form())


async def signin(request: web.Request) -> web.StreamResponse:
    """`POST /signin` (a form with `key`): signed in and sent to the sources page (303), or
    the form again: 401 for a wrong or revoked key, 429 past the address's quota."""
    if request.headers.get("Origin") not in (None, own_origin(request)):
        return page(TITLE, _form("sign in from this site's own page"), status=403)
    form = await request.post()
    presented = form.get("key")
    if not isinstance(presented, str) or not presented.strip():
        return page(TITLE, _form("enter your API key"), status=400)
    guard = request.app[GUARD]
    try:
        await guard.verify(presented.strip(), request[CALLER].address)
    except Refused as refused:
        return page(TITLE, _form(refused.message), status=refused.status, headers=refused.headers)
    response = web.Response(status=303, headers={"Location": "/sources"})
    response.set_cookie(
        SITE_COOKIE,
        presented.strip(),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    """`POST /signout`: the key cookie forgotten; back to the sign-in page."""
    response = web.Response(status=303, headers={"Location": "/signin"})
    response.del_cookie(SITE_COOKIE, path="/")
    return response
