"""The Dockerfile, read statically (no Docker engine runs here; deploy/helm/check also runs
hadolint on it): a wheel-building stage with a
pip cache mount, a slim final stage that installs only those wheels without compilers, as the
non-root user the chart runs, the `alm` entry point of pyproject.toml; and a .dockerignore that
sends exactly what the Dockerfile copies."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|cargo|rustc|apt-get|apk)\b")


@dataclass
class Stage:
    """One FROM ... of the Dockerfile and its instructions (continuation lines joined)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def runs(self) -> list[str]:
        return [args for op, args in self.instructions if op == "RUN"]

    def last(self, op: str) -> str:
        return [args for o, args in self.instructions if o == op][-1]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, args = line.partition(" ")
            out.append((op.upper(), args.strip()))
    return out


def _stages() -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for op, rest in _instructions():
        if op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif op == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], parts[0])
            stages.append(Stage(base, parts[2] if len(parts) > 2 else None))
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


def test_two_stages_on_the_same_slim_python() -> None:
    """A named build stage and a final stage, both from one pinned slim Python image (the
    wheels built in the first fit the second)."""
    _, stages = _stages()
    assert [s.name for s in stages] == ["build", None]
    assert stages[0].base == stages[1].base
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", stages[0].base), stages[0].base
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert stages[0].base.split(":")[1].split("-")[0] in requires


def test_wheels_are_built_from_pyprojects_pins_with_a_cached_pip() -> None:
    """The build stage makes wheels of exactly pyproject.toml's runtime dependencies, with
    pip's cache on a BuildKit cache mount."""
    _, (build, _final) = _stages()
    runs = " ".join(build.runs())
    assert 'tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]' in runs
    wheel = next(r for r in build.runs() if "pip wheel" in r)
    assert "--mount=type=cache,target=/root/.cache/pip" in wheel
    assert "--wheel-dir /wheels" in wheel


def test_the_final_stage_installs_only_wheels_and_no_build_tools() -> None:
    """The final stage installs from the build stage's wheels (bind-mounted, so no wheel file
    stays in a layer) without an index, and runs no compiler or package manager."""
    _, (_build, final) = _stages()
    install = next(r for r in final.runs() if "pip install" in r)
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install
    assert "--no-index --find-links /wheels" in install
    for run in final.runs():
        assert not BUILD_TOOLS.search(run), run
    copied = [args for op, args in final.instructions if op == "COPY"]
    assert not [c for c in copied if "--from" in c], "wheels copied into a layer"
    assert "PIP_NO_CACHE_DIR=1" in " ".join(a for o, a in final.instructions if o == "ENV")


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    """USER is numeric (runAsNonRoot can check it) and the chart's pod security context."""
    _, (_build, final) = _stages()
    uid, gid = final.last("USER").split(":")
    values = yaml.safe_load((ROOT / "deploy/helm/alm/values.yaml").read_text())
    context = values["podSecurityContext"]
    assert (int(uid), int(gid)) == (context["runAsUser"], context["runAsGroup"])
    assert int(uid) != 0
    setup = " ".join(final.runs())
    assert f"--uid {uid}" in setup and f"--gid {gid}" in setup
    assert "ALM_DATA_DIR=/var/lib/alm" in " ".join(a for o, a in final.instructions if o == "ENV")
    assert f"install -d -o {uid} -g {gid} /var/lib/alm" in setup


def test_the_entry_point_is_pyprojects_alm_command() -> None:
    """ENTRYPOINT is `alm`, the script made in the image calls the function that
    pyproject.toml's [project.scripts] names, and the ports the chart uses are exposed."""
    _, (_build, final) = _stages()
    assert json.loads(final.last("ENTRYPOINT")) == ["alm"]
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["alm"]
    module, function = script.split(":")
    launcher = next(r for r in final.runs() if "/usr/local/bin/alm" in r)
    assert f"from {module} import {function}" in launcher
    values = yaml.safe_load((ROOT / "deploy/helm/alm/values.yaml").read_text())
    exposed = {int(p) for p in final.last("EXPOSE").split()}
    assert {values["api"]["port"], values["metrics"]["port"]} <= exposed


def _regex(glob: str) -> str:
    """A .dockerignore pattern as a regex: `**` any depth, `*` and `?` within one name."""
    out = ""
    for token in re.split(r"(\*\*/?|\*|\?)", glob):
        if token.startswith("**"):
            out += "(.*/)?" if token.endswith("/") else ".*"
        elif token == "*":
            out += "[^/]*"
        elif token == "?":
            out += "[^/]"
        else:
            out += re.escape(token)
    return out


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path (or a parent) decides,
    `!` re-includes."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        regex = _regex(pattern.lstrip("!").rstrip("/"))
        if any(re.fullmatch(regex, p) for p in prefixes):
            ignored = not pattern.startswith("!")
    return ignored


def test_dockerignore_sends_what_the_dockerfile_copies_and_nothing_else() -> None:
    """Every file under each COPY source reaches the build; the git history, virtualenvs,
    local data, caches and the rest of the tree do not."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    _, stages = _stages()
    sources = [
        args.split()[0]
        for stage in stages
        for op, args in stage.instructions
        if op == "COPY" and not args.startswith("--")
    ]
    assert "pyproject.toml" in sources and "services" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*.*")
        for file in files:
            relative = str(file.relative_to(ROOT))
            if "__pycache__" not in relative:
                assert not _ignored(relative, patterns), f"{relative} is not sent"
    for kept_out in (
        ".git/HEAD",
        ".venv/bin/python",
        ".alm-local/tools/helm",
        ".alm-data/alm.sqlite",
        "services/__pycache__/settings.cpython-311.pyc",
        "tests/unit/test_api.py",
        "deploy/helm/alm/values.yaml",
        "bench/embedded.py",
    ):
        assert _ignored(kept_out, patterns), f"{kept_out} would be sent"
