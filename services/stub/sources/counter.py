"""COUNTER's API as the stub upstream answers it, from tests/fixtures/upstream/counter/
(the plug-in: services/fetchers/sources/counter.py)."""

from __future__ import annotations

from typing import Any

from services.fetchers.sources.counter import item_doi
from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count


class CounterStub(StubUpstream):
    """Answers `/reports/ir` like a SUSHI server; records are recorded Item Reports (R5.0 or
    R5.1) keyed by the DOI of their first item; unknown items get the 3030 report."""

    def record_doi(self, record: Any) -> str | None:
        """The DOI of the first (nested) item of a recorded report."""
        items = record.get("Report_Items") or [{}]
        first = (items[0].get("Items") or [items[0]])[0]
        return item_doi(first.get("Item_ID")) or None

    def synthesize(self, doi: str) -> Any:
        """An R5.1 report with two months of usage."""
        views = synthetic_count(doi, "counter", 400)
        months = {"2025-01": views // 2 + 1, "2025-02": views - views // 2 + 1}
        perf = {"Total_Item_Investigations": months, "Total_Item_Requests": {"2025-01": 1}}
        groups = [{"Data_Type": "Article", "Performance": perf}]
        item = {"Item": doi, "Item_ID": {"DOI": doi}, "Attribute_Performance": groups}
        return {"Report_Header": {"Release": "5.1", "Report_ID": "IR"}, "Report_Items": [item]}

    def answer(self, request: StubRequest) -> StubAnswer:
        """The item's report, 3030 for an item without usage, 1030 without customer_id."""
        if request.path != "/reports/ir":
            return StubAnswer.text("Not Found", 404)
        if not request.param("customer_id"):
            missing = {
                "Code": 1030,
                "Message": "Insufficient Information to Process Request",
                "Data": "customer_id is missing",
            }
            return StubAnswer.json(missing, status=400)
        doi = request.param("item_id")
        error = self.error_for(doi)
        if error is not None:
            return error
        record = self.lookup(doi)
        if record is not None:
            return StubAnswer.json(record)
        none = {"Code": 3030, "Message": "No Usage Available for Requested Dates"}
        header = {"Release": "5.1", "Report_ID": "IR", "Exceptions": [none]}
        return StubAnswer.json({"Report_Header": header, "Report_Items": []})
