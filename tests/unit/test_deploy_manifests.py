"""The deployment files agree with the code: Kubernetes manifests run real `alm` commands for
exactly the registered sources with settings the code reads, and the Prometheus rules and the
Grafana dashboard use only metrics and labels that services/fetchers/telemetry.py exports."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from services import embedded, shutdown
from services.aggregator import app
from services.api import errors
from services.cli.main import _parser
from services.fetchers import telemetry
from services.fetchers.registry import SOURCES
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
RULES = ROOT / "deploy" / "prometheus" / "alm-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "alm-dashboard.json"


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.rglob("*.yaml")) + sorted(K8S.rglob("*.yml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _workloads(kind: str) -> list[dict[str, Any]]:
    return [d for d in _manifests() if d["kind"] == kind]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    container: dict[str, Any] = containers[0]
    return container


def _fetchers() -> dict[str, dict[str, Any]]:
    """Fetcher Deployments by the source their args name."""
    out = {}
    for deployment in _workloads("Deployment"):
        args = _parser().parse_args(_container(deployment)["args"])
        if args.command == "fetcher":
            assert args.source not in out, f"two Deployments fetch {args.source}"
            out[args.source] = deployment
    return out


def _env_file(name: str) -> dict[str, str]:
    lines = (K8S / name).read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_every_yaml_file_parses_into_kubernetes_objects() -> None:
    """Each YAML document under deploy/k8s has apiVersion, kind and a name (kustomization too)."""
    docs = _manifests()
    assert len(docs) >= 5
    for doc in docs:
        assert {"apiVersion", "kind"} <= set(doc), doc
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], doc


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml names every manifest file in the folder, and only existing ones."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    envs = {e for gen in kustomization["configMapGenerator"] for e in gen["envs"]}
    assert envs == {"alm.env", "site.env"}
    assert (K8S / "site.env.example").is_file()


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_container_args_are_real_alm_commands(kind: str) -> None:
    """Every container's args parse with `alm`'s own argument parser."""
    workloads = _workloads(kind)
    assert workloads
    for workload in workloads:
        container = _container(workload)
        assert container["image"] == "alm"
        _parser().parse_args(container["args"])  # SystemExit on anything `alm` rejects


def test_services_and_jobs_present() -> None:
    """The API, one scheduler, the aggregator and both setup jobs are deployed."""
    commands = {
        tuple(_parser().parse_args(_container(d)["args"]).command.split()): d
        for d in _workloads("Deployment")
    }
    assert {("api",), ("scheduler",), ("aggregator",), ("fetcher",)} <= set(commands)
    assert commands[("scheduler",)]["spec"]["replicas"] == 1
    assert commands[("scheduler",)]["spec"]["strategy"]["type"] == "Recreate"
    jobs = {tuple(_container(j)["args"][:2]) for j in _workloads("Job")}
    assert jobs == {("db", "migrate"), ("topics", "create")}


def test_every_registry_source_has_exactly_one_fetcher() -> None:
    """A fetcher Deployment per registered source, none for an unknown one, one replica at most
    (the rate limit is per process) and never rolled into a second one."""
    fetchers = _fetchers()
    assert set(fetchers) == set(SOURCES)
    for source, deployment in fetchers.items():
        assert deployment["spec"]["replicas"] in (0, 1), source
        assert deployment["spec"]["strategy"]["type"] == "Recreate", source


def test_scheduler_schedules_the_running_fetchers() -> None:
    """ALM_SOURCES of the scheduler names exactly the sources whose fetcher runs."""
    scheduler = next(
        d
        for d in _workloads("Deployment")
        if _parser().parse_args(_container(d)["args"]).command == "scheduler"
    )
    env = {e["name"]: e.get("value") for e in _container(scheduler).get("env", [])}
    scheduled = set(Settings.from_env(env).sources)
    running = {s for s, d in _fetchers().items() if d["spec"]["replicas"] > 0}
    assert scheduled == running


def test_api_keys_reach_only_their_own_fetcher() -> None:
    """A fetcher gets at most its own ALM_<SOURCE>_API_KEY, optional, from the Secret."""
    for source, deployment in _fetchers().items():
        for env in _container(deployment).get("env", []):
            ref = env["valueFrom"]["secretKeyRef"]
            assert ref == {
                "name": "alm-api-keys",
                "key": env["name"],
                "optional": True,
            }
            assert Settings.from_env({env["name"]: "k"}).api_keys == {source: "k"}


def test_aggregator_replicas_fit_the_partitions() -> None:
    """The aggregator has no more replicas than `alm topics create` makes partitions."""
    topics = next(j for j in _workloads("Job") if _container(j)["args"][:2] == ["topics", "create"])
    partitions = _parser().parse_args(_container(topics)["args"]).partitions
    aggregator = next(
        d
        for d in _workloads("Deployment")
        if _parser().parse_args(_container(d)["args"]).command == "aggregator"
    )
    assert 1 <= aggregator["spec"]["replicas"] <= partitions


def test_api_probes_and_scrape_annotations_point_at_real_routes() -> None:
    """The API's probes are /readyz and /healthz, on the port its args bind, which is also
    the one Prometheus is told to scrape for /metrics."""
    api = next(
        d
        for d in _workloads("Deployment")
        if _parser().parse_args(_container(d)["args"]).command == "api"
    )
    container = _container(api)
    args = _parser().parse_args(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == args.port
    assert args.host == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(args.port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_every_service_is_scraped_where_it_serves_metrics() -> None:
    """Every pod is scraped: the API on its own port, workers on ALM_METRICS_PORT."""
    metrics_port = Settings.from_env(_env_file("alm.env")).metrics_port
    assert metrics_port > 0
    for deployment in _workloads("Deployment"):
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        args = _container(deployment)["args"]
        command = _parser().parse_args(args).command
        port = int(args[args.index("--port") + 1]) if command == "api" else metrics_port
        assert annotations.get("prometheus.io/scrape") == "true", deployment["metadata"]["name"]
        assert annotations.get("prometheus.io/port") == str(port)


def test_the_grace_period_outlasts_each_services_shutdown_bound() -> None:
    """Every Deployment gives its pod more time from SIGTERM to SIGKILL than the service may
    take to drain its batch, commit and close (services/shutdown.py), with 10 s to spare:
    Kubernetes never kills a service mid-commit."""
    deployments = _workloads("Deployment")
    assert len(deployments) >= 4
    for deployment in deployments:
        command = _parser().parse_args(_container(deployment)["args"]).command
        grace = deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        assert grace >= shutdown.bound(command) + 10, deployment["metadata"]["name"]


def test_the_shutdown_bound_covers_the_drain_the_services_use() -> None:
    """The bound is made of the numbers the code waits: the step loop's and the aggregator's
    drain, and the API's request deadline at the default store timeout."""
    assert embedded.DRAIN_SECONDS == shutdown.DRAIN_SECONDS
    assert app.DRAIN_SECONDS == shutdown.DRAIN_SECONDS
    deadline = Settings().api_store_timeout * errors.STORE_CALLS
    assert deadline <= shutdown.API_REQUEST_SECONDS
    assert shutdown.bound("fetcher") == shutdown.DRAIN_SECONDS + shutdown.CLOSE_SECONDS


def test_every_container_has_requests_and_limits() -> None:
    """Each container declares CPU and memory requests and limits and runs as non-root."""
    for workload in _workloads("Deployment") + _workloads("Job"):
        container = _container(workload)
        for part in ("requests", "limits"):
            assert set(container["resources"][part]) == {"cpu", "memory"}, workload
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_env_files_hold_settings_the_code_reads() -> None:
    """alm.env and site.env.example set the distributed mode's ALM_* settings."""
    env = {**_env_file("alm.env"), **_env_file("site.env.example")}
    assert set(env) == {
        "ALM_BUS",
        "ALM_STORE",
        "ALM_CASSANDRA_PORT",
        "ALM_CASSANDRA_KEYSPACE",
        "ALM_RAW_TTL_DAYS",
        "ALM_KAFKA_BOOTSTRAP",
        "ALM_CASSANDRA_HOSTS",
        "ALM_CONTACT_EMAIL",
        "ALM_METRICS_PORT",
        "ALM_HOST",
        "ALM_STATUS_CACHE_SECONDS",
    }
    assert all(value == "" for value in _env_file("site.env.example").values())
    settings = Settings.from_env(_env_file("alm.env"))
    assert (settings.bus, settings.store) == ("kafka", "cassandra")
    assert settings.status_cache_seconds == 30


# -- Prometheus rules and the Grafana dashboard ----------------------------------------------

_SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum"),
    "Summary": ("", "_count", "_sum"),
}


def _definitions() -> dict[str, tuple[str, set[str]]]:
    """Metric family -> (type, label names), read from the definitions in telemetry.py."""
    tree = ast.parse(Path(telemetry.__file__).read_text())
    out: dict[str, tuple[str, set[str]]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in _SUFFIXES:
            continue
        name = ast.literal_eval(node.args[0]).removesuffix("_total")
        labels_node = next((k.value for k in node.keywords if k.arg == "labelnames"), None)
        if labels_node is None and len(node.args) > 2:
            labels_node = node.args[2]
        labels = set(ast.literal_eval(labels_node)) if labels_node is not None else set()
        out[name] = (node.func.id, labels)
    return out


def _telemetry() -> dict[str, set[str]]:
    """Exported sample name -> label names."""
    return {
        name + suffix: labels | ({"le"} if suffix == "_bucket" else set())
        for name, (kind, labels) in _definitions().items()
        for suffix in _SUFFIXES[kind]
    }


def test_telemetry_parse_finds_every_metric() -> None:
    """The AST reading of telemetry.py finds every metric object the module defines."""
    defined = {
        metric.name
        for value in vars(telemetry).values()
        if isinstance(value, MetricWrapperBase)
        for metric in value.describe()
    }
    assert defined
    assert defined == set(_definitions())


_FUNCTIONS_AND_KEYWORDS = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}")
_IDENT = re.compile(r"(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_DEFAULT_LABELS = {"instance", "job"}


def _default_registry_names() -> set[str]:
    return {sample.name for metric in REGISTRY.collect() for sample in metric.samples}


def _parse(expr: str) -> tuple[set[str], list[tuple[str | None, set[str]]], set[str]]:
    """Metric names, selectors (name or None, matcher label names) and grouping labels."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables
    grouping = {
        label.strip() for _, labels in _GROUPING.findall(expr) for label in labels.split(",")
    } - {""}
    expr = _GROUPING.sub(" ", expr)
    selectors = [
        (name or None, {m.split("=")[0].rstrip("!~").strip() for m in body.split(",") if m})
        for name, body in _SELECTOR.findall(expr)
    ]
    expr = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", expr)
    expr = _FUNCTIONS_AND_KEYWORDS.sub(" ( ", expr)
    names = {n for n in _IDENT.findall(expr) if n not in _KEYWORDS and not n[0].isdigit()}
    return names, selectors, grouping


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> Iterator[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert inner, variable
            yield f"{inner[1]}{{{inner[2]}!=''}}"


def _check(expr: str, recorded: set[str]) -> None:
    exported = _telemetry()
    defaults = _default_registry_names()
    names, selectors, grouping = _parse(expr)
    assert names, expr
    for name in names:
        if name.startswith("alm_"):
            assert name in exported, f"{name} is not exported by telemetry.py ({expr})"
        elif name.startswith("alm:"):
            assert name in recorded, f"{name} is not a recording rule ({expr})"
        else:
            assert name in defaults, f"{name} is not a prometheus_client default ({expr})"
    known_labels = set().union(*exported.values()) | _DEFAULT_LABELS
    for selected, labels in selectors:
        allowed = exported.get(selected or "", known_labels) | _DEFAULT_LABELS
        assert labels <= allowed, f"{selected}: labels {labels - allowed} do not exist ({expr})"
    assert grouping <= known_labels, f"unknown grouping labels {grouping - known_labels} ({expr})"


def test_rules_use_only_exported_metrics_and_labels() -> None:
    """Every metric in the rules is exported by telemetry.py (or a recording rule, or a
    prometheus_client default such as process_start_time_seconds), with real label names."""
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    assert recorded and any("alert" in r for r in rules)
    for rule in rules:
        _check(rule["expr"], recorded)


def test_dashboard_uses_only_exported_metrics_and_labels() -> None:
    """Every panel query and variable of the dashboard reads metrics telemetry.py exports."""
    exprs = list(_dashboard_exprs())
    assert len(exprs) >= 8
    for expr in exprs:
        _check(expr, set())


def test_rule_unit_tests_feed_exported_series() -> None:
    """The series of alm-rules.test.yml (promtool's unit tests) are ones the code exports."""
    tests = yaml.safe_load(RULES.with_name("alm-rules.test.yml").read_text())["tests"]
    series = [s["series"] for test in tests for s in test["input_series"]]
    assert series
    for selector in series:
        _check(selector, set())


def test_every_exported_metric_is_watched() -> None:
    """Each telemetry metric appears in the rules and on the dashboard."""
    rule_names = set().union(*(_parse(r["expr"])[0] for r in _rules()))
    dash_names = set().union(*(_parse(e)[0] for e in _dashboard_exprs()))
    families = {name for name in _telemetry() if not name.endswith(("_sum", "_bucket"))}
    histogram_bases = {n.removesuffix("_bucket") for n in _telemetry() if n.endswith("_bucket")}
    for family in families:
        base = family.removesuffix("_count")
        watched = {f"{base}_count", f"{base}_bucket"} if base in histogram_bases else {family}
        assert watched & rule_names, f"{family} is in no rule"
        assert watched & dash_names, f"{family} is on no dashboard panel"


def test_parser_catches_unknown_names() -> None:
    """The name check fails on a metric, label or recording rule that does not exist."""
    for bad in (
        "rate(alm_upstream_request_total[5m])",
        'sum by (source) (alm_source_paused{reason="x"})',
        "sum by (host) (alm_source_paused)",
        "alm:nothing:rate5m > 0",
    ):
        with pytest.raises(AssertionError):
            _check(bad, set())
