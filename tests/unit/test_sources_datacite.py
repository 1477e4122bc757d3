"""DataCite plug-in: usage and citations in different groups, histories, 404 for other DOIs."""

from __future__ import annotations

import pytest

from services.core.events import PeriodCount
from services.core.metrics import Group, Slot
from services.core.sources import SourceConfig
from services.fetchers.base import Found
from services.fetchers.sources.datacite import DataCite
from tests.unit.sources_kit import kind, outcomes, record, response, work

SOURCE = DataCite()
ZENODO = work("10.5281/zenodo.1234567")


def test_metrics_are_declared_in_their_groups_and_slots() -> None:
    """Views are html usage, downloads pdf usage (viewed); citations count in `cited`."""
    assert [(m.name, m.group, m.slot) for m in SOURCE.metrics] == [
        ("views", Group.VIEWED, Slot.HTML),
        ("downloads", Group.VIEWED, Slot.PDF),
        ("citations", Group.CITED, None),
    ]


def test_recorded_dataset_gives_counts_and_histories() -> None:
    """Totals from viewCount/downloadCount/citationCount; yearMonth and string years as periods."""
    [request] = SOURCE.requests([ZENODO], SourceConfig())
    assert request.path == "/dois/10.5281/zenodo.1234567"
    got, _ = outcomes(SOURCE, request, response(200, record("datacite", ZENODO.doi or "")))
    found = got[ZENODO.work_id]
    assert isinstance(found, Found)
    assert found.metrics == {"views": 17, "downloads": 5, "citations": 2}
    assert found.periods == (
        PeriodCount("views", "2021-05", 3),
        PeriodCount("views", "2022-01", 14),
        PeriodCount("downloads", "2022-01", 5),
        PeriodCount("citations", "2022", 1),
        PeriodCount("citations", "2024", 1),
    )
    assert found.events_url == "https://commons.datacite.org/doi.org/10.5281/zenodo.1234567"
    assert found.meta["title"] == "Replication data for: open citation counts"


def test_crossref_doi_is_not_found() -> None:
    """A Crossref DOI answers the JSON:API 404: no DataCite record, zero."""
    target = work("10.7717/peerj.4375")
    [request] = SOURCE.requests([target], SourceConfig())
    body = {
        "errors": [{"status": "404", "title": "The resource you are looking for doesn't exist."}]
    }
    got, _ = outcomes(SOURCE, request, response(404, body))
    assert kind(got[target.work_id]) == "not_found"


@pytest.mark.parametrize(
    "history",
    [
        {"citationsOverTime": [{"total": 1}]},  # no year
        {"viewsOverTime": [{"yearMonth": "May 2021", "total": 3}]},
        {"downloadsOverTime": {"2022-01": 5}},
    ],
)
def test_malformed_history_fails(history: dict[str, object]) -> None:
    """A history row without a usable period fails the call instead of misfiling counts."""
    [request] = SOURCE.requests([ZENODO], SourceConfig())
    body = record("datacite", ZENODO.doi or "")
    body["data"]["attributes"].update(history)
    got, _ = outcomes(SOURCE, request, response(200, body))
    assert kind(got[ZENODO.work_id]) == "failed:parse"
