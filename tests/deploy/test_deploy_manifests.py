"""The deployment files agree with the code: the Helm chart, rendered with the minimal values and
with every deploy/helm/alm/ci/ file, runs real `alm` commands for exactly the enabled sources
with environment variables the code reads (and accepts), and the Prometheus rules and the
Grafana dashboard use only metrics and labels that the services export."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import services
from services import embedded, shutdown
from services.adapters.memory.bus import MemoryBus
from services.aggregator import app as aggregator_app
from services.aggregator.app import APP_ID
from services.aggregator.service import Aggregator
from services.api import errors
from services.cli.main import _parser
from services.core.events import TOPIC_RAW, refresh_topic
from services.core.keys import new_secret_key
from services.core.sources import SourceConfig
from services.core.staleness import Policy
from services.fetchers import telemetry as fetcher_telemetry
from services.fetchers.registry import SOURCES
from services.fetchers.service import FetcherService
from services.settings import Settings
from tests.deploy.helm_kit import (
    CASES,
    ROOT,
    Doc,
    container,
    env_of,
    of_kind,
    pod_spec,
    render,
    values,
    workloads,
)

RULES = ROOT / "deploy" / "prometheus" / "alm-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "alm-dashboard.json"
# Every module that defines metrics: the fetchers' and each one of services/telemetry/ (found,
# not listed, so a new module's metrics must be watched too).
TELEMETRY = (
    fetcher_telemetry,
    *(
        importlib.import_module(f"services.telemetry.{m.name}")
        for m in pkgutil.iter_modules([str(ROOT / "services" / "telemetry")])
    ),
)


def _command(workload: Doc) -> Any:
    return _parser().parse_args(container(workload)["args"])  # SystemExit if `alm` rejects it


def _fetchers(docs: list[Doc]) -> dict[str, Doc]:
    """Fetcher Deployments by the source their args name."""
    out: dict[str, Doc] = {}
    for deployment in of_kind(docs, "Deployment"):
        args = _command(deployment)
        if args.command == "fetcher":
            assert args.source not in out, f"two Deployments fetch {args.source}"
            out[args.source] = deployment
    return out


_FILES = ("_FILE", "_TLS_CA", "_TLS_CERT", "_TLS_KEY")  # variables naming a mounted file
_CREDENTIALS = re.compile(r"ALM_CASSANDRA_(USERNAME|PASSWORD|TLS)|ALM_API_ADMIN_KEY")


def _plain_settings(workload: Doc) -> Settings:
    """The container's settings without the Cassandra credentials, TLS files and the admin
    key (checked on their own in test_every_container_environment_is_accepted)."""
    env = {
        name: entry["value"]
        for name, entry in env_of(workload).items()
        if "value" in entry and not _CREDENTIALS.match(name)
    }
    return Settings.from_env(env)


def _only(docs: list[Doc], command: str) -> Doc:
    [found] = [d for d in of_kind(docs, "Deployment") if _command(d).command == command]
    return found


@pytest.mark.parametrize("case", CASES)
def test_container_args_are_real_alm_commands(case: str) -> None:
    """Every container's args parse with `alm`'s own argument parser, and the image is the
    one the values name."""
    docs = render(*CASES[case])
    image = values(case)["image"]
    for workload in workloads(docs):
        _command(workload)
        assert container(workload)["image"].startswith(image["repository"] + ":")


def test_services_and_jobs_present() -> None:
    """The API, one scheduler and one notifier (never rolled into a second one), the
    aggregator, the fetchers and both setup jobs are deployed."""
    docs = render(*CASES["minimal"])
    commands = {_command(d).command for d in of_kind(docs, "Deployment")}
    assert commands == {"api", "scheduler", "aggregator", "fetcher", "notifier"}
    for single in ("scheduler", "notifier"):
        deployment = _only(docs, single)
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
    jobs = {tuple(container(j)["args"][:2]) for j in of_kind(docs, "Job")}
    assert jobs == {("db", "migrate"), ("topics", "create")}


def test_values_list_exactly_the_registered_sources() -> None:
    """values.yaml and values.schema.json name every source of the registry and no other;
    the ones enabled by default are those that run without credentials."""
    defaults = values("minimal")["sources"]
    schema = json.loads((ROOT / "deploy/helm/alm/values.schema.json").read_text())
    assert set(defaults) == set(SOURCES)
    assert set(schema["properties"]["sources"]["properties"]) == set(SOURCES)
    runnable = {n for n, s in SOURCES.items() if s.missing_config(SourceConfig()) is None}
    assert {n for n, s in defaults.items() if s["enabled"]} == runnable


@pytest.mark.parametrize("case", CASES)
def test_a_fetcher_per_enabled_source_and_every_service_schedules_them(case: str) -> None:
    """One fetcher Deployment per enabled source; ALM_SOURCES, shared by every service (the
    scheduler sends them requests, the API and the Jobs schedule the works they register from
    exactly those sources), names exactly those, and a fetcher narrows it with --source."""
    docs = render(*CASES[case])
    enabled = {n for n, s in values(case)["sources"].items() if s["enabled"]}
    assert set(_fetchers(docs)) == enabled
    for workload in workloads(docs):
        assert set(_plain_settings(workload).sources) == enabled, workload["metadata"]["name"]


@cache
def _literals() -> frozenset[str]:
    """Every ALM_* string literal in services/ (the names the code reads)."""
    found = set()
    for path in Path(services.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update(re.findall(r"ALM_[A-Z0-9_]+", node.value))
    return frozenset(found)


_PER_SOURCE = {"_API_KEY": "api_keys", "_RATE": "rates", "_BASE_URL": "base_urls"}


def _read_per_source(name: str) -> bool:
    """Whether Settings.from_env files `name` under a registered source (or the default)."""
    if "__" in name:
        source, _, key = name[4:].partition("__")
        settings = Settings.from_env({name: "x"})
        plugin = Path(services.__file__).parent / "fetchers"
        used = any(f'"{key.lower()}"' in p.read_text() for p in plugin.rglob("*.py"))
        return source.lower() in SOURCES and used and key.lower() in settings.extras[source.lower()]
    for suffix, field in _PER_SOURCE.items():
        if name.endswith(suffix):
            mapping = getattr(Settings.from_env({name: "1"}), field)
            return set(mapping) <= set(SOURCES) and len(mapping) == 1
    if name.endswith("_REFRESH"):
        intervals = Settings.from_env({name: "1d,2d,3d"}).intervals
        return set(intervals) <= {*SOURCES, "default"} and len(intervals) == 1
    return False


@pytest.mark.parametrize("case", CASES)
def test_environment_variables_are_ones_the_code_reads(case: str) -> None:
    """Every ALM_* variable of every container is a name the code reads, or a per-source
    setting of a registered source that Settings.from_env files under it (an ALM_<SOURCE>__KEY
    one, a key its plug-in reads)."""
    literals = _literals()
    names = {n for w in workloads(render(*CASES[case])) for n in env_of(w) if n.startswith("ALM_")}
    assert names
    unread = {n for n in names if n not in literals and not _read_per_source(n)}
    assert not unread, f"the code reads no {sorted(unread)}"


def _mounted(workload: Doc, path: str) -> bool:
    mounts = container(workload).get("volumeMounts", [])
    return any(path.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts)


@pytest.mark.parametrize("case", CASES)
def test_every_container_environment_is_accepted(case: str, tmp_path: Path) -> None:
    """Settings.from_env accepts each container's environment as rendered: Secret references
    become values, and each file a variable names is on a volume the container mounts."""
    for workload in workloads(render(*CASES[case])):
        env = {}
        for name, entry in env_of(workload).items():
            value = entry.get("value", "secret-value")
            if name.endswith(_FILES):
                assert _mounted(workload, value), f"{name}={value} is on no mounted volume"
                value = str(tmp_path / name)
                secret = new_secret_key() if name == "ALM_API_ADMIN_KEY_FILE" else "secret-value"
                Path(value).write_text(secret + "\n")
            env[name] = value
        settings = Settings.from_env(env)
        settings.policy()
        assert (settings.bus, settings.store) == ("kafka", "cassandra")


def test_cassandra_credentials_and_tls_reach_the_store() -> None:
    """With every option on, the store logs in and verifies TLS as the values say; the setup
    Job that creates topics gets no Cassandra settings it could not use."""
    docs = render(*CASES["all-on-values"])
    api = env_of(_only(docs, "api"))
    assert api["ALM_CASSANDRA_USERNAME"]["value"] == "alm"
    assert api["ALM_CASSANDRA_TLS_NO_VERIFY_HOSTNAME"]["value"] == "true"
    assert {"ALM_CASSANDRA_TLS_CA", "ALM_CASSANDRA_TLS_CERT", "ALM_CASSANDRA_TLS_KEY"} <= set(api)
    [topics] = [j for j in of_kind(docs, "Job") if container(j)["args"][0] == "topics"]
    assert not [n for n in env_of(topics) if _CREDENTIALS.match(n)]
    assert [v["name"] for v in pod_spec(topics)["volumes"]] == ["tmp"]
    existing = env_of(_only(render(*CASES["existing-secrets-values"]), "api"))
    assert existing["ALM_CASSANDRA_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-superuser",
        "key": "username",
    }


def test_access_values_reach_the_api_only(tmp_path: Path) -> None:
    """api.access becomes the API's access settings (the admin key Secret mounted where
    ALM_API_ADMIN_KEY_FILE points), api.workCache* its works cache; no other workload gets
    ALM_API_* settings; config.backpressure reaches the scheduler."""
    docs = render(*CASES["all-on-values"])
    api = _only(docs, "api")
    env = env_of(api)
    assert _mounted(api, env["ALM_API_ADMIN_KEY_FILE"]["value"])
    volume = next(v for v in pod_spec(api)["volumes"] if v["name"] == "admin-key")
    assert volume["secret"]["secretName"] == "alm-admin-key"
    assert volume["secret"]["items"] == [{"key": "admin-key", "path": "admin.key"}]
    key = tmp_path / "admin.key"
    key.write_text(new_secret_key())
    plain = {n: e["value"] for n, e in env.items() if "value" in e and not _CREDENTIALS.match(n)}
    settings = Settings.from_env({**plain, "ALM_API_ADMIN_KEY_FILE": str(key)})
    assert (settings.work_cache_seconds, settings.work_cache_mb) == (10.0, 32)
    access = settings.access
    assert access.require_key and not access.signup
    assert (str(access.rate_anonymous), str(access.rate_reader), str(access.rate_signup)) == (
        "30/min",
        "20/s",
        "3/d",
    )
    assert access.rate_admin is None and access.key_cache_seconds == 2.5
    assert [str(n) for n in access.trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]
    assert access.admin_key == key.read_text()
    for workload in workloads(docs):
        if workload is not api:
            assert not [n for n in env_of(workload) if n.startswith("ALM_API_")], workload
    scheduler = env_of(_only(docs, "scheduler"))
    assert Settings.from_env(
        {"ALM_SCHEDULER_BACKPRESSURE": "x"}
        | {n: e["value"] for n, e in scheduler.items() if "value" in e}
    ).backpressure


@pytest.mark.parametrize("case", CASES)
def test_api_keys_reach_only_their_own_fetcher(case: str) -> None:
    """A fetcher gets at most its own ALM_<SOURCE>_API_KEY, from a Secret."""
    for source, deployment in _fetchers(render(*CASES[case])).items():
        for name, entry in env_of(deployment).items():
            if name.endswith("_API_KEY"):
                assert "secretKeyRef" in entry["valueFrom"], name
                assert Settings.from_env({name: "k"}).api_keys == {source: "k"}


@pytest.mark.parametrize("case", CASES)
def test_the_webhook_settings_reach_the_notifier(case: str) -> None:
    """The webhook settings the values give reach the notifier (who manages webhooks is the
    API keys' business: an admin key, api.access.adminKeySecret)."""
    docs = render(*CASES[case])
    wanted = values(case)["webhooks"]
    notify = _plain_settings(_only(docs, "notifier")).notify
    assert notify.allow_private is wanted["allowPrivate"]
    assert notify.max_failures == wanted["maxFailures"]
    assert notify.webhook_timeout == wanted["timeoutSeconds"]


@pytest.mark.parametrize("case", CASES)
def test_aggregator_replicas_fit_the_partitions(case: str) -> None:
    """The aggregator (or its autoscaler's maximum) has no more replicas than `alm topics
    create` makes partitions."""
    docs = render(*CASES[case])
    aggregator = _only(docs, "aggregator")
    scaled = [
        s for s in of_kind(docs, "ScaledObject") if s["metadata"]["name"].endswith("-aggregator")
    ]
    most = scaled[0]["spec"]["maxReplicaCount"] if scaled else aggregator["spec"]["replicas"]
    topics = [j for j in of_kind(docs, "Job") if container(j)["args"][:2] == ["topics", "create"]]
    partitions = _command(topics[0]).partitions if topics else values(case)["kafka"]["partitions"]
    assert 1 <= most <= partitions


@pytest.mark.parametrize("case", CASES)
def test_keda_follows_the_groups_and_topics_the_code_consumes(case: str) -> None:
    """Each ScaledObject watches the consumer group and topic its Deployment's code reads."""
    docs = render(*CASES[case])
    prefix = values(case)["kafka"]["topicPrefix"]
    groups: dict[str, tuple[str, str]] = {}
    for source in SOURCES:
        bus = MemoryBus()
        FetcherService(SOURCES[source], bus, None, None, SourceConfig(), Policy(), lambda: None)  # type: ignore[arg-type]
        [group] = bus.topic(refresh_topic(source)).committed
        groups[f"fetcher-{source}"] = (prefix + group, prefix + refresh_topic(source))
    assert Aggregator.GROUP == APP_ID
    groups["aggregator"] = (prefix + APP_ID, prefix + TOPIC_RAW)
    for scaled in of_kind(docs, "ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        assert scaled["metadata"]["name"] == target
        [trigger] = scaled["spec"]["triggers"]
        key = target.removeprefix(f"{target.split('-')[0]}-").removeprefix("all-")
        watched = (trigger["metadata"]["consumerGroup"], trigger["metadata"]["topic"])
        assert watched == groups[key], target
        deployment = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == target)
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"


@pytest.mark.parametrize("case", CASES)
def test_probes_and_scrapes_point_at_what_the_processes_serve(case: str) -> None:
    """The API's probes are /readyz and /healthz on the port its args bind; every service, the
    API too, serves /metrics on ALM_METRICS_PORT, the port named `metrics` that scrape
    annotations and monitors use (a worker's probes too); the API's public Service forwards only
    to `http`, so /metrics is never published with the API."""
    docs = render(*CASES[case])
    annotate = values(case)["metrics"]["podAnnotations"]
    for deployment in of_kind(docs, "Deployment"):
        spec = container(deployment)
        args = _command(deployment)
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        settings = _plain_settings(deployment)
        assert settings.host == "0.0.0.0" and settings.api_public_metrics is False
        if args.command == "api":
            assert ports == {"http": args.port, "metrics": settings.metrics_port}
            assert args.host == "0.0.0.0" and args.port != settings.metrics_port
            assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        else:
            assert ports == {"metrics": settings.metrics_port}
            for probe in ("readinessProbe", "livenessProbe"):
                assert spec[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        if annotate:
            assert annotations["prometheus.io/scrape"] == "true"
            assert annotations["prometheus.io/port"] == str(settings.metrics_port)
            assert annotations["prometheus.io/path"] == "/metrics"
        else:
            assert "prometheus.io/scrape" not in annotations
    for monitor in of_kind(docs, "PodMonitor"):
        assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    for monitor in of_kind(docs, "ServiceMonitor"):
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        [selected] = [
            s for s in of_kind(docs, "Service") if wanted <= s["metadata"]["labels"].items()
        ]
        assert [p["name"] for p in selected["spec"]["ports"]] == ["metrics"]
    public = [s for s in of_kind(docs, "Service") if s["metadata"]["name"].endswith("-api")]
    assert [[p["targetPort"] for p in s["spec"]["ports"]] for s in public] == [["http"]]


def test_the_chart_carries_the_one_copy_of_rules_and_dashboard() -> None:
    """deploy/prometheus and deploy/grafana link to the chart's files, and the PrometheusRule
    and the dashboard ConfigMap hold exactly their content."""
    chart_files = ROOT / "deploy" / "helm" / "alm" / "files"
    for link, target in ((RULES, "alm-rules.yml"), (DASHBOARD, "alm-dashboard.json")):
        assert link.is_symlink() and link.resolve() == (chart_files / target).resolve()
    docs = render(*CASES["all-on-values"])
    [rule] = of_kind(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    [dashboard] = of_kind(docs, "ConfigMap")
    assert json.loads(dashboard["data"]["alm-dashboard.json"]) == json.loads(DASHBOARD.read_text())
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_every_container_has_requests_and_limits() -> None:
    """Each container declares CPU and memory requests and limits."""
    for case in CASES:
        for workload in workloads(render(*CASES[case])):
            resources = container(workload)["resources"]
            for part in ("requests", "limits"):
                assert set(resources[part]) == {"cpu", "memory"}, workload["metadata"]["name"]
            assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True


# -- Prometheus rules and the Grafana dashboard ----------------------------------------------

_SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum"),
    "Summary": ("", "_count", "_sum"),
}


@cache
def _definitions() -> dict[str, tuple[str, set[str]]]:
    """Metric family -> (type, label names), read from the definitions in the telemetry
    modules (services/fetchers/telemetry.py, services/telemetry/)."""
    out: dict[str, tuple[str, set[str]]] = {}
    nodes = (n for m in TELEMETRY for n in ast.walk(ast.parse(Path(m.__file__).read_text())))
    for node in nodes:
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


@cache
def _telemetry() -> dict[str, set[str]]:
    """Exported sample name -> label names."""
    return {
        name + suffix: labels | ({"le"} if suffix == "_bucket" else set())
        for name, (kind, labels) in _definitions().items()
        for suffix in _SUFFIXES[kind]
    }


def test_telemetry_parse_finds_every_metric() -> None:
    """The AST reading of the telemetry modules finds every metric object they define."""
    defined = {
        metric.name
        for module in TELEMETRY
        for value in vars(module).values()
        if isinstance(value, MetricWrapperBase)
        for metric in value.describe()
    }
    assert defined
    assert defined == set(_definitions())


_FUNCTIONS_AND_KEYWORDS = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}")
_IDENT = re.compile(r"(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)")
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
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
        (name or None, {_MATCHER.match(m)[1] for m in body.split(",") if m.strip()})  # type: ignore[index]
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
            assert name in exported, f"{name} is not exported by the services ({expr})"
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
    """Every metric in the rules is exported by the services (or a recording rule, or a
    prometheus_client default such as process_start_time_seconds), with real label names."""
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    assert recorded and any("alert" in r for r in rules)
    for rule in rules:
        _check(rule["expr"], recorded)


def test_dashboard_uses_only_exported_metrics_and_labels() -> None:
    """Every panel query and variable of the dashboard reads metrics the services export."""
    exprs = list(_dashboard_exprs())
    assert len(exprs) >= 30
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
    """Each exported metric appears in the rules and on the dashboard."""
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
        'alm_api_request_duration_seconds_count{path!~"/metrics"}',
        "alm:nothing:rate5m > 0",
    ):
        with pytest.raises(AssertionError):
            _check(bad, set())


def test_every_alert_says_what_to_do_in_the_operations_guide() -> None:
    """docs/operations.md has a section per alert of the rules, with its severity, and none
    for an alert that does not exist."""
    text = (ROOT / "docs" / "operations.md").read_text()
    documented = dict(re.findall(r"^### (Alm\w+) \((\w+)\)$", text, re.MULTILINE))
    alerts = {r["alert"]: r["labels"]["severity"] for r in _rules() if "alert" in r}
    assert documented == alerts


@pytest.mark.parametrize("case", CASES)
def test_the_grace_period_outlasts_each_services_shutdown_bound(case: str) -> None:
    """Every Deployment gives its pod more time from SIGTERM to SIGKILL than the service may
    take to drain its batch, commit and close (services/shutdown.py), after its preStop sleep,
    with 10 s to spare: Kubernetes never kills a service mid-commit."""
    deployments = of_kind(render(*CASES[case]), "Deployment")
    assert len(deployments) >= 4
    for deployment in deployments:
        spec = pod_spec(deployment)
        command = _command(deployment).command
        grace = spec.get("terminationGracePeriodSeconds", 30)
        pre_stop = container(deployment).get("lifecycle", {}).get("preStop", {})
        sleep = int(pre_stop["exec"]["command"][1]) if pre_stop else 0
        assert grace >= sleep + shutdown.bound(command) + 10, deployment["metadata"]["name"]


def test_the_shutdown_bound_covers_the_drain_the_services_use() -> None:
    """The bound is made of the numbers the code waits: the step loop's and the aggregator's
    drain, and the API's request deadline at the default store timeout."""
    assert embedded.DRAIN_SECONDS == shutdown.DRAIN_SECONDS
    assert aggregator_app.DRAIN_SECONDS == shutdown.DRAIN_SECONDS
    deadline = Settings().api_store_timeout * errors.STORE_CALLS
    assert deadline <= shutdown.API_REQUEST_SECONDS
    assert shutdown.bound("fetcher") == shutdown.DRAIN_SECONDS + shutdown.CLOSE_SECONDS
