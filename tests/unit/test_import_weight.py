"""What importing a module drags in: settings load no fetcher, a plug-in loads no stub, the
fetcher framework loads no stub (each checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.settings import REPO_ROOT


def loaded_by(module: str) -> set[str]:
    """The `services` modules a fresh interpreter holds after importing `module`."""
    code = (
        f"import sys, {module}\n"
        "print('\\n'.join(m for m in sys.modules if m.split('.')[0] == 'services'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    ("module", "kept_out"),
    [
        ("services.settings", ("services.fetchers", "services.stub")),
        ("services.fetchers.sources.crossref", ("services.stub",)),
        ("services.fetchers.registry", ("services.stub",)),
        ("services.fetchers.engine", ("services.stub",)),
    ],
)
def test_importing_loads_no_module_of_another_part(module: str, kept_out: tuple[str, ...]) -> None:
    """Reading the settings is not loading the fetcher framework; a plug-in is the plug-in only
    (its fake upstream lives in services/stub/sources/)."""
    loaded = loaded_by(module)
    assert module in loaded
    assert sorted(m for m in loaded if m.startswith(kept_out)) == []
