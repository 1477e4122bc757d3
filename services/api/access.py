"""Who may call what, and how often: one middleware over a per-route table of access levels.

Each route declares what it needs in `routes.ACCESS` (method, path template) -> Access:

- PUBLIC: nothing is looked at (probes, /metrics);
- OPEN: no key needed (the OpenAPI document, sign-up), but a key sent must be a good one;
- READ: no key needed unless ALM_API_REQUIRE_KEY; a key sent must be a good one;
- KEY: any good key, reader or admin; the handler decides what the key may touch
  (`require_owner`: an admin key, or the key that owns the thing);
- ADMIN: an admin key.

A route missing from the table needs an admin key (closed by default). A key that is not
ours, unknown or revoked is a 401 on every route but PUBLIC ones, also where no key is
needed; a reader key on an admin route is a 403; both JSON, and 401s carry
`WWW-Authenticate: Bearer`. A guest key (ALM_API_GUEST_KEYS: the PLOS key old R clients
always send) counts as no key.

Quotas: a token bucket per key (its own rate, else its role's) or, without a key, per client
address (ALM_API_RATE_ANONYMOUS); every response under a quota carries X-RateLimit-Limit,
-Remaining and -Reset (seconds until the bucket is full), and a refusal is a 429 with
Retry-After. The buckets are this replica's: with N API replicas behind a load balancer a
client gets up to N times its rate. A client address whose wrong keys used up its quota is
refused with 429 before any key is looked up.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog
from aiohttp import hdrs, web

from services.api.credentials import SITE_COOKIE, client_address, presented_key
from services.api.errors import error_response
from services.api.keycache import KeyCache
from services.core.keys import ApiKey, Role, split_key
from services.core.quota import Buckets, Rate, Verdict, per_minute
from services.core.text import shown
from services.settings import AccessSettings

log = structlog.get_logger("alm.api")

WRONG_KEY = "wrong API key."  # ALM's own message, which ALM clients show
REVOKED_KEY = "API key revoked."
NEEDS_KEY = "an API key is required: send Authorization: Bearer KEY, X-API-Key: KEY or api_key=KEY"
NEEDS_ADMIN = "this needs an admin API key"


class Access(enum.Enum):
    """What a route needs (see the module's docstring)."""

    PUBLIC = "public"
    OPEN = "open"
    READ = "read"
    KEY = "key"
    ADMIN = "admin"


Rules = Mapping[tuple[str, str], Access]  # (METHOD, path template) -> Access


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request: a good key, or no one in particular (`key` None), from where."""

    key: ApiKey | None
    address: str

    @property
    def admin(self) -> bool:
        """Whether the caller holds an admin key."""
        return self.key is not None and self.key.role is Role.ADMIN

    def may_manage(self, owner_key_id: str | None) -> bool:
        """Whether the caller may manage a thing owned by `owner_key_id`: an admin key may
        manage anything, any other key only what it owns."""
        if self.admin:
            return True
        return self.key is not None and owner_key_id is not None and self.key.key_id == owner_key_id


CALLER = web.RequestKey("caller", Caller)
QUOTA_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("quota_headers")


class Refused(Exception):
    """A request refused by access control: its status, message and headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        """The JSON error answering it."""
        return error_response(self.status, self.message, self.headers)


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="alm"' + (f', error="{error}"' if error else "")
    return {hdrs.WWW_AUTHENTICATE: value}


def require_owner(request: web.Request, owner_key_id: str | None) -> Caller:
    """The caller, if it may manage a thing owned by `owner_key_id` (an admin key or the
    owner's); else a 403 (for a route declared Access.KEY)."""
    caller = request[CALLER]
    if not caller.may_manage(owner_key_id):
        raise Refused(403, "this belongs to another key: it needs its owner's or an admin key")
    return caller


class Guard:
    """The access rules, the key cache and the quota buckets of one API replica."""

    def __init__(
        self,
        settings: AccessSettings,
        rules: Rules,
        keys: KeyCache,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.keys = keys
        self.buckets = Buckets()
        self._clock = clock

    def rule_of(self, request: web.Request) -> Access:
        """What the matched route needs; OPEN for a request no route matched (a 404/405)."""
        resource = request.match_info.route.resource
        if resource is None:
            return Access.OPEN
        method = "GET" if request.method == "HEAD" else request.method
        return self.rules.get((method, resource.canonical), Access.ADMIN)

    async def identify(self, request: web.Request, address: str) -> ApiKey | None:
        """The good key the request carries, None without one; Refused for a bad one."""
        presented = await presented_key(request)
        if presented is None or presented in self.settings.guest_keys:
            return None
        return await self.verify(presented, address)

    async def verify(self, presented: str, address: str) -> ApiKey:
        """The good key `presented` is; Refused (401) for a wrong or revoked one, which spends
        the address's quota (429 once it is spent)."""
        if self._spent(f"addr:{address}", self.settings.rate_anonymous):
            raise Refused(429, "too many requests with wrong API keys from this address")
        parts = split_key(presented)
        key = await self.keys.get(parts[0]) if parts else None
        if parts is None or key is None or not key.matches(parts[1]):
            self.take(f"addr:{address}", self.settings.rate_anonymous)
            raise Refused(401, WRONG_KEY, _challenge("invalid_token"))
        if not key.active:
            raise Refused(401, REVOKED_KEY, _challenge("invalid_token"))
        return key

    def authorize(self, need: Access, key: ApiKey | None) -> None:
        """Refused unless `key` (None: no key) may call a route needing `need`."""
        if need is Access.ADMIN:
            if key is None:
                raise Refused(401, NEEDS_ADMIN, _challenge())
            if key.role is not Role.ADMIN:
                raise Refused(
                    403,
                    f"{NEEDS_ADMIN}; this key is a {key.role.value} key",
                    _challenge("insufficient_scope"),
                )
        elif key is None and (
            need is Access.KEY or (need is Access.READ and self.settings.require_key)
        ):
            raise Refused(401, NEEDS_KEY, _challenge())

    def rate_of(self, key: ApiKey | None) -> Rate | None:
        """The quota of `key` (None: of a client address); None when unlimited."""
        if key is None:
            return self.settings.rate_anonymous
        if key.rate_per_minute is not None:
            return per_minute(key.rate_per_minute)
        return self.settings.rate_admin if key.role is Role.ADMIN else self.settings.rate_reader

    def take(self, bucket: str, rate: Rate | None) -> Verdict | None:
        """Spend one request of `bucket` (None when unlimited)."""
        return None if rate is None else self.buckets.take(bucket, rate, self._clock())

    def _spent(self, bucket: str, rate: Rate | None) -> bool:
        return rate is not None and not self.buckets.has_left(bucket, self._clock())


GUARD: web.AppKey[Guard] = web.AppKey("guard")  # the access rules, keys and quotas


def limit(request: web.Request, verdict: Verdict | None) -> None:
    """Attach the quota's headers to the response; Refused (429) when it is spent."""
    if verdict is None:
        return
    request[QUOTA_HEADERS] = verdict.headers()
    if not verdict.allowed:
        raise Refused(
            429,
            f"too many requests: the limit is {verdict.rate}; retry in {verdict.retry_after} s",
            verdict.headers(),
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def access_control(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Identify the caller, check the route's access level and the caller's quota, then call
    the handler (inside json_errors: a malformed body or two keys are JSON 400s)."""
    guard = request.app[GUARD]
    need = guard.rule_of(request)
    if need is Access.PUBLIC:
        return await handler(request)
    address = client_address(request, guard.settings.trusted_proxies)
    try:
        key = await guard.identify(request, address)
        guard.authorize(need, key)
        bucket = f"key:{key.key_id}" if key is not None else f"addr:{address}"
        limit(request, guard.take(bucket, guard.rate_of(key)))
        request[CALLER] = Caller(key, address)
        return await handler(request)
    except Refused as refused:
        if refused.status != 429:
            path = shown(request.path)
            log.info("access_refused", status=refused.status, path=path, remote=address)
        response = refused.response()
        if refused.status == 401 and SITE_COOKIE in request.cookies and request.path[:5] != "/api/":
            response.del_cookie(SITE_COOKIE)  # a page's revoked or wrong key: signed out
        return response


async def quota_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """on_response_prepare: the X-RateLimit-* headers on every response under a quota, also
    the errors other middlewares make (a 404 of an unknown work)."""
    headers = request.get(QUOTA_HEADERS) if isinstance(request, web.Request) else None
    for name, value in (headers or {}).items():
        response.headers.setdefault(name, value)
