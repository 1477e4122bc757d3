"""`alm audit`: a uniform sample (bounded memory) or named works re-fetched through the real
fetch path and compared with what is stored; the offline sample shows no difference, an edited
stored number is reported (stored, upstream now, age) and fails the threshold; the figures go
out as Prometheus gauges (textfile or Pushgateway)."""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import threading
from collections import Counter as Tally
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from services.adapters.sqlite import SqliteStore
from services.audit.report import age, table
from services.audit.runner import audit, named_works, sample_works
from services.cli.main import main
from services.core.aggregation import Aggregate, SourceState
from services.core.audit import Comparison, Reservoir, Verdict, compare
from services.core.events import FetchError, Observation, Status
from services.core.identifiers import parse_identifier
from services.core.works import Work
from services.embedded import refresh_until_idle
from services.fetchers.registry import SOURCES
from services.telemetry import audit as audit_metrics
from tests.unit.pipeline_kit import pipeline_kit

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PCBI = "10.1371/journal.pcbi.1000204"
PEERJ = "10.7717/peerj.4375"


def stored(metrics: dict[str, int], at: datetime | None = T0) -> SourceState:
    """The stored state of work w from crossref."""
    return SourceState("10.1/w", "crossref", metrics, at, at, Status.OK)


def fresh(metrics: dict[str, int], status: Status = Status.OK) -> Observation:
    """What a re-fetch of work w from crossref found."""
    error = FetchError("http", "HTTP 503 from upstream") if status is Status.ERROR else None
    return Observation("10.1/w", "crossref", T0 + timedelta(days=2), status, metrics, error=error)


@pytest.mark.parametrize(
    ("before", "now", "verdict", "differences"),
    [
        ({"citations": 5}, {"citations": 5}, Verdict.SAME, []),
        ({"citations": 5}, {"citations": 7}, Verdict.DIFFERS, [("citations", 5, 7)]),
        ({"a": 1}, {"a": 1, "b": 0}, Verdict.DIFFERS, [("b", None, 0)]),
        ({"a": 1, "b": 2}, {"a": 1}, Verdict.DIFFERS, [("b", 2, None)]),
    ],
)
def test_compare(
    before: dict[str, int], now: dict[str, int], verdict: Verdict, differences: list[Any]
) -> None:
    """Each metric whose stored value is not the upstream's now is a difference (absent on
    either side counts), with the stored value's age."""
    result = compare(stored(before), fresh(now))
    assert result.verdict is verdict
    assert [(d.metric, d.stored, d.upstream) for d in result.differences] == differences
    for d in result.differences:
        assert d.age_seconds(T0 + timedelta(days=3)) == 3 * 86400


def test_nothing_to_compare() -> None:
    """A failed re-fetch is unreachable (with its error); a state never refreshed
    successfully is not stored."""
    failed = compare(stored({"citations": 5}), fresh({}, Status.ERROR))
    assert failed == Comparison(
        "10.1/w", "crossref", Verdict.UNREACHABLE, error="http: HTTP 503 from upstream"
    )
    assert compare(stored({}, None), fresh({"citations": 1})).verdict is Verdict.NOT_STORED
    assert compare(None, fresh({"citations": 1})).verdict is Verdict.NOT_STORED


def test_the_reservoir_is_uniform_and_bounded() -> None:
    """Every item of the stream ends in the sample about size/n of the time, and the sample
    never holds more than `size` items."""
    rng = random.Random(11)
    counts: Tally[int] = Tally()
    trials, n, size = 4000, 50, 5
    for _ in range(trials):
        reservoir: Reservoir[int] = Reservoir(size, rng)
        for start in range(0, n, 7):  # pages, as the store gives them
            reservoir.offer(range(start, min(start + 7, n)))
            assert len(reservoir.items) <= size
        counts.update(reservoir.items)
    expected = trials * size / n  # 400
    assert set(counts) == set(range(n))
    assert all(abs(c - expected) < 0.25 * expected for c in counts.values()), counts


async def test_sampling_pages_through_every_work(tmp_path: Path) -> None:
    """A sample of 25 of 2,600 works: distinct registered works, drawn from every page."""
    store = SqliteStore(tmp_path / "s.sqlite")
    await store.migrate()
    ids = [f"10.5555/s.{i:05d}" for i in range(2600)]
    await store.register([Work.from_identifier(parse_identifier(i)) for i in ids])
    sample = await sample_works(store, 25, random.Random(5))
    await store.close()
    picked = [w.work_id for w in sample]
    assert len(set(picked)) == 25 and set(picked) <= set(ids)
    assert max(picked) > ids[2000]  # the last pages were read too
    assert picked == sorted(picked)


async def test_audit_of_fresh_numbers_then_of_an_edited_one(tmp_path: Path) -> None:
    """Right after a refresh the audit finds every stored number as the upstream answers it;
    an edited stored number is reported with both values; a failing upstream is unreachable,
    not a difference."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PCBI, PEERJ])
        await refresh_until_idle(kit.pipeline)
        sources = [SOURCES[n] for n in ("crossref", "openalex", "europepmc")]
        config = kit.pipeline.settings.source_config
        works, missing = await named_works(
            kit.store, [(i, parse_identifier(i)) for i in (PCBI, PEERJ, "10.1234/unknown")]
        )
        clean = await audit(works, sources, config, kit.store, kit.pipeline.caller, kit.clock)
        [state] = (await kit.store.states([(PCBI, "openalex")])).values()
        edited = replace(state, metrics={**state.metrics, "citations": 1})
        await kit.store.write_aggregates([Aggregate(edited, applied=True)])
        kit.fail("europepmc", PEERJ, 503, "down", "text/plain")
        kit.clock.advance(timedelta(hours=5))
        dirty = await audit(works, sources, config, kit.store, kit.pipeline.caller, kit.clock)
    assert missing == ["10.1234/unknown"]
    assert clean.differences() == [] and clean.share() == 0.0
    assert len(clean.checked_works()) == 2
    [diff] = dirty.differences()
    assert (diff.work_id, diff.source, diff.metric, diff.stored) == (
        PCBI,
        "openalex",
        "citations",
        1,
    )
    assert diff.upstream == state.metrics["citations"] and diff.upstream != 1
    assert age(diff.age_seconds(dirty.at)) == "5h 0m"
    assert dirty.share() == 0.5 and dirty.by_source()["europepmc"].unreachable == 1
    shown = table(dirty, 0.05)
    assert f"{PCBI}  openalex  citations  1" in shown and "FAIL" in shown


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(300)
def test_alm_audit_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alm audit --offline` after `alm run --offline --once`: zero differences (exit 0); a
    stored number edited in the file is reported and exits 1; the gauges are written to the
    textfile collector's file."""
    monkeypatch.setenv("ALM_GC_THRESHOLD", "python")
    monkeypatch.setenv("ALM_SOURCES", "crossref,openalex,datacite")
    prom = tmp_path / "alm_audit.prom"
    monkeypatch.setenv("ALM_AUDIT_TEXTFILE", str(prom))
    data = str(tmp_path / "data")
    port = str(_free_port())
    assert main(["--data-dir", data, "run", "--offline", "--once", "--port", port]) == 0
    capsys.readouterr()
    assert main(["--data-dir", data, "audit", "--offline", "--json", "--seed", "3"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["differing_works"] == 0 and clean["checked_works"] == 9
    assert clean["by_source"]["crossref"]["compared"] >= 8 and clean["passed"]
    assert "alm_audit_works_checked 9.0" in prom.read_text()
    with sqlite3.connect(Path(data) / "alm.sqlite") as conn:
        raw = conn.execute(
            "SELECT state FROM source_totals WHERE work_id=? AND source='crossref'", (PCBI,)
        ).fetchone()[0]
        state = json.loads(raw)
        state["metrics"]["citations"] += 100
        conn.execute(
            "UPDATE source_totals SET state=? WHERE work_id=? AND source='crossref'",
            (json.dumps(state), PCBI),
        )
    assert main(["--data-dir", data, "audit", "--offline", "--source", "crossref"]) == 1
    out = capsys.readouterr().out
    assert f"{PCBI}  crossref  citations  127     27" in out
    assert "1 differ (11.1%, threshold 5.0%): FAIL" in out
    text = prom.read_text()
    assert 'alm_audit_works_differing{source="crossref"} 1.0' in text
    assert "alm_audit_differing_share 0.111" in text and "alm_audit_last_run_timestamp" in text
    assert main(["--data-dir", data, "audit", "--offline", "--threshold", "0.2"]) == 0
    assert main(["--data-dir", data, "audit", "--source", "nope"]) == 2


async def test_gauges_are_pushed_to_a_pushgateway() -> None:
    """With ALM_AUDIT_PUSHGATEWAY the gauges are PUT to /metrics/job/alm_audit there."""
    got: list[tuple[str, str, bytes]] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.command, self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        audit_metrics.WORKS_CHECKED.set(42)
        url = f"http://127.0.0.1:{server.server_port}"
        assert await audit_metrics.export(None, url) == [url]
    finally:
        server.shutdown()
        server.server_close()
    [(method, path, body)] = got
    assert (method, path) == ("PUT", "/metrics/job/alm_audit")
    assert b"alm_audit_works_checked 42.0" in body
