"""Pausing a source that keeps failing (pure rules) and in the running pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.core.events import FetchError
from services.core.health import ErrorWindow
from services.embedded import refresh_until_idle
from tests.unit.pipeline_kit import pipeline_kit

T0 = datetime(2026, 11, 25, tzinfo=UTC)
TIMEOUT = FetchError("timeout", "no answer", retryable=True)


def test_more_than_limit_errors_in_window_pauses() -> None:
    """The 201st failure within 24 h gives a reason naming the count and the last error."""
    window = ErrorWindow(limit=200)
    reasons = [window.record(TIMEOUT, T0 + timedelta(minutes=i)) for i in range(201)]
    assert reasons[:200] == [None] * 200
    assert reasons[200] is not None
    assert "201 failed refreshes in 24 h" in reasons[200]
    assert "timeout: no answer" in reasons[200]


def test_old_errors_leave_the_window() -> None:
    """Failures older than the window do not count towards a pause."""
    window = ErrorWindow(limit=3, window=timedelta(hours=1))
    for i in range(3):
        assert window.record(TIMEOUT, T0 + timedelta(minutes=i)) is None
    assert window.record(TIMEOUT, T0 + timedelta(hours=2)) is None
    assert len(window.times) == 1


@pytest.mark.parametrize(
    ("status", "pauses"), [(401, True), (403, True), (404, False), (500, False)]
)
def test_refused_credentials_pause_at_once(status: int, pauses: bool) -> None:
    """A 401/403 (not retryable) pauses on the first failure; other statuses do not."""
    error = FetchError("http", f"HTTP {status}", retryable=status >= 500, http_status=status)
    reason = ErrorWindow().record(error, T0)
    assert (reason is not None) is pauses


async def test_refused_credentials_pause_source_until_resumed(tmp_path: Path) -> None:
    """A 401 pauses the source with a visible reason; nothing more is requested from it until
    it is resumed; then the due works are fetched."""
    doi = "10.7717/peerj.4375"
    async with pipeline_kit(tmp_path, sources=("crossref",)) as kit:
        kit.fail("crossref", doi, 401, '{"message": "bad token"}', "application/json")
        await kit.register([doi, "10.1038/s41586-023-06139-9"])
        await refresh_until_idle(kit.pipeline)
        status = (await kit.store.source_statuses())["crossref"]
        assert status.paused
        assert status.reason is not None and "credentials refused (HTTP 401)" in status.reason
        calls = kit.hits()["crossref"]

        kit.heal("crossref", doi)
        kit.clock.advance(timedelta(days=40))
        quiet = await refresh_until_idle(kit.pipeline)
        assert quiet.requested == 0
        assert kit.hits()["crossref"] == calls

        from services.core.control import set_paused

        await kit.store.set_source_status(set_paused("crossref", False, None, kit.clock()))
        kit.clock.advance(timedelta(minutes=1))  # fetchers re-read their status every few seconds
        resumed = await refresh_until_idle(kit.pipeline)
        assert resumed.refreshed == 2
        assert resumed.errors == 0


async def test_a_failed_batch_call_counts_once_towards_pausing(tmp_path: Path) -> None:
    """A batch source's failed call fails each of its works, but it is one failed call: the
    window counts calls (ALM paused a source after 200 failed calls), so a short upstream
    outage does not pause a batch source 50 times faster than a one-work-a-call one."""
    from services.core.events import FetchError

    class Failing:
        calls = 0

        async def call(self, source: object, request: object) -> FetchError:
            self.calls += 1
            return FetchError("http", f"HTTP 503 from upstream (call {self.calls})", True, 503)

    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        await kit.register([f"10.5555/w.{n}" for n in range(120)])
        fetcher = kit.pipeline.fetchers[0]
        failing = Failing()
        fetcher.caller = failing
        await kit.pipeline.scheduler.step(0)
        await kit.pipeline.scheduler.tick()
        assert await fetcher.step(0) == 120
        assert failing.calls == 3  # 50 works a call
        assert len(fetcher.failures.times) == 3


def test_the_failure_limit_comes_from_the_environment_and_zero_never_pauses() -> None:
    from services.core.events import FetchError
    from services.settings import Settings

    assert Settings.from_env({}).source_failure_limit == 200
    assert Settings.from_env({"ALM_SOURCE_FAILURE_LIMIT": "0"}).source_failure_limit == 0
    window = ErrorWindow(limit=0)
    error = FetchError("timeout", "no answer")
    assert all(window.record(error, T0) is None for _ in range(1000))
    refused = FetchError("http", "HTTP 401", retryable=False, http_status=401)
    assert window.record(refused, T0) is not None  # refused credentials still pause
