"""The sign-up page: `GET /signup` a form (name, e-mail), `POST /signup` a reader key shown
once (`Cache-Control: no-store`), or the form again with what was wrong. The key is issued by
the same code as `POST /api/v1/signup` (services/api/keys.issue_reader_key): same checks, same
quota per client address, same store."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.access import GUARD, Refused
from services.api.credentials import API_KEY_PARAM, FORM_TYPES
from services.api.errors import BadParameter
from services.api.keys import SIGNUP_CLOSED, issue_reader_key
from services.site.html import Alternate, page, text

TITLE = "Get an API key"
DOCS = Alternate("/api/v1/openapi.json", "The API, sign-up included (POST /api/v1/signup)")
NO_STORE = {"Cache-Control": "no-store"}
_MAX_FIELD = 1000  # longer values are not shown back in the form


def _form(name: str = "", email: str = "", error: str = "") -> str:
    problem = ""
    if error:
        problem = f'<p class="error" id="problem" role="alert">{text(error)}</p>\n'
    described = ' aria-describedby="problem"' if error else ""
    return f"""<p>A reader key lets you use the API at your own quota instead of your network's
shared one. It is shown once: keep it somewhere safe.</p>
{problem}<form method="post" action="/signup">
<label>Your name or your project's
<input name="name" autocomplete="name" required maxlength="100"
 value="{text(name)}"{described}>
</label>
<label>E-mail address <span class="hint">(only for the operator, to reach you about your key)</span>
<input name="email" type="email" autocomplete="email" required maxlength="254"
 value="{text(email)}"{described}>
</label>
<button type="submit">Get a key</button>
</form>"""


async def signup_form(request: web.Request) -> web.Response:
    """`GET /signup`: the form (or why sign-up is closed)."""
    if not request.app[GUARD].settings.signup:
        return page(TITLE, f"<p>{text(SIGNUP_CLOSED)}.</p>", status=403, alternate=DOCS)
    return page(TITLE, _form(), alternate=DOCS)


async def signup_submit(request: web.Request) -> web.Response:
    """`POST /signup` (a form): the new key on a page of its own, or the form again with the
    problem (400), the quota's 429 (with Retry-After) or 403 when sign-up is closed."""
    if not request.app[GUARD].settings.signup:
        return page(TITLE, f"<p>{text(SIGNUP_CLOSED)}.</p>", status=403, alternate=DOCS)
    if request.content_type not in FORM_TYPES:
        return page(TITLE, _form(error="send the form"), status=400, alternate=DOCS)
    fields: dict[str, Any] = {}
    for key, value in (await request.post()).items():
        if key in ("name", "email") and isinstance(value, str) and key not in fields:
            fields[key] = value
        elif key != API_KEY_PARAM:
            return page(TITLE, _form(error="the form has a field it does not take"), status=400)
    shown = {k: v if len(v) <= _MAX_FIELD else "" for k, v in fields.items()}
    try:
        record, secret = await issue_reader_key(request, fields)
    except BadParameter as exc:
        return page(TITLE, _form(**shown, error=str(exc)), status=400, alternate=DOCS)
    except Refused as refused:
        body = _form(**shown, error=refused.message)
        return page(TITLE, body, status=refused.status, headers=refused.headers, alternate=DOCS)
    api = f"{request.scheme}://{request.host}/api/v1/works"
    body = f"""<p>Your reader key, <strong>shown only this once</strong>: copy it now.</p>
<p><code class="key" id="key">{text(secret)}</code></p>
<p>Key id <code id="key-id">{text(record.key_id)}</code> (for the operator: it is not secret),
issued to {text(record.name)}.</p>
<h2>Using it</h2>
<p>Send it with each request, as a header (best: it stays out of logs and URLs):</p>
<pre><code>curl -H "Authorization: Bearer {text(secret)}" {text(api)}</code></pre>
<p>or as <code>X-API-Key: KEY</code>, or as the query parameter <code>api_key=KEY</code>
(what ALM clients send). The API is described by its
<a href="/api/v1/openapi.json">OpenAPI document</a>.</p>"""
    return page("Your API key", body, status=201, headers=NO_STORE)
