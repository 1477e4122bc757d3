"""Reddit's API as the stub upstream answers it, from tests/fixtures/upstream/reddit/
(the plug-in: services/fetchers/sources/reddit.py)."""

from __future__ import annotations

from typing import Any

from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count


class RedditStub(StubUpstream):
    """Answers the token call, `/search` (Bearer) and `/www.reddit.com/search.json`.

    Records are `records/<doi with / as _>.json`: a search Listing holding every matching post.
    """

    token = "stub-reddit-token"
    page_size = 100

    def record_doi(self, record: Any) -> str | None:
        """Listings do not name the DOI: keyed by file name."""
        return None

    def synthesize(self, doi: str) -> Any:
        """Zero or one synthetic post."""
        n = synthetic_count(doi, "reddit", 10)
        post = {
            "id": f"s{n}",
            "name": f"t3_s{n}",
            "subreddit": "science",
            "title": doi,
            "permalink": f"/r/science/comments/s{n}/x/",
            "created_utc": 1.7e9,
            "score": n * 7,
            "num_comments": n,
            "author": "someone",
        }
        return _listing([post] if n < 2 else [], None)

    def answer(self, request: StubRequest) -> StubAnswer:
        """Token, or a page of the Listing for `q="DOI"`."""
        if request.path == "/www.reddit.com/api/v1/access_token":
            if not request.headers.get("authorization", "").startswith("Basic "):
                return StubAnswer.json({"message": "Unauthorized", "error": 401}, status=401)
            token = {"access_token": self.token, "token_type": "bearer", "expires_in": 86400}
            return StubAnswer.json({**token, "scope": "*"})
        oauth = request.path == "/search"
        if oauth and request.headers.get("authorization") != f"Bearer {self.token}":
            return StubAnswer.json({"message": "Unauthorized", "error": 401}, status=401)
        if not oauth and request.path != "/www.reddit.com/search.json":
            return StubAnswer.text("<html><body>page not found</body></html>", 404, "text/html")
        doi = request.param("q").strip('"')
        error = self.error_for(doi)
        if error is not None:
            return error
        posts = [c["data"] for c in (self.lookup(doi) or _listing([], None))["data"]["children"]]
        start = int(request.param("after", "t3_0")[3:] or 0) if request.param("after") else 0
        page = posts[start : start + self.page_size]
        after = f"t3_{start + len(page)}" if start + len(page) < len(posts) else None
        return StubAnswer.json(_listing(page, after))


def _listing(posts: list[dict[str, Any]], after: str | None) -> dict[str, Any]:
    children = [{"kind": "t3", "data": p} for p in posts]
    data = {"after": after, "dist": len(posts), "before": None, "children": children}
    return {"kind": "Listing", "data": data}
