"""What a request presents: its API key (as ALM clients send it) and the client's address.

A key is read from `Authorization: Bearer KEY`, `X-API-Key: KEY`, the query's `api_key=KEY`
(pyalm, rOpenSci alm, the OJS plugin's reads) and a form body's `api_key` field (the OJS
deposit, R's POSTs with X-HTTP-Method-Override). Empty values count as absent; other
Authorization schemes are left to whoever set them (a proxy's Basic auth); two different
keys in one request are a 400 (RFC 6750's invalid_request).

The site's pages (paths outside /api/) also read the key a person signed in with
(`POST /signin`) from the `alm_key` cookie (HttpOnly, SameSite=Strict); on a POST only when
the request's Origin is this server's own, so no other page (another port of the same host
included, which SameSite counts as the same site) can post with it. The API never reads it.

The client's address is the peer's, unless the peer is a trusted proxy
(ALM_API_TRUSTED_PROXIES): then the right-most X-Forwarded-For entry that is not a trusted
proxy (what ingress-nginx, Envoy and cloud load balancers append). An IPv6 client counts by
its /64, the block one subscriber is given, so a quota cannot be escaped by changing address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from services.api.errors import BadParameter
from services.core.text import one_line

API_KEY_HEADER = "X-API-Key"
SITE_COOKIE = "alm_key"  # the key a person signed in with on the site (services/site/signin)
API_KEY_PARAM = "api_key"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
FORM_METHODS = ("POST", "PUT", "PATCH")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


async def presented_key(request: web.Request) -> str | None:
    """The API key the request carries, None if it carries none; BadParameter when it
    carries two different ones."""
    found: set[str] = set()
    auth = request.headers.get(hdrs.AUTHORIZATION, "").strip()
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer":
        found.add(token.strip())
    found.update(v.strip() for v in request.headers.getall(API_KEY_HEADER, ()))
    found.update(v.strip() for v in request.query.getall(API_KEY_PARAM, ()))
    if request.method in FORM_METHODS and request.content_type in FORM_TYPES:
        found.update(await _form_keys(request))
    found.discard("")
    if not found and _site_cookie_counts(request):
        found.add(request.cookies[SITE_COOKIE].strip())
        found.discard("")
    if len(found) > 1:
        raise BadParameter(
            "the request carries different API keys: send one key, in one place "
            "(Authorization: Bearer, X-API-Key or api_key)"
        )
    return found.pop() if found else None


def own_origin(request: web.Request) -> str:
    """This server's origin as the browser sees it (scheme://host[:port])."""
    return f"{request.scheme}://{request.host}"


def _site_cookie_counts(request: web.Request) -> bool:
    """Whether the site cookie is read: on a page, not the API; on a POST only from a page of
    this server (Origin, which browsers send with every form POST)."""
    if SITE_COOKIE not in request.cookies or request.path.startswith("/api/"):
        return False
    if request.method in ("GET", "HEAD"):
        return True
    return request.headers.get(hdrs.ORIGIN) == own_origin(request)


async def _form_keys(request: web.Request) -> list[str]:
    """`api_key` fields of a form body (read once; handlers get it again from request.post())."""
    try:
        form = await request.post()
    except RequestPayloadError as exc:
        raise BadParameter(f"request body could not be read: {one_line(exc)}") from None
    except (ValueError, HttpProcessingError) as exc:  # a malformed multipart body or part header
        raise BadParameter(f"form body could not be read: {one_line(exc)}") from None
    return [v for v in form.getall(API_KEY_PARAM, ()) if isinstance(v, str)]


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(request: web.Request, proxies: Sequence[Network] = ()) -> str:
    """The address a quota counts the request under (see the module's docstring)."""
    peer = _address(request.remote)
    if peer is None:
        return request.remote or "unknown"
    client = peer
    if proxies and _trusted(peer, proxies):
        hops = [h for v in request.headers.getall("X-Forwarded-For", ()) for h in v.split(",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # a garbled entry: trust nothing before it
            client = address
            if not _trusted(address, proxies):
                break
    return _bucket(client)


def _bucket(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
