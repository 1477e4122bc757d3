"""Provenance: the upstream calls behind every stored number.

Each answered upstream call is kept for a while as a raw response (`RawResponse`) under a
stable id. The observation a call produced carries a `CallRef` to it (id, time, status, method
and the SHA-256 digest of the body as received), and the state its numbers land in keeps the
refs of the observation they came from: the link from a number to its calls is exact, not "the
latest calls". The refs outlive the kept bodies (ALM_RAW_TTL_DAYS): after that the digest still
says which answer a number came from; the URL and the body are gone.

Secrets never reach what is kept: credential query parameters are masked in URLs
(`services.fetchers.raw.public_url`) and every configured secret value is masked wherever it
appears in a kept URL or body (`Redactor`); credentials sent in headers are not kept at all.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from services.core.timeutil import from_iso, to_iso

CALL_NAMESPACE = uuid.UUID("3b0d3f4e-5c71-4a8e-9d35-8f1e2c6a9b47")
MASK = "***"
MIN_SECRET = 4  # characters: shorter configured values are not masked (they would mask noise)


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An upstream call kept for a while so every stored number can be traced to it.

    `raw_id` and `digest` (SHA-256 of the body as received) are what states refer to
    (`CallRef`); `redacted`: a configured secret was masked in `url` or `body`, so the kept body
    no longer hashes to `digest`."""

    source: str
    retrieved_at: datetime
    url: str
    status: int
    body: str
    work_ids: tuple[str, ...]
    raw_id: str = ""
    digest: str = ""
    method: str = "GET"
    redacted: bool = False


def body_digest(body: bytes) -> str:
    """The digest of an upstream body as received: `sha256:` and 64 hex digits."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def call_id(
    source: str,
    method: str,
    url: str,
    at: datetime,
    work_ids: Sequence[str],
    digest: str,
    request: str = "",
) -> str:
    """The stable id of one answered call (a UUID derived from what identifies it; `request`
    tells apart calls whose kept URL is the same: another host, a POST body)."""
    name = "|".join((source, method, url, to_iso(at), ",".join(work_ids), digest, request))
    return str(uuid.uuid5(CALL_NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class CallRef:
    """An answered upstream call, as a state or an observation refers to it."""

    raw_id: str
    retrieved_at: datetime
    status: int
    digest: str
    method: str = "GET"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the `calls` items of an observation)."""
        return {
            "raw_id": self.raw_id,
            "retrieved_at": to_iso(self.retrieved_at),
            "status": self.status,
            "digest": self.digest,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallRef:
        """Inverse of to_dict."""
        return cls(
            str(data["raw_id"]),
            from_iso(data["retrieved_at"]),
            int(data["status"]),
            str(data["digest"]),
            str(data.get("method") or "GET"),
        )


def identified(raw: RawResponse) -> RawResponse:
    """`raw` with its digest and id (computed from the kept body and the call when a caller,
    such as a test or an older producer, left them out)."""
    if raw.raw_id and raw.digest:
        return raw
    digest = raw.digest or body_digest(raw.body.encode("utf-8"))
    raw_id = raw.raw_id or call_id(
        raw.source, raw.method, raw.url, raw.retrieved_at, raw.work_ids, digest
    )
    return replace(raw, raw_id=raw_id, digest=digest)


def ref_of(raw: RawResponse) -> CallRef:
    """The ref of a kept call."""
    return CallRef(raw.raw_id, raw.retrieved_at, raw.status, raw.digest, raw.method)


class Redactor:
    """Masks configured secret values (API keys, client secrets, customer ids) in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found = {s for s in secrets if len(s) >= MIN_SECRET}
        self._secrets = sorted(found, key=len, reverse=True)  # a longer one first

    def __call__(self, text: str) -> tuple[str, bool]:
        """`text` with every secret replaced by ***, and whether any was."""
        out = text
        for secret in self._secrets:
            if secret in out:
                out = out.replace(secret, MASK)
        return out, out != text


class CallArchive(Protocol):
    """The kept raw responses, looked up by the refs a state holds."""

    async def kept_calls(self, source: str, refs: Sequence[CallRef]) -> dict[str, RawResponse]:
        """The raw responses of `refs` still kept, by raw id (an expired one is absent)."""
        ...
