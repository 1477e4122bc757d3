"""deploy/helm/render_schema.py: values.schema.json's per-source part is rendered from one
entry (deploy/helm/source.schema.json) for every registered source, and the committed file is
what it renders (adding a source = rerun the script)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from services.fetchers.registry import SOURCES
from services.settings import REPO_ROOT

SCRIPT = REPO_ROOT / "deploy" / "helm" / "render_schema.py"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_schema", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_schema_is_what_the_script_renders() -> None:
    """Fails when values.schema.json was edited (or a source added) without the script."""
    render = script()
    current = render.SCHEMA.read_text()
    assert render.registered_sources() == list(SOURCES)
    assert render.render(current, render.SOURCE_SCHEMA.read_text(), list(SOURCES)) == current
    assert render.main(["--check"]) == 0


def test_every_source_gets_the_one_entry_and_nothing_else_changes() -> None:
    render = script()
    current = json.loads(render.SCHEMA.read_text())
    entry = json.loads(render.SOURCE_SCHEMA.read_text())
    rendered = json.loads(
        render.render(render.SCHEMA.read_text(), json.dumps(entry), [*SOURCES, "scopus"])
    )
    assert rendered["properties"]["sources"]["properties"] == {
        name: entry for name in [*SOURCES, "scopus"]
    }
    rendered["properties"]["sources"]["properties"] = current["properties"]["sources"]["properties"]
    assert rendered == current


def test_check_fails_on_a_stale_schema_and_a_run_rewrites_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    render = script()
    stale = json.loads(render.SCHEMA.read_text())
    del stale["properties"]["sources"]["properties"]["mendeley"]
    target = tmp_path / "deploy" / "helm" / "alm" / "values.schema.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(stale, indent=2) + "\n")
    shutil.copy(render.SOURCE_SCHEMA, tmp_path / "deploy" / "helm" / "source.schema.json")
    monkeypatch.setattr(render, "ROOT", tmp_path)
    monkeypatch.setattr(render, "SCHEMA", target)
    monkeypatch.setattr(render, "SOURCE_SCHEMA", tmp_path / "deploy/helm/source.schema.json")
    monkeypatch.setattr(render, "__file__", str(tmp_path / "deploy/helm/render_schema.py"))
    assert render.main(["--check"]) == 1
    assert "out of date: run deploy/helm/render_schema.py" in capsys.readouterr().out
    assert render.main([]) == 0
    assert (
        target.read_text()
        == render.SCHEMA.read_text()
        == (REPO_ROOT / "deploy/helm/alm/values.schema.json").read_text()
    )
