"""COUNTER R5 plug-in: Item Reports in R5.0 and R5.1 JSON, SUSHI Exceptions as outcomes."""

from __future__ import annotations

import pytest

from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import ConfigError, Found, PayloadError, UpstreamResponse
from services.fetchers.sources.counter import Counter
from tests.unit.sources_kit import fixture, kind, outcomes, record, response, work

SOURCE = Counter()
CONFIG = SourceConfig(
    api_key="k",
    extra={
        "customer_id": "C1",
        "requestor_id": "R1",
        "begin_date": "2026-08",
        "end_date": "2026-10",
    },
)
PCBI, PEERJ = work("10.1371/journal.pcbi.1000204"), work("10.7717/peerj.4375")


def test_item_report_request_carries_credentials_window_and_item() -> None:
    """`/reports/ir` with customer/requestor/api key, the window, metric types and item_id."""
    [call] = SOURCE.requests([PCBI], CONFIG)
    params = dict(call.params)
    assert call.path == "/reports/ir"
    assert (params["customer_id"], params["requestor_id"], params["api_key"]) == ("C1", "R1", "k")
    assert (params["begin_date"], params["end_date"], params["item_id"]) == (
        "2026-08",
        "2026-10",
        PCBI.doi,
    )
    assert params["metric_type"].split("|") == [
        "Total_Item_Investigations",
        "Total_Item_Requests",
        "Unique_Item_Investigations",
        "Unique_Item_Requests",
    ]


def test_missing_customer_or_window_is_a_config_error() -> None:
    """Without customer_id, or without end_date and a date to derive it from, the source cannot
    ask: ConfigError, and it says why."""
    with pytest.raises(ConfigError, match="customer_id"):
        SOURCE.requests([PCBI], SourceConfig())
    no_window = SourceConfig(extra={"customer_id": "c1"})
    assert SOURCE.missing_config(no_window) is None
    with pytest.raises(ConfigError, match="end_date"):
        SOURCE.requests([PCBI], no_window)
    assert SOURCE.missing_config(CONFIG) is None


@pytest.mark.parametrize(
    ("target", "totals", "october"),
    [
        (
            PCBI,
            {
                "investigations": 3637,
                "requests": 2507,
                "unique_investigations": 2980,
                "unique_requests": 2146,
            },
            1322,
        ),
        (
            PEERJ,
            {
                "investigations": 6497,
                "requests": 4191,
                "unique_investigations": 5353,
                "unique_requests": 3561,
            },
            2302,
        ),
    ],
    ids=["R5.0 Performance/Instance", "R5.1 nested Attribute_Performance"],
)
def test_both_json_releases_give_monthly_usage(
    target: WorkRef, totals: dict[str, int], october: int
) -> None:
    """R5.0 and R5.1 reports give the same metrics; months become YYYY-MM periods summed over
    attribute groups, Regular access only (R5.1's TDM row of 12 requests in September is text
    and data mining, not reading: left out)."""
    [call] = SOURCE.requests([target], CONFIG)
    got, _ = outcomes(SOURCE, call, response(200, record("counter", target.doi or "")))
    found = got[target.work_id]
    assert isinstance(found, Found) and found.metrics == totals
    periods = {(p.metric, p.period): p.count for p in found.periods}
    assert periods["investigations", "2026-10"] == october
    if target is PEERJ:
        assert periods["requests", "2026-09"] == 1288


def shaped(status: int, body_file: str) -> UpstreamResponse:
    """A recorded SUSHI error body."""
    return response(status, fixture("counter", body_file))


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (shaped(200, "errors/3030-bare.json"), "not_found"),
        (shaped(200, "errors/3000-list.json"), "failed:config"),
        (shaped(202, "errors/1011-queued.json"), "failed:http"),
        (shaped(403, "errors/2010-forbidden.json"), "failed:http"),
        (shaped(200, "errors/3031-header.json"), "failed:http"),
        (
            response(
                200,
                {
                    "Report_Header": {"Exceptions": [{"Code": 3030, "Message": "No Usage"}]},
                    "Report_Items": [],
                },
            ),
            "not_found",
        ),
        (
            response(
                200, {"Report_Header": {"Exceptions": [{"Code": 1020, "Message": "Too many"}]}}
            ),
            "failed:rate_limited",
        ),
        (
            response(
                200,
                {"Report_Header": {"Exceptions": [{"Code": 2020, "Message": "APIKey Invalid"}]}},
            ),
            "failed:config",
        ),
        (
            response(
                200,
                {
                    "Report_Header": {"Exceptions": [{"Code": 3050, "Message": "x"}]},
                    "Report_Items": [],
                },
            ),
            "not_found",
        ),
        (response(404, "Not Found"), "failed:config"),
    ],
)
def test_sushi_exceptions_decide_the_outcome(reply: UpstreamResponse, expected: str) -> None:
    """3030 is zero usage; 1011/3031 retry later; 1020 is a rate limit; 2xxx/3000 are config."""
    [call] = SOURCE.requests([PCBI], CONFIG)
    got, _ = outcomes(SOURCE, call, reply)
    assert kind(got[PCBI.work_id]) == expected


@pytest.mark.parametrize(
    "header",
    [{"Exceptions": True}, {"Exceptions": [{"Code": [None]}]}, {"Exceptions": [{"Code": "x"}]}],
)
def test_malformed_exceptions_are_a_payload_error(header: dict[str, object]) -> None:
    """Exceptions that are not a list of objects with a numeric Code are a malformed answer
    (found by the parser property test: they raised TypeError)."""
    [call] = SOURCE.requests([PCBI], CONFIG)
    with pytest.raises(PayloadError):
        SOURCE.parse(call, response(200, {"Report_Header": header, "Report_Items": []}))


def test_items_of_other_dois_are_ignored() -> None:
    """A server that ignores item_id returns other items: they never count for this work."""
    [call] = SOURCE.requests([PEERJ], CONFIG)
    got, _ = outcomes(SOURCE, call, response(200, record("counter", PCBI.doi or "")))
    assert kind(got[PEERJ.work_id]) == "not_found"
