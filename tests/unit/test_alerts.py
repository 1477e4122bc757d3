"""Data-quality checks as ALM ran them: the checks on one observation (total decreased, spike,
html/pdf ratio, citation milestone), the periodic ones over the fetchers' activity (slow
upstream, failed refreshes, silent source) and stale states, and their thresholds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from services.core.activity import (
    FetchWindow,
    StaleState,
    add_up,
    bucket_of,
    quantile,
    source_checks,
    stale_alerts,
)
from services.core.aggregation import SourceState
from services.core.alerts import Alert, AlertKind, AlertQuery, Thresholds, checks, key_after
from services.core.events import Status
from services.core.metrics import Group, MetricSpec, Slot
from services.fetchers.registry import SOURCES
from services.settings import Settings

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CITED = (MetricSpec("citations", Group.CITED),)
USAGE = (
    MetricSpec("views", Group.VIEWED, Slot.HTML),
    MetricSpec("downloads", Group.VIEWED, Slot.PDF),
    MetricSpec("citations", Group.CITED),
)
READERS = (MetricSpec("readers", Group.SAVED, Slot.READERS),)


def state(metrics: dict[str, int], at: datetime = T0, status: Status = Status.OK) -> SourceState:
    """A state of work w from source s, refreshed at `at`."""
    return SourceState("10.1/w", "s", metrics, at, at, status)


def kinds(alerts: list[Alert]) -> list[str]:
    """The kinds of `alerts`, in order."""
    return [a.kind.value for a in alerts]


@pytest.mark.parametrize(
    ("before", "after", "days", "specs", "expected"),
    [
        ({"citations": 30}, {"citations": 28}, 1, CITED, ["total_decreased"]),
        ({"citations": 30}, {"citations": 30}, 1, CITED, []),
        ({"citations": 60}, {"citations": 561}, 1, CITED, ["spike"]),
        ({"citations": 60}, {"citations": 560}, 1, CITED, []),  # 500 a day is not more than 500
        ({"citations": 60}, {"citations": 1550}, 3, CITED, []),  # 497 a day
        ({"citations": 60}, {"citations": 1700}, 0.1, CITED, ["spike"]),  # under a day: a day
        ({"citations": 49}, {"citations": 50}, 1, CITED, ["milestone"]),
        ({"citations": 50}, {"citations": 60}, 1, CITED, []),  # reached before
        ({"readers": 10}, {"readers": 55}, 1, READERS, ["milestone"]),  # saved counts too
        (
            {"views": 100, "downloads": 4},
            {"views": 300, "downloads": 5},
            1,
            USAGE,
            ["html_pdf_ratio"],
        ),
        ({"views": 300, "downloads": 5}, {"views": 400, "downloads": 6}, 1, USAGE, []),  # was above
        ({"views": 40, "downloads": 0}, {"views": 90, "downloads": 0}, 1, USAGE, []),  # no pdf
        ({"x": 5, "y": 5}, {"x": 5, "y": 1}, 1, (), ["total_decreased"]),  # specs unknown
    ],
)
def test_checks_on_one_observation(
    before: dict[str, int],
    after: dict[str, int],
    days: float,
    specs: tuple[MetricSpec, ...],
    expected: list[str],
) -> None:
    """Each check fires exactly when ALM's rule says so, with its default threshold."""
    found = checks(state(before), state(after, T0 + timedelta(days=days)), specs)
    assert kinds(found) == expected
    for alert in found:
        assert (alert.source, alert.work_id, alert.at) == ("s", "10.1/w", T0 + timedelta(days=days))


def test_a_decrease_names_the_metrics_that_fell() -> None:
    """The details carry the totals and each metric that went down."""
    before = state({"views": 100, "downloads": 50, "citations": 5})
    after = state({"views": 90, "downloads": 55, "citations": 4}, T0 + timedelta(days=1))
    [alert] = checks(before, after, USAGE)
    assert alert.message == "total decreased from 155 to 149"
    assert alert.details == {
        "previous": 155,
        "current": 149,
        "metrics": {"citations": [5, 4], "views": [100, 90]},
    }


def test_a_first_observation_raises_only_the_ratio() -> None:
    """A work seen for the first time has no previous total (no decrease, spike or
    milestone), but its html/pdf ratio is a condition of its own."""
    assert checks(None, state({"citations": 900}), CITED) == []
    never = state({}, status=Status.ERROR)
    never = SourceState(never.work_id, never.source, {}, None, T0, Status.ERROR)
    assert checks(never, state({"citations": 900}), CITED) == []
    assert kinds(checks(None, state({"views": 600, "downloads": 2}), USAGE)) == ["html_pdf_ratio"]


def test_errors_raise_nothing_and_thresholds_apply() -> None:
    """A failed attempt is not checked; configured thresholds replace ALM's defaults."""
    failed = SourceState("10.1/w", "s", {"citations": 1}, T0, T0, Status.ERROR, "boom")
    assert checks(state({"citations": 90}), failed, CITED) == []
    limits = Thresholds(spike_per_day=10, milestone=20)
    after = state({"citations": 25}, T0 + timedelta(days=1))
    assert kinds(checks(state({"citations": 10}), after, CITED, limits)) == ["spike", "milestone"]


def test_thresholds_from_the_environment() -> None:
    """ALM_CHECK_* set the limits; a bad value names its variable."""
    env = {
        "ALM_CHECK_SPIKE_PER_DAY": "100",
        "ALM_CHECK_HTML_PDF_RATIO": "20",
        "ALM_CHECK_STALE_DAYS": "30",
        "ALM_CHECK_SLOW_P95_SECONDS": "10",
        "ALM_CHECK_FAILURE_SHARE": "0.5",
    }
    limits = Settings.from_env(env).checks
    assert (limits.spike_per_day, limits.html_pdf_ratio, limits.stale_days) == (100, 20.0, 30)
    assert (limits.slow_p95_seconds, limits.failure_share, limits.milestone) == (10.0, 0.5, 50)
    with pytest.raises(ValueError, match="ALM_CHECK_FAILURE_SHARE"):
        Settings.from_env({"ALM_CHECK_FAILURE_SHARE": "2"})
    with pytest.raises(ValueError, match="ALM_RAW_TTL_DAYS"):
        Settings.from_env({"ALM_RAW_TTL_DAYS": "a week"})


# -- periodic checks ------------------------------------------------------------------------


def window(
    source: str,
    hours_ago: float,
    latencies: list[float] = (),  # type: ignore[assignment]
    ok: int = 0,
    failed: int = 0,
    instance: str = "i1",
) -> FetchWindow:
    """A window of `source` `hours_ago` before T0 with these calls and refreshes."""
    from services.core.activity import hour_of

    w = FetchWindow(source, hour_of(T0 - timedelta(hours=hours_ago)), instance)
    w = w.with_calls(latencies, len(latencies), sum(math.isinf(x) for x in latencies))
    return w.with_refreshes(ok, failed, T0 - timedelta(hours=hours_ago) if ok else None)


def test_latency_buckets_and_quantiles() -> None:
    """Bucketed latencies give Prometheus-style quantiles; above the last bound is inf."""
    assert [bucket_of(x) for x in (0.05, 0.1, 0.3, 29.0, 30.0, 31.0, math.inf)] == [
        0,
        0,
        2,
        8,
        8,
        9,
        9,
    ]
    counts = [0] * 10
    counts[3] = 100  # 100 calls between 0.5 s and 1 s
    assert quantile(counts, 0.5) == pytest.approx(0.75)
    counts[9] = 6  # 6 of 106 calls timed out: the p95 is past 30 s
    assert quantile(counts, 0.95) == math.inf
    assert quantile([0] * 10, 0.95) is None


def test_slow_upstream_and_failed_refreshes() -> None:
    """A source whose p95 over the lookback is over the threshold is slow; one whose share of
    failed refreshes is over the threshold fails, each with enough calls or refreshes to tell."""
    windows = [
        window("slow", 2, [1.0] * 90 + [math.inf] * 10, ok=50),
        window("fine", 2, [0.2] * 100, ok=50),
        window("failing", 3, [0.2] * 30, ok=20, failed=10),
        window("failing", 2, [0.2] * 5, ok=0, failed=5, instance="i2"),
        window("few", 2, [math.inf] * 5, ok=1, failed=5),  # under min_calls and min_refreshes
    ]
    found = source_checks(windows, T0, ["slow", "fine", "failing", "few"])
    assert sorted((a.kind.value, a.source) for a in found) == [
        ("failed_refreshes", "failing"),
        ("slow_upstream", "slow"),
    ]
    failing = next(a for a in found if a.source == "failing")
    assert failing.details == {"failed": 15, "refreshes": 35, "share": 0.4286}
    strict = Thresholds(slow_p95_seconds=0.1)
    assert {a.source for a in source_checks(windows, T0, ["fine"], limits=strict)} == {"fine"}


def test_a_source_is_silent_only_while_alm_was_running() -> None:
    """No successful refresh in 24 h is silence when windows older than 24 h show ALM ran;
    a paused source, or a fresh install with nothing older, is not silent."""
    windows = [window("crossref", 30, [0.2], ok=1), window("openalex", 1, [0.2], ok=3)]
    found = source_checks(windows, T0, ["crossref", "openalex", "wikidata"])
    assert sorted((a.kind.value, a.source) for a in found) == [
        ("source_silent", "crossref"),
        ("source_silent", "wikidata"),
    ]
    assert source_checks(windows, T0, ["crossref"], paused=["crossref"]) == []
    assert source_checks(windows[1:], T0, ["crossref", "openalex"]) == []


def test_windows_add_up_over_instances_and_hours() -> None:
    """Windows of several instances and hours sum per source."""
    total = add_up([window("a", 1, [0.2], ok=2), window("a", 2, [0.3], failed=1, instance="x")])
    assert (total["a"].calls, total["a"].refreshes, total["a"].failed) == (2, 3, 1)
    assert total["a"].last_ok == T0 - timedelta(hours=1)


def test_stale_states_become_not_updated_alerts() -> None:
    """Each stale (work, source) found is one alert, dated now, naming its last refresh."""
    rows = [StaleState("10.1/a", "crossref", T0 - timedelta(days=45))]
    [alert] = stale_alerts(rows, {"crossref": 7}, T0, Thresholds())
    assert (alert.kind, alert.source, alert.work_id) == (
        AlertKind.NOT_UPDATED,
        "crossref",
        "10.1/a",
    )
    assert alert.message == "not updated for 45 days (last 2026-10-11)"
    assert alert.details["stale_in_source"] == 7


def test_alert_identity_and_listing_order() -> None:
    """An alert is one per (day, kind, source, work); listings go newest day first, then by
    kind, source and work; a query filters by kind, source and time."""
    a = Alert(AlertKind.SPIKE, T0, "x", "crossref", "10.1/a")
    b = Alert(AlertKind.SPIKE, T0 + timedelta(hours=3), "y", "crossref", "10.1/a")
    assert a.key == b.key and a.severity.value == "warning"
    assert Alert(AlertKind.MILESTONE, T0, "m").severity.value == "info"
    assert key_after((T0.date(), "spike", "", ""), None)
    assert key_after((T0.date() - timedelta(days=1), "a", "", ""), a.key)
    assert key_after((T0.date(), "total_decreased", "", ""), a.key)
    assert not key_after((T0.date(), "milestone", "z", "z"), a.key)
    query = AlertQuery(T0 - timedelta(days=1), AlertKind.SPIKE, "crossref")
    assert query.admits(a) and not query.admits(Alert(AlertKind.SPIKE, T0, "x", "openalex"))
    assert not AlertQuery(T0 + timedelta(hours=1)).admits(a)


def test_registry_sources_with_html_and_pdf_are_checked_for_their_ratio() -> None:
    """The usage sources whose specs map html and pdf slots (DataCite) get the ratio check."""
    datacite = SOURCES["datacite"].metrics
    after = state({"views": 5100, "downloads": 100, "citations": 0})
    assert kinds(checks(None, after, datacite)) == ["html_pdf_ratio"]
