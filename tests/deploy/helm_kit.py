"""Render the Helm chart for tests with the helm that deploy/helm/check installs.

bin/test runs deploy/helm/check (which builds helm into .alm-local/tools/) before pytest, so in
CI helm is always there; on a machine without it the chart tests are skipped, except under CI,
where a missing helm fails them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "alm"
CHECK = ROOT / "deploy" / "helm" / "check"
VERSIONS = ROOT / "deploy" / "helm" / "kubernetes-versions"
MINIMAL = ("--set", "kafka.bootstrap=kafka:9092", "--set", "cassandra.hosts=cassandra")
CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
CASES = {"minimal": MINIMAL, **{p.stem: ("-f", str(p)) for p in CI_FILES}}

Doc = dict[str, Any]


def helm_version() -> str:
    """The helm version deploy/helm/check pins."""
    match = re.search(r"^HELM_VERSION=(v\S+)$", CHECK.read_text(), re.MULTILINE)
    assert match, "deploy/helm/check pins no HELM_VERSION"
    return match[1]


def kubernetes_versions() -> list[str]:
    """The Kubernetes versions the chart is validated against, oldest first."""
    lines = VERSIONS.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def helm() -> str:
    """The helm binary (ALM_HELM, deploy/helm/check's, or one on PATH); skips without one."""
    candidates = [
        os.environ.get("ALM_HELM", ""),
        str(ROOT / ".alm-local" / "tools" / f"helm-{helm_version()}"),
        shutil.which("helm") or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("CI"):
        pytest.fail("no helm: deploy/helm/check (run by bin/test) installs it")
    pytest.skip("no helm here: run deploy/helm/check once (it builds helm into .alm-local/tools)")


def _run(args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    command = [
        helm(),
        "template",
        "alm",
        str(CHART),
        "--namespace",
        "alm",
        "--kube-version",
        kubernetes_versions()[-1],
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


@cache
def render(*args: str) -> list[Doc]:
    """The objects `helm template` makes with these values arguments."""
    done = _run(args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_error(*args: str) -> str:
    """What helm says when it refuses these values (fails the test if it renders)."""
    done = _run(args)
    assert done.returncode != 0, f"rendered although it should not: {args}"
    return done.stderr


def values(case: str) -> Doc:
    """The values a case renders with: the chart's defaults overlaid with the case's file."""
    merged: Doc = yaml.safe_load((CHART / "values.yaml").read_text())
    if case != "minimal":
        _overlay(merged, yaml.safe_load((CHART / "ci" / f"{case}.yaml").read_text()))
    return merged


def _overlay(base: Doc, over: Doc) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _overlay(base[key], value)
        else:
            base[key] = value


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    """The objects of one kind."""
    return [d for d in docs if d["kind"] == kind]


def pod_spec(workload: Doc) -> Doc:
    """The pod spec of a Deployment or Job."""
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Doc) -> Doc:
    """The one container of a workload."""
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    only: Doc = containers[0]
    return only


def workloads(docs: list[Doc]) -> list[Doc]:
    """Every Deployment and Job."""
    return of_kind(docs, "Deployment") + of_kind(docs, "Job")


def env_of(workload: Doc) -> dict[str, Doc]:
    """The container's environment entries by name (the last of a name wins, as in a pod)."""
    return {entry["name"]: entry for entry in container(workload).get("env", [])}
