"""API keys over HTTP: reader sign-up, the caller's own key, and the admin's list, create,
show and revoke. A key itself appears once, in the answer that issued it (`Cache-Control:
no-store`); everything else shows only what `ApiKey.shown` allows."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from services.api.access import CALLER, GUARD, Refused, limit
from services.api.credentials import API_KEY_PARAM, FORM_TYPES
from services.api.errors import BadParameter, NotFound
from services.api.params import int_param, read_json
from services.api.state import CLOCK, KEYS
from services.core.keys import (
    ApiKey,
    InvalidField,
    Role,
    check_email,
    check_name,
    check_rate,
    parse_key_rate,
    valid_key_id,
)
from services.keyring import create_key

MAX_PER_PAGE = 1000
NO_STORE = {"Cache-Control": "no-store"}
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")


async def _fields(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """A JSON object or form body's fields, only `allowed` ones (a form's `api_key`, the
    credential, is not a field); names the caller made up are not repeated back."""
    if request.content_type in FORM_TYPES:
        fields: dict[str, Any] = {}
        for name, value in (await request.post()).items():
            if name == API_KEY_PARAM:
                continue
            if not isinstance(value, str):
                raise BadParameter(f"form field {_named(name)} must be text, not a file")
            if name in fields:
                raise BadParameter(f"form field {_named(name)} is given twice")
            fields[name] = value
    else:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadParameter("body must be a JSON object (or a form)")
        fields = body
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise BadParameter(
            f"body has unknown fields: {', '.join(_named(u) for u in unknown[:5])}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    return fields


def _named(name: str) -> str:
    return repr(name) if _FIELD_NAME.fullmatch(name) else "(a field with an unusual name)"


def _text(fields: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = fields.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadParameter(
            f"'{name}' is required, as a string" if value is None else f"'{name}' must be a string"
        )
    return value


def _issued(record: ApiKey, secret: str, location: bool) -> web.Response:
    headers = dict(NO_STORE)
    if location:
        headers["Location"] = f"/api/v1/keys/{record.key_id}"
    return web.json_response({**record.shown(), "key": secret}, status=201, headers=headers)


SIGNUP_CLOSED = "sign-up is closed on this server: ask its operator for a key"


async def signup(request: web.Request) -> web.Response:
    """`POST /api/v1/signup` {name, email} (JSON or a form): a reader key, shown once."""
    if not request.app[GUARD].settings.signup:
        raise Refused(403, SIGNUP_CLOSED)
    fields = await _fields(request, {"name", "email"})
    record, secret = await issue_reader_key(request, fields)
    return _issued(record, secret, location=False)


async def issue_reader_key(request: web.Request, fields: dict[str, Any]) -> tuple[ApiKey, str]:
    """A new reader key for the sign-up `fields` (name, email): BadParameter naming a wrong
    field, Refused (429) past the client address's sign-up quota; the API's sign-up and the
    site's sign-up page both issue keys here."""
    guard = request.app[GUARD]
    try:
        name = check_name(_text(fields, "name") or "")
        email = check_email(_text(fields, "email") or "")
    except InvalidField as exc:
        raise BadParameter(str(exc)) from None
    address = request[CALLER].address
    limit(request, guard.take(f"signup:{address}", guard.settings.rate_signup))
    record, secret = await create_key(
        request.app[KEYS], name, Role.READER, request.app[CLOCK](), email=email
    )
    guard.keys.put(record.key_id, record)
    return record, secret


async def own_key(request: web.Request) -> web.Response:
    """`GET /api/v1/keys/me`: the caller's own key and its quota."""
    key = request[CALLER].key
    if key is None:  # the route needs a key: access control refused this already
        raise Refused(401, "an API key is required")
    rate = request.app[GUARD].rate_of(key)
    return web.json_response({**key.shown(), "quota": str(rate) if rate else None})


async def list_keys(request: web.Request) -> web.Response:
    """`GET /api/v1/keys`: every key, oldest first, a page at a time (no secrets)."""
    page = int_param(request, "page", 1, 1, 10**9)
    per_page = int_param(request, "per_page", 100, 1, MAX_PER_PAGE)
    keys = await request.app[KEYS].list_keys()
    start = (page - 1) * per_page
    return web.json_response(
        {
            "total": len(keys),
            "page": page,
            "per_page": per_page,
            "total_pages": (len(keys) + per_page - 1) // per_page,
            "data": [k.shown() for k in keys[start : start + per_page]],
        }
    )


def _rate(fields: dict[str, Any]) -> int | None:
    value = fields.get("rate_per_minute")
    if value is None:
        return None
    if isinstance(value, str):  # a form, or "600/min"
        return parse_key_rate(value)
    if isinstance(value, float) and value.is_integer():  # JSON's 600.0 is the integer 600
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField("'rate_per_minute' must be an integer (0: no limit) or null")
    return check_rate(value)


async def create(request: web.Request) -> web.Response:
    """`POST /api/v1/keys` {name, role?, rate_per_minute?, email?}: a new key, shown once."""
    fields = await _fields(request, {"name", "role", "rate_per_minute", "email"})
    try:
        name = check_name(_text(fields, "name") or "")
        role_name = _text(fields, "role", required=False) or Role.READER.value
        if role_name not in {r.value for r in Role}:
            raise InvalidField("'role' must be reader or admin")
        email = _text(fields, "email", required=False)
        rate = _rate(fields)
        email = check_email(email) if email is not None else None
    except InvalidField as exc:
        raise BadParameter(str(exc)) from None
    record, secret = await create_key(
        request.app[KEYS], name, Role(role_name), request.app[CLOCK](), rate, email
    )
    request.app[GUARD].keys.put(record.key_id, record)
    return _issued(record, secret, location=True)


def _key_id(request: web.Request) -> str:
    key_id = request.match_info["id"]
    if not valid_key_id(key_id):
        raise BadParameter("'id' must be a key id: 12 hex characters (alm keys list shows them)")
    return key_id


async def show(request: web.Request) -> web.Response:
    """`GET /api/v1/keys/{id}`: one key (no secret)."""
    key_id = _key_id(request)
    key = await request.app[KEYS].get_key(key_id)
    if key is None:
        raise NotFound(f"no API key with id {key_id}")
    return web.json_response(key.shown())


async def revoke(request: web.Request) -> web.Response:
    """`POST /api/v1/keys/{id}/revoke`: the key stops working (on this replica at once, on
    the others within ALM_API_KEY_CACHE_SECONDS); revoking it again changes nothing."""
    key_id = _key_id(request)
    key = await request.app[KEYS].revoke_key(key_id, request.app[CLOCK]())
    if key is None:
        raise NotFound(f"no API key with id {key_id}")
    request.app[GUARD].keys.put(key_id, key)
    return web.json_response(key.shown())
