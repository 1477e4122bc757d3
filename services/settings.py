"""Settings of every service, read once from the environment in `main()`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.core.staleness import Policy, parse_intervals
from services.fetchers.base import SourceConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_WORKS = REPO_ROOT / "data" / "sample-works.txt"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "upstream"


def per_source(env: Mapping[str, str], suffix: str) -> dict[str, str]:
    """`ALM_<NAME><suffix>` variables by lower-case name (`ALM_CROSSREF_API_KEY` -> crossref)."""
    return {
        key[4 : -len(suffix)].lower(): value
        for key, value in env.items()
        if key.startswith("ALM_") and key.endswith(suffix) and len(key) > 4 + len(suffix)
    }


def source_extras(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """`ALM_<SOURCE>__<KEY>=value` as {source: {key: value}} (e.g. ALM_COUNTER__CUSTOMER_ID)."""
    out: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        if key.startswith("ALM_") and "__" in key:
            source, _, name = key[4:].partition("__")
            if source and name:
                out.setdefault(source.lower(), {})[name.lower()] = value
    return out


@dataclass(frozen=True, slots=True)
class Settings:
    """Where state lives, how services talk, and how upstreams are reached."""

    data_dir: Path = Path(".alm-data")
    host: str = "127.0.0.1"
    port: int = 8080
    bus: str = "memory"  # memory | kafka
    store: str = "sqlite"  # sqlite | cassandra
    kafka_bootstrap: str = "127.0.0.1:9092"
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    keyspace: str = "alm"
    topic_prefix: str = ""  # before every Kafka topic and group name (shared clusters, tests)
    metrics_port: int = 0  # ALM_METRICS_PORT: /metrics of a worker service (0 = not served)
    upstream_root: str | None = None  # the stub upstream: every source at <root>/<source>
    contact_email: str = "alm@example.org"
    sources: tuple[str, ...] = ()  # empty = every registered source
    raw_ttl_days: int = 7
    base_urls: Mapping[str, str] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)  # ALM_<SOURCE>_RATE requests/s
    extras: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # ALM_<SOURCE>__<KEY>
    intervals: Mapping[str, str] = field(default_factory=dict)  # ALM_<SOURCE>_REFRESH=1d,7.5d,30d

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `ALM_*` variables (defaults for the embedded mode)."""
        e = os.environ if env is None else env
        return cls(
            data_dir=Path(e.get("ALM_DATA_DIR", ".alm-data")),
            host=e.get("ALM_HOST", "127.0.0.1"),
            port=int(e.get("ALM_PORT", "8080")),
            bus=e.get("ALM_BUS", "memory"),
            store=e.get("ALM_STORE", "sqlite"),
            kafka_bootstrap=e.get("ALM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            cassandra_hosts=tuple(
                h.strip() for h in e.get("ALM_CASSANDRA_HOSTS", "127.0.0.1").split(",") if h.strip()
            ),
            cassandra_port=int(e.get("ALM_CASSANDRA_PORT", "9042")),
            keyspace=e.get("ALM_CASSANDRA_KEYSPACE", "alm"),
            topic_prefix=e.get("ALM_TOPIC_PREFIX", ""),
            metrics_port=int(e.get("ALM_METRICS_PORT", "0")),
            upstream_root=e.get("ALM_UPSTREAM_ROOT") or None,
            contact_email=e.get("ALM_CONTACT_EMAIL", "alm@example.org"),
            sources=tuple(s.strip() for s in e.get("ALM_SOURCES", "").split(",") if s.strip()),
            raw_ttl_days=int(e.get("ALM_RAW_TTL_DAYS", "7")),
            base_urls=per_source(e, "_BASE_URL"),
            api_keys=per_source(e, "_API_KEY"),
            rates={k: float(v) for k, v in per_source(e, "_RATE").items()},
            extras=source_extras(e),
            intervals=per_source(e, "_REFRESH"),
        )

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (command-line options)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def base_url_for(self, source: str, default: str) -> str:
        """Where calls to `source` go: an explicit override, the stub root, else the real API."""
        if source in self.base_urls:
            return self.base_urls[source]
        if self.upstream_root:
            return f"{self.upstream_root.rstrip('/')}/{source}"
        return default

    def source_config(self, source: str) -> SourceConfig:
        """What the plug-in of `source` may read: contact address, API key, its extra settings."""
        return SourceConfig(
            contact_email=self.contact_email,
            api_key=self.api_keys.get(source),
            extra=self.extras.get(source, {}),
        )

    def policy(self) -> Policy:
        """The staleness policy: defaults, ALM_DEFAULT_REFRESH and per-source overrides."""
        default = self.intervals.get("default")
        per_source = {k: parse_intervals(v) for k, v in self.intervals.items() if k != "default"}
        if default:
            return Policy(default=parse_intervals(default), per_source=per_source)
        return Policy(per_source=per_source)

    @property
    def user_agent(self) -> str:
        """The polite User-Agent with a contact address."""
        return f"ALM/0.1 (https://github.com/alm-metrics/alm; mailto:{self.contact_email})"
