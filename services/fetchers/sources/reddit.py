"""Reddit: posts that mention the DOI, with their scores and comment counts.

With OAuth app credentials (client credentials grant, token from www.reddit.com) the search goes
to `oauth.reddit.com/search`; without, to the anonymous `www.reddit.com/search.json` (much
lower limits). Listings page with `after`; a page's totals carry over in the request context.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from services.core.events import SourceEvent
from services.core.metrics import Group, MetricSpec, Slot
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.auth import basic_auth, client_credentials
from services.fetchers.base import (
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    as_object,
    expect,
    json_payload,
)
from services.fetchers.csl import csl_item

WWW = "https://www.reddit.com"
MAX_PAGES = 10  # listings stop near 1,000 items anyway
TOTALS = ("posts", "comments", "likes")


class Reddit(Source):
    """Reddit: posts linking or naming the work; upvotes and comments."""

    name = "reddit"
    display_name = "Reddit"
    group = Group.DISCUSSED
    metrics = (
        MetricSpec("comments", Group.DISCUSSED, Slot.COMMENTS, description="sum of num_comments"),
        MetricSpec("likes", Group.DISCUSSED, Slot.LIKES, description="sum of post scores"),
        MetricSpec("posts", Group.DISCUSSED, in_total=False, description="posts found"),
    )
    base_url = "https://oauth.reddit.com"
    batch_size = 1
    limits = Limits(requests_per_second=1.0, concurrency=1)  # ~100 queries/min per OAuth client
    auth = "OAuth2 client credentials (extra client_id/client_secret or api_key id:secret)"
    description = "Reddit posts mentioning the DOI, their upvotes and comments."

    def auth_request(self, config: SourceConfig) -> UpstreamRequest | None:
        """The client-credentials token call, if credentials are configured."""
        creds = client_credentials(config)
        if creds is None:
            return None
        headers = (("Authorization", basic_auth(*creds)),)
        form = (("grant_type", "client_credentials"),)
        return UpstreamRequest(
            "/api/v1/access_token",
            (),
            method="POST",
            headers=headers,
            form=form,
            host=WWW,
            step="token",
        )

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """A search for `"DOI"` per work (OAuth host with credentials, else anonymous)."""
        oauth = client_credentials(config) is not None
        return [_search(w, oauth, None, {}) for w in works]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """Events per post; running totals; `after` asks for the next page."""
        work = request.works[0]
        payload = json_payload(response)
        expect(isinstance(payload, dict) and payload.get("kind") == "Listing", "not a Listing")
        data = payload.get("data")
        expect(isinstance(data, dict) and isinstance(data.get("children"), list), "no children")
        totals = {k: int(request.context.get(k, "0")) for k in TOTALS}
        events = []
        for child in data["children"]:
            post = as_object(as_object(child, "a listing child").get("data"), "a child's data")
            expect("name" in post, "a post without name")
            totals["posts"] += 1
            totals["comments"] += as_count(post.get("num_comments", 0), "num_comments")
            totals["likes"] += max(0, int(post.get("score") or 0))  # scores can be negative
            events.append(_event(post))
        after = data.get("after")
        page = int(request.context.get("page", "1"))
        more: tuple[UpstreamRequest, ...] = ()
        if isinstance(after, str) and after and events and page < MAX_PAGES:
            oauth = request.host is None
            more = (_search(work, oauth, after, {**totals, "page": page + 1}),)
        if not totals["posts"] and not more:
            return ParseResult({work.work_id: NotFound("no posts")})
        url = f"{WWW}/search/?q=%22{quote(work.doi or '')}%22"
        found = Found(totals, events=tuple(events), events_url=url)
        return ParseResult({work.work_id: found}, more)


def _search(work: WorkRef, oauth: bool, after: str | None, ctx: dict[str, int]) -> UpstreamRequest:
    params = [("q", f'"{work.doi}"'), ("limit", "100"), ("sort", "new"), ("raw_json", "1")]
    if after:
        params.append(("after", after))
    context = {k: str(v) for k, v in ctx.items()}
    if oauth:
        return UpstreamRequest("/search", (work,), tuple(params), context=context)
    return UpstreamRequest("/search.json", (work,), tuple(params), host=WWW, context=context)


def _event(post: dict[str, Any]) -> SourceEvent:
    url = f"{WWW}{post.get('permalink', '')}"
    created = post.get("created_utc")
    when = None
    if isinstance(created, int | float):
        when = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    author = [str(post["author"])] if post.get("author") else []
    sub = post.get("subreddit")
    csl = csl_item(
        title=post.get("title"),
        authors=author,
        container=f"r/{sub}" if sub else None,
        issued=when,
        url=url,
        kind="post",
    )
    return SourceEvent(f"reddit:{post['name']}", when, url, csl)
