"""Mendeley plug-in: client-credentials token call, catalog arrays, readers in `saved`."""

from __future__ import annotations

import base64

import pytest

from services.core.metrics import Group, Slot
from services.core.sources import SourceConfig
from services.fetchers.base import ConfigError, Found
from services.fetchers.sources.mendeley import Mendeley
from tests.unit.sources_kit import kind, outcomes, record, response, work

SOURCE = Mendeley()
PCBI = work("10.1371/journal.pcbi.1000204")


@pytest.mark.parametrize(
    "config",
    [
        SourceConfig(api_key="cid:sec"),
        SourceConfig(extra={"client_id": "cid", "client_secret": "sec"}),
    ],
)
def test_token_call_uses_basic_auth_and_the_client_credentials_grant(config: SourceConfig) -> None:
    """POST /oauth/token, grant_type=client_credentials, scope=all, HTTP Basic id:secret."""
    auth = SOURCE.auth_request(config)
    assert auth is not None and (auth.method, auth.path) == ("POST", "/oauth/token")
    assert dict(auth.form) == {"grant_type": "client_credentials", "scope": "all"}
    assert dict(auth.headers)["Authorization"] == "Basic " + base64.b64encode(b"cid:sec").decode()


def test_without_credentials_the_source_reports_what_is_missing() -> None:
    """No client id/secret: missing_config says so and the auth step raises ConfigError."""
    assert "client credentials" in (SOURCE.missing_config(SourceConfig(api_key="no-colon")) or "")
    with pytest.raises(ConfigError):
        SOURCE.auth_request(SourceConfig())


def test_token_response_is_parsed_with_its_lifetime() -> None:
    """The OAuth2 token answer gives the Bearer token and its expiry."""
    token = SOURCE.parse_auth(
        response(200, {"access_token": "abc", "token_type": "bearer", "expires_in": 3600})
    )
    assert (token.value, token.expires_in, token.header_value()) == ("abc", 3600.0, "Bearer abc")


def test_catalog_document_with_the_doi_gives_readers() -> None:
    """reader_count of the document whose DOI matches (case-insensitively) is the count."""
    [call] = SOURCE.requests([PCBI], SourceConfig(api_key="cid:sec"))
    assert dict(call.params) == {"doi": PCBI.doi, "view": "stats"}
    got, _ = outcomes(SOURCE, call, response(200, record("mendeley", PCBI.doi or "")))
    found = got[PCBI.work_id]
    assert isinstance(found, Found) and found.metrics == {"readers": 1204}
    assert [(m.group, m.slot) for m in SOURCE.metrics] == [(Group.SAVED, Slot.READERS)]


def test_empty_array_is_not_found() -> None:
    """An empty catalog array means Mendeley does not know the DOI."""
    [call] = SOURCE.requests([PCBI], SourceConfig(api_key="cid:sec"))
    assert kind(outcomes(SOURCE, call, response(200, []))[0][PCBI.work_id]) == "not_found"
