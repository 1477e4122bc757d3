"""Mendeley's API as the stub upstream answers it, from tests/fixtures/upstream/mendeley/
(the plug-in: services/fetchers/sources/mendeley.py)."""

from __future__ import annotations

from typing import Any

from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count


class MendeleyStub(StubUpstream):
    """Answers `/oauth/token` and `/catalog?doi=...&view=stats` like api.mendeley.com.

    Records are catalog answers (arrays of documents). `token` is the one valid Bearer token;
    set `expired = True` to make the next catalog call answer 401 once.
    """

    token = "stub-mendeley-token"
    expired = False
    tokens_issued = 0

    def record_doi(self, record: Any) -> str | None:
        """`identifiers.doi` of the first document."""
        return str(record[0]["identifiers"]["doi"]) if record else None

    def synthesize(self, doi: str) -> Any:
        """One document with a deterministic reader count."""
        readers = synthetic_count(doi, "mendeley")
        document = {
            "id": f"syn-{readers}",
            "title": f"Synthetic {doi}",
            "type": "journal",
            "year": 2020,
            "identifiers": {"doi": doi},
            "reader_count": readers,
            "link": f"https://www.mendeley.com/catalogue/syn-{readers}/",
        }
        return [document]

    def answer(self, request: StubRequest) -> StubAnswer:
        """A token for Basic credentials; catalog documents for a valid Bearer token."""
        if request.path == "/oauth/token":
            if not request.headers.get("authorization", "").startswith("Basic "):
                return StubAnswer.json({"error": "invalid_client"}, status=401)
            self.tokens_issued += 1
            self.expired = False
            return StubAnswer.json(
                {"access_token": self.token, "token_type": "bearer", "expires_in": 3600}
            )
        if request.path != "/catalog":
            return StubAnswer.json({"message": "Resource not found"}, status=404)
        if self.expired or request.headers.get("authorization") != f"Bearer {self.token}":
            self.expired = False
            body = {"message": "Could not access resource because: Token has expired"}
            return StubAnswer.json(body, status=401)
        doi = request.param("doi")
        error = self.error_for(doi)
        if error is not None:
            return error
        return StubAnswer.json(self.lookup(doi) or [])
