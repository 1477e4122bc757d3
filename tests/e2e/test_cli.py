"""The `alm` command in the embedded mode: import with per-line errors, run offline twice."""

from __future__ import annotations

import codecs
import fcntl
import socket
import sqlite3
from pathlib import Path

import pytest

from services.bootstrap import selected_sources
from services.cli.main import main
from services.core.identifiers import parse_identifier
from services.core.works import WorkRef
from services.settings import SAMPLE_WORKS, Settings
from tests.intake_kit import take_intake, waiting


@pytest.fixture(autouse=True)
def _collector_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """`alm run` would tune this test process's garbage collector (gctune.py)."""
    monkeypatch.setenv("ALM_GC_THRESHOLD", "python")


SAMPLE = [
    parse_identifier(line).work_id
    for line in SAMPLE_WORKS.read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _works(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "alm.sqlite") as conn:
        return [r[0] for r in conn.execute("SELECT work_id FROM works ORDER BY work_id")]


@pytest.mark.parametrize(
    ("name", "bad_line", "text"),
    [
        ("ids.txt", 2, "10.1234/A\nnot a doi\n\nhttps://doi.org/10.1234/a\npmid:42\n"),
        (
            "ids.csv",
            3,
            "title,doi\nx,10.1234/A\ny,not a doi\n\nz,https://doi.org/10.1234/a\nw,pmid:42\n",
        ),
        (
            "ids.jsonl",
            2,
            '{"doi": "10.1234/A"}\n{"doi": "not a doi"}\n\n'
            '{"id": "10.1234/a"}\n{"id": "pmid:42"}\n',
        ),
    ],
)
def test_import_reports_bad_lines_and_keeps_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, bad_line: int, text: str
) -> None:
    """Each invalid line is reported with its number and value; valid ones (deduplicated) stay."""
    path = tmp_path / name
    path.write_text(text)
    code = main(["--data-dir", str(tmp_path / "data"), "works", "import", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{name} line {bad_line}: 'not a doi'" in out
    assert "works: 2 registered, 1 already known, 1 invalid" in out
    assert _works(tmp_path / "data") == ["10.1234/a", "pmid:42"]


def test_add_then_run_offline_twice_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm run --offline --once` refreshes the sample works; a second run reuses the data."""
    data = str(tmp_path / "data")
    assert main(["--data-dir", data, "works", "add", "10.7717/PEERJ.4375"]) == 0
    assert (
        main(["--data-dir", data, "run", "--offline", "--once", "--port", str(_free_port())]) == 0
    )
    first = capsys.readouterr().out
    assert "works: 8 registered, 1 already known, 0 invalid" in first
    fetchable = sum(
        source.fetchable(WorkRef(w, doi=w))
        for source in selected_sources(Settings())
        for w in SAMPLE
    )
    assert fetchable >= 9 * 3
    assert f"refreshes: {fetchable} requested, {fetchable} done, 0 errors" in first
    assert (
        main(["--data-dir", data, "run", "--offline", "--once", "--port", str(_free_port())]) == 0
    )
    second = capsys.readouterr().out
    assert "works: 0 registered, 9 already known, 0 invalid" in second
    assert "refreshes: 0 requested" in second
    assert len(_works(tmp_path / "data")) == 9


def test_services_refuse_the_in_process_bus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A distributed service started without Kafka says how to configure it."""
    assert main(["--data-dir", str(tmp_path), "fetcher", "--source", "crossref"]) == 2
    assert "ALM_BUS=kafka" in capsys.readouterr().err


def test_source_extras_and_dates_reach_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """ALM_<SOURCE>__<KEY> settings reach the plug-in; COUNTER reports up to the last full month."""
    from datetime import date

    from services.fetchers.base import ConfigError
    from services.fetchers.registry import get_source

    settings = Settings.from_env(
        {"ALM_COUNTER__CUSTOMER_ID": "cust-7", "ALM_WIKIPEDIA__LANGUAGES": "en,sv"}
    )
    counter = get_source("counter")
    config = settings.source_config("counter")
    assert config.extra == {"customer_id": "cust-7"}
    assert counter.missing_config(config) is None
    assert counter in selected_sources(settings)
    assert counter not in selected_sources(Settings())
    with pytest.raises(ConfigError, match="end_date"):
        counter.requests([WorkRef("10.1/x", doi="10.1/x")], config)
    from dataclasses import replace

    (request,) = counter.requests(
        [WorkRef("10.1/x", doi="10.1/x")], replace(config, today=date(2026, 1, 15))
    )
    assert ("end_date", "2025-12") in request.params
    assert ("customer_id", "cust-7") in request.params
    assert settings.source_config("wikipedia").extra == {"languages": "en,sv"}


def test_topics_create_takes_partitions_and_replication_factor() -> None:
    """`alm topics create` leaves the replica count to the brokers unless told (the chart
    passes both options)."""
    from services.cli.main import _parser

    args = _parser().parse_args(["topics", "create"])
    assert (args.partitions, args.replication_factor) == (6, -1)
    args = _parser().parse_args(
        ["topics", "create", "--partitions", "12", "--replication-factor", "3"]
    )
    assert (args.partitions, args.replication_factor) == (12, 3)


def test_import_schedules_every_work_not_only_the_first_thousand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm works import` of 5,000 DOIs leaves each one in the intake, and the scheduler's
    intake makes each due from every source that can fetch it (one scheduler step of 1,000
    events used to index the first 1,000 only)."""
    path = tmp_path / "dois.txt"
    path.write_text("".join(f"10.5555/unit.{n}\n" for n in range(5000)))

    assert main(["--data-dir", str(tmp_path / "data"), "works", "import", str(path)]) == 0

    assert "works: 5000 registered, 0 already known, 0 invalid" in capsys.readouterr().out
    db = tmp_path / "data" / "alm.sqlite"
    assert len(waiting(db)) == 5000  # each in the intake: registered in bulk
    assert take_intake(db) == 5000
    assert take_intake(db) == 0
    with sqlite3.connect(tmp_path / "data" / "alm.sqlite") as conn:
        per_source = dict(conn.execute("SELECT source, count(*) FROM due GROUP BY source"))
        works = conn.execute("SELECT count(DISTINCT work_id) FROM due").fetchone()[0]
    assert per_source == {s.name: 5000 for s in selected_sources(Settings.from_env())}
    assert works == 5000


def test_run_refreshes_works_an_older_version_left_unscheduled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Works registered without due entries (what the old import and a crash left behind)
    are found by the start-up reconcile and refreshed by the same run."""
    data, empty = str(tmp_path / "data"), tmp_path / "none.txt"
    empty.write_text("")
    assert main(["--data-dir", data, "works", "add", "10.5555/old.1", "10.5555/old.2"]) == 0
    with sqlite3.connect(tmp_path / "data" / "alm.sqlite") as conn:
        conn.execute("DELETE FROM due")
    capsys.readouterr()

    port = str(_free_port())
    assert (
        main(
            [
                "--data-dir",
                data,
                "run",
                "--offline",
                "--once",
                "--port",
                port,
                "--works",
                str(empty),
            ]
        )
        == 0
    )

    sources = len(selected_sources(Settings.from_env()))
    out = capsys.readouterr().out
    assert f"refreshes: {2 * sources} requested, {2 * sources} done, 0 errors" in out


def test_run_refuses_a_data_dir_another_run_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two `alm run` on one data directory would release each other's leases: the second
    one stops with a message instead."""
    data = tmp_path / "data"
    data.mkdir()
    with (data / "alm.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["--data-dir", str(data), "run", "--offline", "--once"])
    assert code == 2
    assert "another `alm run` is using" in capsys.readouterr().err


def test_run_is_the_embedded_mode_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alm run` over Kafka is refused with what to do instead."""
    monkeypatch.setenv("ALM_BUS", "kafka")
    assert main(["--data-dir", str(tmp_path), "run", "--offline", "--once"]) == 2
    assert "unset ALM_BUS" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("ids.bin", bytes(range(256)) * 64),
        ("ids.xlsx", b"PK\x03\x04\x14\x00\x06\x00" + bytes(500)),
        ("ids.csv", codecs.BOM_UTF16_LE + b"\x00\xd8\x41\x00"),
    ],
    ids=["binary", "spreadsheet", "broken-utf16"],
)
def test_import_of_a_binary_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes
) -> None:
    """Not text: exit code 2 and one line on stderr naming the file, no traceback."""
    path = tmp_path / name
    path.write_bytes(data)
    code = main(["--data-dir", str(tmp_path / "data"), "works", "import", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"alm: {name} ")
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("ids.txt", codecs.BOM_UTF16_LE + "10.1234/a\r\npmid:42\r\n".encode("utf-16-le")),
        ("ids.csv", codecs.BOM_UTF16_BE + "10.1234/a,x\npmid:42,y\n".encode("utf-16-be")),
        ("ids.csv", b"10.1234/a,First\npmid:42,Second\n"),
        ("ids.csv", codecs.BOM_UTF8 + b"10.1234/a\npmid:42\n"),
    ],
    ids=["utf16-le-text", "utf16-be-csv", "csv-without-header", "utf8-bom-csv"],
)
def test_import_reads_utf16_and_header_less_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes
) -> None:
    """UTF-16 files and CSV files without a header import every line."""
    path = tmp_path / name
    path.write_bytes(data)
    code = main(["--data-dir", str(tmp_path / "data"), "works", "import", str(path)])
    assert code == 0, capsys.readouterr()
    assert _works(tmp_path / "data") == ["10.1234/a", "pmid:42"]


async def test_api_metrics_on_their_own_port_only(tmp_path: Path) -> None:
    """With ALM_METRICS_PORT the API serves /metrics there, not on its public port; the metrics
    listener stops with the API."""
    import aiohttp

    from services.cli.common import serve_api as _serve_api
    from tests.unit.pipeline_kit import pipeline_kit

    api_port, metrics_port = _free_port(), _free_port()
    settings = Settings(data_dir=tmp_path, port=api_port, metrics_port=metrics_port)
    async with pipeline_kit(tmp_path) as kit, aiohttp.ClientSession() as http:
        runner = await _serve_api(settings, kit.store, kit.bus)
        try:
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                assert resp.status == 200
                assert "alm_upstream_requests_total" in await resp.text()
            async with http.get(f"http://127.0.0.1:{api_port}/metrics") as resp:
                assert resp.status == 404
                assert (await resp.json())["status"] == 404
        finally:
            await runner.cleanup()
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{metrics_port}/metrics")


def test_data_dir_is_accepted_after_the_command_too(tmp_path: Path) -> None:
    """`alm run --offline --data-dir DIR` (as README lists it among run's options) and
    `alm --data-dir DIR run` both work; the subcommand's copy wins when both are given."""
    from services.cli.main import _parser

    after = _parser().parse_args(["run", "--offline", "--data-dir", str(tmp_path / "a")])
    before = _parser().parse_args(["--data-dir", str(tmp_path / "b"), "run", "--offline"])
    both = _parser().parse_args(["--data-dir", "x", "works", "add", "--data-dir", "y", "10.1/z"])
    assert (after.data_dir, before.data_dir, both.data_dir) == (
        tmp_path / "a",
        tmp_path / "b",
        Path("y"),
    )
    assert main(["works", "add", "--data-dir", str(tmp_path / "c"), "10.7717/peerj.4375"]) == 0
    assert _works(tmp_path / "c") == ["10.7717/peerj.4375"]


def test_offline_runs_do_not_pace_the_built_in_stub_like_the_real_apis() -> None:
    """Against the loopback stub every source may go at OFFLINE_RATE (the real APIs' politeness
    rates made the sample take ~9 s); a rate set in the environment still wins."""
    from services.fetchers.registry import SOURCES
    from services.stub.offline import OFFLINE_RATE, offline_settings

    settings = offline_settings(Settings.from_env({"ALM_REDDIT_RATE": "2"}), "http://127.0.0.1:1")
    assert settings.upstream_root == "http://127.0.0.1:1"
    assert settings.rates["reddit"] == 2.0
    assert {n: r for n, r in settings.rates.items() if n != "reddit"} == {
        n: OFFLINE_RATE for n in SOURCES if n != "reddit"
    }


def test_db_reindex_dates_in_the_embedded_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm db reindex-dates` on SQLite migrates and leaves the index to SQLite (Cassandra's
    case: tests/integration/test_works_newest.py)."""
    assert main(["--data-dir", str(tmp_path), "db", "reindex-dates"]) == 0
    assert "publication-date listing indexed (sqlite)" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "alm.sqlite") as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "works_by_issued" in indexes
