"""The long-running commands' garbage-collector settings (services/gctune.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services import gctune
from services.cli.main import _parser, main, tuned_collector
from services.settings import Settings


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_the_default_and_python_and_explicit_thresholds() -> None:
    assert Settings.from_env({}).gc_threshold == gctune.DEFAULT
    assert Settings.from_env({"ALM_GC_THRESHOLD": "python"}).gc_threshold is None
    assert Settings.from_env({"ALM_GC_THRESHOLD": " 1000, 20 ,30"}).gc_threshold == (1000, 20, 30)


@pytest.mark.parametrize("bad", ["1,2", "a,b,c", "0,10,10", "-5,10,10", "1,2,3,4"])
def test_a_malformed_setting_is_refused_with_its_name(bad: str) -> None:
    with pytest.raises(ValueError, match="ALM_GC_THRESHOLD"):
        Settings.from_env({"ALM_GC_THRESHOLD": bad})


def test_tune_freezes_startup_objects_and_sets_the_thresholds(restore_gc: None) -> None:
    gctune.tune((12_345, 6, 7))
    assert gc.get_threshold() == (12_345, 6, 7)
    assert gc.get_freeze_count() > 0


def test_python_leaves_the_collector_alone(restore_gc: None) -> None:
    before = gc.get_threshold()
    gctune.tune(None)
    assert gc.get_threshold() == before


def test_alm_stops_on_a_malformed_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALM_GC_THRESHOLD", "lots")
    assert main(["sources"]) == 2
    assert "ALM_GC_THRESHOLD" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "tuned"),
    [
        (["run"], True),
        (["api"], True),
        (["works", "import", "ids.txt"], True),
        (["publishers", "import", "--member", "340"], True),
        (["works", "add", "10.1/x"], False),
        (["publishers", "list"], False),
        (["db", "migrate"], False),
    ],
)
def test_long_running_commands_and_bulk_imports_get_the_tuned_collector(
    argv: list[str], tuned: bool
) -> None:
    """The servers and the bulk imports run with the tuned collector, other commands not."""
    assert tuned_collector(_parser().parse_args(argv)) is tuned
