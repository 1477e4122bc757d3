"""Mendeley catalog: reader counts (people who saved the work in their library).

OAuth2 client credentials: `POST /oauth/token` (HTTP Basic client id:secret) once, then
`GET /catalog?doi=...&view=stats` with the Bearer token, which the HTTP layer caches and renews
on a 401. The answer is an array; an empty array means Mendeley does not know the DOI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.metrics import Group, MetricSpec, Slot
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.auth import basic_auth, client_credentials
from services.fetchers.base import (
    ConfigError,
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    as_list,
    as_object,
    json_payload,
    work_meta,
)

ACCEPT = ("Accept", "application/vnd.mendeley-document.1+json")


class Mendeley(Source):
    """Mendeley: readers who saved the work."""

    name = "mendeley"
    display_name = "Mendeley"
    group = Group.SAVED
    metrics = (MetricSpec("readers", Group.SAVED, Slot.READERS, description="reader_count"),)
    base_url = "https://api.mendeley.com"
    batch_size = 1
    limits = Limits(requests_per_second=1.0, concurrency=1)  # Lagotto noted 150/hour (2016)
    auth = "OAuth2 client credentials (extra client_id/client_secret or api_key id:secret)"
    description = "Readers in the Mendeley catalog (needs a registered Mendeley app)."

    def missing_config(self, config: SourceConfig) -> str | None:
        """Mendeley needs an app's client id and secret."""
        if client_credentials(config) is None:
            return "no Mendeley client credentials (client_id/client_secret or api_key id:secret)"
        return None

    def auth_request(self, config: SourceConfig) -> UpstreamRequest | None:
        """`POST /oauth/token` with the client credentials grant."""
        creds = client_credentials(config)
        if creds is None:
            raise ConfigError(self.missing_config(config) or "no credentials")
        headers = (("Authorization", basic_auth(*creds)),)
        form = (("grant_type", "client_credentials"), ("scope", "all"))
        return UpstreamRequest(
            "/oauth/token", (), method="POST", headers=headers, form=form, step="token"
        )

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /catalog?doi=...&view=stats` per work."""
        return [
            UpstreamRequest(
                "/catalog", (w,), (("doi", w.doi or ""), ("view", "stats")), headers=(ACCEPT,)
            )
            for w in works
        ]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """`reader_count` of the document with the DOI; an empty array is no document."""
        work = request.works[0]
        if response.status == 404:
            return ParseResult({work.work_id: NotFound("not in the catalog")})
        documents = [as_object(d, "a document") for d in as_list(json_payload(response), "answer")]
        if not documents:
            return ParseResult({work.work_id: NotFound("not in the catalog")})
        document = next((d for d in documents if _doi(d) == work.doi), documents[0])
        readers = as_count(document.get("reader_count", 0), "reader_count")
        meta = work_meta(title=document.get("title"), issued=str(document.get("year") or ""))
        link = document.get("link") if isinstance(document.get("link"), str) else None
        return ParseResult({work.work_id: Found({"readers": readers}, events_url=link, meta=meta)})


def _doi(document: dict[str, Any]) -> str:
    ids = document.get("identifiers")
    return str(ids.get("doi", "")).lower() if isinstance(ids, dict) else ""
