"""The Helm chart's own promises: pods locked down with a writable /tmp (and data directory for
the aggregator), setup Jobs as hooks that run before the pods with the credentials they need,
refusals of values that cannot work, disruption budgets, and a README that documents every
value."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.helm_kit import (
    CASES,
    CHART,
    MINIMAL,
    container,
    env_of,
    of_kind,
    pod_spec,
    render,
    render_error,
    values,
    workloads,
)


@pytest.mark.parametrize("case", CASES)
def test_every_pod_is_locked_down(case: str) -> None:
    """Non-root, RuntimeDefault seccomp, no privilege escalation, every capability dropped, a
    read-only root with a /tmp of its own, no service account token."""
    for workload in workloads(render(*CASES[case])):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        sc = container(workload)["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"] == {"drop": ["ALL"]}, name
        mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name


def test_the_aggregator_has_a_writable_data_directory() -> None:
    """faust keeps its datadir under ALM_DATA_DIR: only the aggregator writes there, onto an
    emptyDir, the root file system being read-only."""
    for workload in of_kind(render(*MINIMAL), "Deployment"):
        data_dir = env_of(workload)["ALM_DATA_DIR"]["value"]
        mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        if container(workload)["args"] == ["aggregator"]:
            assert "emptyDir" in volumes[mounts[data_dir]]
        else:
            assert data_dir not in mounts


@pytest.mark.parametrize("case", ["minimal", "all-on-values"])
def test_setup_jobs_are_hooks_that_run_before_the_pods(case: str) -> None:
    """db migrate and topics create run before install and before every upgrade, replaced on
    the next run; the migration gets the Cassandra password from a Secret that is itself a
    hook made before it (the release's Secret does not exist yet at pre-install)."""
    docs = render(*CASES[case])
    jobs = {container(j)["args"][0]: j for j in of_kind(docs, "Job")}
    assert set(jobs) == {"db", "topics"}
    for job in jobs.values():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        assert pod_spec(job)["restartPolicy"] == "OnFailure"
        assert job["spec"]["backoffLimit"] >= 1
    if case == "all-on-values":
        secrets = {s["metadata"]["name"]: s for s in of_kind(docs, "Secret")}
        volumes = {v["name"]: v for v in pod_spec(jobs["db"])["volumes"]}
        hook_secret = secrets[volumes["cassandra-auth"]["secret"]["secretName"]]
        weight = int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"])
        assert weight < int(jobs["db"]["metadata"]["annotations"]["helm.sh/hook-weight"])
        assert (
            "hook-succeeded" in hook_secret["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        )
        release_secret = secrets[hook_secret["metadata"]["name"].removesuffix("-hook")]
        assert "annotations" not in release_secret["metadata"]
        assert release_secret["data"] == hook_secret["data"]


def test_setup_jobs_can_be_turned_off() -> None:
    """With jobs disabled nothing runs as a hook (an operator who migrates by hand)."""
    assert of_kind(render(*CASES["existing-secrets-values"]), "Job") == []


THREE_PARTITIONS = (*MINIMAL, "--set", "kafka.partitions=3", "--set", "aggregator.replicas=2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "cassandra.hosts=c"), "kafka.bootstrap is required"),
        (("--set", "kafka.bootstrap=k:9092"), "cassandra.hosts is required"),
        ((*MINIMAL, "--set", "aggregator.replicas=7"), "aggregator.replicas (7) is more than"),
        (
            (*MINIMAL, "--set", "aggregator.autoscaling.enabled=true"),
            "",  # maxReplicas 6 = partitions: renders (checked below)
        ),
        (
            (*THREE_PARTITIONS, "--set", "aggregator.autoscaling.enabled=true"),
            "aggregator.autoscaling.maxReplicas (6) is more than kafka.partitions (3)",
        ),
        ((*MINIMAL, "--set", "sources.crossref.replicas=9"), "sources.crossref: 9 replicas"),
        ((*MINIMAL, "--set", "sources.mendeley.enabled=true"), "sources.mendeley needs client"),
        ((*MINIMAL, "--set", "sources.counter.enabled=true"), "sources.counter needs baseUrl"),
        ((*MINIMAL, "--set", "cassandra.auth.password=pw"), "cassandra.auth.username is not"),
        ((*MINIMAL, "--set", "cassandra.auth.username=u"), "neither cassandra.auth.password"),
        ((*MINIMAL, "--set", "cassandra.tls.certKey=tls.crt"), "cassandra.tls.enabled is false"),
        ((*MINIMAL, "--set", "sources.scopus.enabled=true"), "additional properties 'scopus'"),
        ((*MINIMAL, "--set", "aggregator.replicaz=2"), "additional properties 'replicaz'"),
        ((*MINIMAL, "--set", "api.port=80"), "/api/port"),
        ((*MINIMAL, "--set", "contactEmail=nobody"), "/contactEmail"),
    ],
)
def test_values_that_cannot_work_are_refused(args: tuple[str, ...], message: str) -> None:
    """The template's checks and values.schema.json stop an install that could not work, and
    say which value to change."""
    if not message:
        assert render(*args)
        return
    assert message in render_error(*args)


def test_disruption_budgets_cover_what_runs_more_than_once() -> None:
    """A PodDisruptionBudget per component with more than one pod (never the scheduler), each
    selecting exactly that component's pods."""
    docs = render(*CASES["all-on-values"])
    budgets = of_kind(docs, "PodDisruptionBudget")
    by_selector = {tuple(sorted(b["spec"]["selector"]["matchLabels"].items())): b for b in budgets}
    several = [
        d
        for d in of_kind(docs, "Deployment")
        if d["spec"].get("replicas", 2) > 1 and container(d)["args"] != ["scheduler"]
    ]
    assert len(budgets) == len(several) == len(by_selector)
    for deployment in several:
        labels = deployment["spec"]["selector"]["matchLabels"]
        budget = by_selector[tuple(sorted(labels.items()))]
        assert (
            budget["spec"]["maxUnavailable"]
            == values("all-on-values")["podDisruptionBudget"]["maxUnavailable"]
        )
    minimal = of_kind(render(*MINIMAL), "PodDisruptionBudget")
    assert {b["metadata"]["name"] for b in minimal} == {"alm-api", "alm-aggregator"}


def test_chart_managed_secrets_roll_the_pods_that_read_them() -> None:
    """A password or key kept in the chart's Secret is hashed into the pods' annotations, so
    `helm upgrade` with a new one restarts exactly the pods that read it."""

    def annotations(*args: str) -> dict[str, dict[str, str]]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"].get("annotations", {})
            for d in of_kind(render(*args), "Deployment")
        }

    base = ("-f", str(CHART / "ci" / "all-on-values.yaml"))
    before = annotations(*base)
    after = annotations(
        *base, "--set", "cassandra.auth.password=new", "--set", "sources.crossref.apiKey=new"
    )
    changed = {name for name in before if before[name] != after[name]}
    assert changed == set(before)  # every pod reads the Cassandra password
    keys_only = annotations(*base, "--set", "sources.crossref.apiKey=new")
    assert {n for n in before if before[n] != keys_only[n]} == {"alm-all-fetcher-crossref"}


def _leaves(tree: Any, prefix: str = "") -> set[str]:
    """Dotted paths of a values tree down to its leaves (an empty map or list is a leaf)."""
    if isinstance(tree, dict) and tree:
        return set().union(*(_leaves(v, f"{prefix}{k}.") for k, v in tree.items()))
    return {prefix.rstrip(".")}


def test_readme_documents_every_value() -> None:
    """The chart README's table has a row for each value of values.yaml (a row may cover a
    whole map, as `fetcher.resources`), and no row for a value that does not exist."""
    text = (CHART / "README.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", text, re.MULTILINE))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    leaves = {leaf for leaf in _leaves(defaults) if not leaf.startswith("sources.")}
    undocumented = {
        leaf for leaf in leaves if not any(leaf == r or leaf.startswith(r + ".") for r in rows)
    }
    assert not undocumented, f"README.md lacks rows for {sorted(undocumented)}"
    per_source = {r for r in rows if r.startswith("sources.")}
    schema_keys = set(
        yaml.safe_load((CHART / "values.schema.json").read_text())["properties"]["sources"][
            "properties"
        ]["crossref"]["properties"]
    )
    assert {r.removeprefix("sources.<name>.") for r in per_source} == schema_keys
    unknown = {
        r
        for r in rows - per_source
        if not any(leaf == r or leaf.startswith(r + ".") for leaf in leaves)
    }
    assert not unknown, f"README.md documents values that do not exist: {sorted(unknown)}"
