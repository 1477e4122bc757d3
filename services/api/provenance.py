"""`GET /api/v1/works/{id}/provenance?source=&body=`: the upstream calls behind a work's numbers.

Per source, the calls of the observation its current totals come from (a failed attempt since
leaves them standing, and says so in `status`/`error`): method, URL (credentials masked), HTTP
status, when it was answered, the SHA-256 digest of the body as received, the works the call
was about, and the body while it is kept (ALM_RAW_TTL_DAYS). After that the ref, time, status
and digest remain; URL and body are gone (`kept: false`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from services.api.lookup import find
from services.api.params import choice_param
from services.api.state import CALLS, CATALOG, RAW_TTL, STORE
from services.core.aggregation import SourceState
from services.core.catalog import Catalog
from services.core.provenance import CallRef, RawResponse
from services.core.timeutil import to_iso


async def work_provenance(request: web.Request) -> web.Response:
    """The upstream calls that produced each source's current numbers for one work."""
    catalog: Catalog = request.app[CATALOG]
    source = choice_param(request, "source", catalog)
    with_body = choice_param(request, "body", ("true", "false")) != "false"
    work = await find(request, request.match_info["id"])
    states = (await request.app[STORE].states_for([work.work_id]))[work.work_id]
    ttl = request.app[RAW_TTL]
    data = []
    for state in states:
        if source in (None, state.source):
            kept = await request.app[CALLS].kept_calls(state.source, state.calls)
            data.append(present_state(state, kept, ttl, with_body))
    return web.json_response(
        {"work_id": work.work_id, "raw_ttl_days": ttl.days, "data": data},
    )


def present_state(
    state: SourceState, kept: dict[str, RawResponse], ttl: timedelta, with_body: bool
) -> dict[str, Any]:
    """One source's numbers with the calls they come from."""
    return {
        "source": state.source,
        "metrics": dict(state.metrics),
        "retrieved_at": to_iso(state.retrieved_at) if state.retrieved_at else None,
        "status": state.status.value if state.status else None,
        "error": state.error,
        "last_attempt_at": to_iso(state.last_attempt_at) if state.last_attempt_at else None,
        "calls": [present_call(c, kept.get(c.raw_id), ttl, with_body) for c in state.calls],
    }


def present_call(
    ref: CallRef, raw: RawResponse | None, ttl: timedelta, with_body: bool
) -> dict[str, Any]:
    """One call: what the state keeps of it, and what the raw store still holds."""
    return {
        "id": ref.raw_id,
        "method": ref.method,
        "status": ref.status,
        "retrieved_at": to_iso(ref.retrieved_at),
        "digest": ref.digest,
        "kept": raw is not None,
        "expires_at": to_iso(ref.retrieved_at + ttl),
        "url": raw.url if raw else None,
        "works": list(raw.work_ids) if raw else None,
        "redacted": raw.redacted if raw else None,
        "body": raw.body if raw and with_body else None,
    }
