"""`/keys`, for an admin signed in on the site: every API key (never a secret or digest) with a
form to revoke each active one, which does what `POST /api/v1/keys/{id}/revoke` does."""

from __future__ import annotations

from aiohttp import web

from services.api.access import CALLER, GUARD
from services.api.state import CLOCK, KEYS
from services.core.keys import ApiKey, valid_key_id
from services.site.html import Alternate, page, text

TITLE = "API keys"
JSON = Alternate("/api/v1/keys", "These keys as JSON (with an admin key)")
MAX_SHOWN = 1000  # keys on the page, newest last


def _not_admin(request: web.Request) -> web.Response | None:
    caller = request[CALLER]
    if caller.admin:
        return None
    code, why = (403, "this needs an admin key") if caller.key else (401, "sign in first")
    link = '<p><a href="/signin">Sign in with an admin key</a>.</p>'
    return page("Not allowed", f"<p>{text(why)}.</p>{link}", status=code)


def _row(key: ApiKey, own: str) -> str:
    shown = key.shown()
    rate = f"{key.rate_per_minute:,}/min" if key.rate_per_minute else "role's default"
    state = f"revoked {text(shown['revoked_at'])}" if not key.active else "active"
    action = ""
    if key.active and key.key_id != own:
        action = (
            f'<form method="post" action="/keys/{text(key.key_id)}/revoke" class="inline">'
            f'<button type="submit">Revoke {text(key.key_id)}</button></form>'
        )
    elif key.key_id == own:
        action = "your key"
    return (
        f'<tr id="key-{text(key.key_id)}"><th scope="row"><code>{text(key.key_id)}</code></th>'
        f'<td data-label="Name">{text(key.name)}</td>'
        f'<td data-label="Role">{text(shown["role"])}</td>'
        f'<td data-label="E-mail">{text(key.email or "")}</td><td data-label="Rate">{rate}</td>'
        f'<td data-label="Created">{text(shown["created_at"])}</td>'
        f'<td data-label="State">{state}</td><td data-label="Revoke">{action}</td></tr>'
    )


async def keys_page(request: web.Request) -> web.Response:
    """`GET /keys`: the table (401/403 pages unless an admin is signed in)."""
    refused = _not_admin(request)
    if refused is not None:
        return refused
    own = request[CALLER].key
    keys = (await request.app[KEYS].list_keys())[-MAX_SHOWN:]
    rows = "\n".join(_row(k, own.key_id if own else "") for k in keys)
    body = f"""<p>Every key, oldest first; a key is never shown again after it was issued.
Revoking one stops it on every API replica within the key cache time.</p>
<div class="scroll"><table>
<caption>{len(keys):,} API keys</caption>
<thead><tr><th scope=col>Id</th><th scope=col>Name</th><th scope=col>Role</th>
<th scope=col>E-mail</th><th scope=col>Rate</th><th scope=col>Created</th>
<th scope=col>State</th><th scope=col>Revoke</th></tr></thead>
<tbody>
{rows}
</tbody></table></div>"""
    return page(TITLE, body, alternate=JSON)


async def revoke(request: web.Request) -> web.Response:
    """`POST /keys/{id}/revoke`: revoked and back to the list (303); 401/403 pages unless an
    admin is signed in, 404 no such key."""
    refused = _not_admin(request)
    if refused is not None:
        return refused
    key_id = request.match_info["id"]
    key = (
        await request.app[KEYS].revoke_key(key_id, request.app[CLOCK]())
        if valid_key_id(key_id)
        else None
    )
    if key is None:
        return page("No such key", f"<p>There is no API key with id {text(key_id)}.</p>", 404)
    request.app[GUARD].keys.put(key_id, key)
    return web.Response(status=303, headers={"Location": f"/keys#key-{key_id}"})
