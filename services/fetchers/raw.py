"""What an answered call is kept as (services/core/ports.py RawResponse): the URL with
credential parameters masked, every configured secret redacted from URL and body, the digest of
the body as received and the call's stable id (services/core/provenance.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.core.provenance import RawResponse, Redactor, body_digest, call_id
from services.core.sources import SourceConfig
from services.fetchers.base import Source, UpstreamRequest, UpstreamResponse

SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "requestor_id",
        "customer_id",
        "access_token",
        "token",
        "client_secret",
        "password",
    }
)
# extra settings (ALM_<SOURCE>__<KEY>) whose values are masked wherever they appear in a kept
# URL or body: a key naming one of these (client_secret, requestor_id, customer_id, ...)
SECRET_EXTRAS = ("secret", "password", "token", "key", "requestor_id", "customer_id")


def public_url(url: str) -> str:
    """`url` with credential query parameters and a user:password part masked (it is
    stored and published)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1])
    if not parts.query:
        return urlunsplit(parts)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        return urlunsplit(parts)
    masked = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(masked, safe="/:|,*")))


def secrets_of(config: SourceConfig) -> Iterator[str]:
    """The configured values a kept call must never show: the API key (and each half of an
    `id:secret` pair) and every extra setting named like a credential."""
    if config.api_key:
        yield config.api_key
        yield from config.api_key.split(":", 1)
    for name, value in config.extra.items():
        if any(word in name.lower() for word in SECRET_EXTRAS):
            yield value


def kept(
    source: Source,
    request: UpstreamRequest,
    reply: UpstreamResponse,
    at: datetime,
    redact: Redactor,
) -> RawResponse:
    """The raw response an answered call is kept as: URL masked, secrets redacted, with the
    digest of the body as received and the call's stable id."""
    url, url_redacted = redact(public_url(reply.url))
    body, body_redacted = redact(reply.text())
    digest = body_digest(reply.body)
    ids = tuple(w.work_id for w in request.works)
    asked = repr((request.host, request.path, request.params, request.form, request.json_body))
    raw_id = call_id(source.name, request.method, url, at, ids, digest, asked)
    return RawResponse(
        source.name,
        at,
        url,
        reply.status,
        body,
        ids,
        raw_id=raw_id,
        digest=digest,
        method=request.method,
        redacted=url_redacted or body_redacted,
    )
