"""Settings of every service, read once from the environment in `main()`."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from services import gctune
from services.core.alerts import Thresholds
from services.core.keys import split_key
from services.core.quota import Rate, parse_rate
from services.core.sources import SourceConfig
from services.core.staleness import Intervals, Policy, parse_duration, parse_intervals
from services.notify_settings import NotifySettings

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


def flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """A true/false variable (also 1/0, yes/no, on/off); unset or empty is `default`."""
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {env[name]!r}")


CASSANDRA_CONNECTION_VARS = (
    "ALM_CASSANDRA_USERNAME",
    "ALM_CASSANDRA_PASSWORD",
    "ALM_CASSANDRA_TLS",
)


class SecretEnv(dict[str, str]):
    """Variables kept as given for an adapter to read; a password's value is never shown."""

    def __repr__(self) -> str:
        shown = {k: "***" if k.endswith("PASSWORD") else v for k, v in self.items()}
        return repr(shown)


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number >= 0 from `name` (unset or empty: `default`), else a ValueError naming it."""
    value = env.get(name, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    return int(value)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """Seconds > 0 from `name` (unset or empty: `default`), else a ValueError naming it."""
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")
    return seconds


def _duration(env: Mapping[str, str], name: str, default: str) -> float:
    """Seconds of a duration (`30s`, `90m`, `6h`, `1d`) from `name`, else a ValueError naming it."""
    value = env.get(name, "").strip() or default
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _existing_file(env: Mapping[str, str], name: str) -> Path | None:
    """The path in `name` (unset or empty: None); a ValueError naming `name` if no such file."""
    value = env.get(name, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{name}={value}: no such file")
    return path


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    """A number from 0 to 1 from `name` (unset or empty: `default`), else a ValueError."""
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0 <= share <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1, not {value!r}")
    return share


def thresholds(env: Mapping[str, str]) -> Thresholds:
    """The data-quality checks' limits from ALM_CHECK_* (ALM's defaults where unset)."""
    d = Thresholds()
    return Thresholds(
        spike_per_day=_count(env, "ALM_CHECK_SPIKE_PER_DAY", d.spike_per_day),
        html_pdf_ratio=_seconds(env, "ALM_CHECK_HTML_PDF_RATIO", d.html_pdf_ratio),
        milestone=_count(env, "ALM_CHECK_MILESTONE", d.milestone),
        stale_days=_count(env, "ALM_CHECK_STALE_DAYS", d.stale_days),
        silent_hours=_count(env, "ALM_CHECK_SILENT_HOURS", d.silent_hours),
        slow_p95_seconds=_seconds(env, "ALM_CHECK_SLOW_P95_SECONDS", d.slow_p95_seconds),
        failure_share=_fraction(env, "ALM_CHECK_FAILURE_SHARE", d.failure_share),
        min_refreshes=_count(env, "ALM_CHECK_MIN_REFRESHES", d.min_refreshes),
        min_calls=_count(env, "ALM_CHECK_MIN_CALLS", d.min_calls),
    )


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number of seconds from `name` (unset or empty: `default`)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The key PLOS built into rOpenSci's alm 0.3 (sent whenever its user set none): a guest, not a key.
PLOS_GUEST_KEY = "rkfDr76z75benY3pytM1"


def _rate(env: Mapping[str, str], name: str, default: Rate | None) -> Rate | None:
    """A rate (`60/min`, `5/h`, `unlimited`) from `name`; unset or empty is `default`."""
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    """Addresses or networks (`10.0.0.0/8,::1`) from `name`."""
    out = []
    for item in env.get(name, "").split(","):
        if item.strip():
            try:
                out.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{name}: {item.strip()!r} is not an address or network") from None
    return tuple(out)


def _admin_key(env: Mapping[str, str]) -> str | None:
    """ALM_API_ADMIN_KEY, or the content of the file ALM_API_ADMIN_KEY_FILE names (a mounted
    Secret); never both; the key must have the `alm_<id>_<secret>` form (never echoed)."""
    key = env.get("ALM_API_ADMIN_KEY", "").strip() or None
    path = _existing_file(env, "ALM_API_ADMIN_KEY_FILE")
    if key is not None and path is not None:
        raise ValueError("ALM_API_ADMIN_KEY and ALM_API_ADMIN_KEY_FILE are both set: use one")
    name = "ALM_API_ADMIN_KEY"
    if path is not None:
        name = "ALM_API_ADMIN_KEY_FILE"
        try:
            key = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{name}={path}: cannot read it ({exc})") from None
    if key is not None and split_key(key) is None:
        raise ValueError(
            f"{name}: not an ALM key (alm_<12 hex>_<43 base64url characters>; "
            "`alm keys generate` makes one)"
        )
    return key


ANONYMOUS_RATE = Rate(120)  # requests a minute per client address
READER_RATE = Rate(1200)  # requests a minute per reader key
SIGNUP_RATE = Rate(5, 3600.0)  # sign-ups an hour per client address


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Who may call the API and how often (services/api/access.py; docs/access.md)."""

    require_key: bool = False  # ALM_API_REQUIRE_KEY: reads need a key too
    rate_anonymous: Rate | None = ANONYMOUS_RATE  # ALM_API_RATE_ANONYMOUS, per client address
    rate_reader: Rate | None = READER_RATE  # ALM_API_RATE_READER, per key (a key may override)
    rate_admin: Rate | None = None  # ALM_API_RATE_ADMIN, per key; None: no limit
    signup: bool = True  # ALM_API_SIGNUP: POST /api/v1/signup issues reader keys
    rate_signup: Rate | None = SIGNUP_RATE  # ALM_API_RATE_SIGNUP, keys per client address
    guest_keys: frozenset[str] = frozenset({PLOS_GUEST_KEY})  # ALM_API_GUEST_KEYS: no key
    key_cache_seconds: float = 10.0  # ALM_API_KEY_CACHE_SECONDS: a revocation shows within it
    trusted_proxies: tuple[Network, ...] = ()  # ALM_API_TRUSTED_PROXIES: read X-Forwarded-For
    admin_key: str | None = field(default=None, repr=False)  # ALM_API_ADMIN_KEY[_FILE]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AccessSettings:
        """From the ALM_API_* variables above; a ValueError naming a wrong one."""
        guests = env.get("ALM_API_GUEST_KEYS")
        d = cls()
        return cls(
            require_key=flag(env, "ALM_API_REQUIRE_KEY"),
            rate_anonymous=_rate(env, "ALM_API_RATE_ANONYMOUS", d.rate_anonymous),
            rate_reader=_rate(env, "ALM_API_RATE_READER", d.rate_reader),
            rate_admin=_rate(env, "ALM_API_RATE_ADMIN", d.rate_admin),
            signup=flag(env, "ALM_API_SIGNUP", default=True),
            rate_signup=_rate(env, "ALM_API_RATE_SIGNUP", d.rate_signup),
            guest_keys=d.guest_keys
            if guests is None
            else frozenset(g.strip() for g in guests.split(",") if g.strip()),
            key_cache_seconds=_seconds(env, "ALM_API_KEY_CACHE_SECONDS", d.key_cache_seconds),
            trusted_proxies=_networks(env, "ALM_API_TRUSTED_PROXIES"),
            admin_key=_admin_key(env),
        )


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
    # ALM_CASSANDRA_USERNAME, _PASSWORD[_FILE], _TLS*: read by adapters/cassandra/settings.py
    cassandra_env: Mapping[str, str] = field(default_factory=lambda: SecretEnv())
    topic_prefix: str = ""  # before every Kafka topic and group name (shared clusters, tests)
    metrics_port: int = 0  # ALM_METRICS_PORT: /metrics on a listener of its own (0 = none)
    api_public_metrics: bool = False  # ALM_API_PUBLIC_METRICS: /metrics on the API port too
    access: AccessSettings = field(default_factory=AccessSettings)  # ALM_API_* keys and quotas
    upstream_root: str | None = None  # the stub upstream: every source at <root>/<source>
    contact_email: str = "alm@example.org"
    sources: tuple[str, ...] = ()  # empty = every registered source
    raw_ttl_days: int = 7  # ALM_RAW_TTL_DAYS: upstream bodies kept (0: none)
    alerts_ttl_days: int = 90  # ALM_ALERTS_TTL_DAYS: data-quality alerts kept
    checks: Thresholds = field(default_factory=Thresholds)  # ALM_CHECK_*
    checks_seconds: float = 3600.0  # ALM_CHECKS_INTERVAL: between periodic checks
    stale_scan_seconds: float = 86400.0  # ALM_CHECKS_STALE_INTERVAL: between stale scans
    audit_textfile: str | None = None  # ALM_AUDIT_TEXTFILE: `alm audit` gauges, textfile collector
    audit_pushgateway: str | None = None  # ALM_AUDIT_PUSHGATEWAY: ... or pushed there
    status_cache_seconds: float = 30.0  # ALM_STATUS_CACHE_SECONDS: API whole-table counts
    work_cache_seconds: float = 300.0  # ALM_API_WORK_CACHE_SECONDS: works' answers kept (0: none)
    work_cache_mb: int = 64  # ALM_API_WORK_CACHE_MB: ... in at most this much memory
    api_store_timeout: float = 3.0  # ALM_API_STORE_TIMEOUT: seconds an API store call may take
    # ALM_RETRY_BASE, ALM_RETRY_MAX, ALM_RETRY_ATTEMPTS: a failed fetch is tried again after
    # BASE, doubling up to MAX, ATTEMPTS times in all, then dead-lettered (until its next refresh)
    retry: tuple[str, str, str] = ("5m", "6h", "5")
    # ALM_SOURCE_FAILURE_LIMIT: failed upstream calls in 24 h after which a source is paused
    # until resumed (ALM's 200); 0 never pauses for failures (refused credentials still do)
    source_failure_limit: int = 200
    gc_threshold: tuple[int, int, int] | None = gctune.DEFAULT  # ALM_GC_THRESHOLD (gctune.py)
    event_window: int = 10_000  # ALM_EVENT_WINDOW: records an unread in-process topic keeps
    reconcile_seconds: float = 6 * 3600.0  # ALM_RECONCILE_INTERVAL: between reconcile passes
    backpressure: bool = True  # ALM_SCHEDULER_BACKPRESSURE: over Kafka too (docs/operations.md)
    shutdown_grace: float = 20.0  # ALM_SHUTDOWN_GRACE: seconds SIGTERM may take to drain
    base_urls: Mapping[str, str] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)  # ALM_<SOURCE>_RATE requests/s
    extras: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # ALM_<SOURCE>__<KEY>
    intervals: Mapping[str, str] = field(default_factory=dict)  # ALM_<SOURCE>_REFRESH=1d,7.5d,30d
    notify: NotifySettings = field(default_factory=NotifySettings)  # SSE, webhooks, notifier

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
            cassandra_env=SecretEnv(
                (k, v) for k, v in e.items() if k.startswith(CASSANDRA_CONNECTION_VARS)
            ),
            topic_prefix=e.get("ALM_TOPIC_PREFIX", ""),
            metrics_port=int(e.get("ALM_METRICS_PORT", "0")),
            api_public_metrics=flag(e, "ALM_API_PUBLIC_METRICS"),
            access=AccessSettings.from_env(e),
            upstream_root=e.get("ALM_UPSTREAM_ROOT") or None,
            contact_email=e.get("ALM_CONTACT_EMAIL", "alm@example.org"),
            sources=tuple(s.strip() for s in e.get("ALM_SOURCES", "").split(",") if s.strip()),
            raw_ttl_days=_count(e, "ALM_RAW_TTL_DAYS", 7),
            alerts_ttl_days=_count(e, "ALM_ALERTS_TTL_DAYS", 90),
            checks=thresholds(e),
            checks_seconds=_duration(e, "ALM_CHECKS_INTERVAL", "1h"),
            stale_scan_seconds=_duration(e, "ALM_CHECKS_STALE_INTERVAL", "1d"),
            audit_textfile=e.get("ALM_AUDIT_TEXTFILE") or None,
            audit_pushgateway=e.get("ALM_AUDIT_PUSHGATEWAY") or None,
            status_cache_seconds=float(e.get("ALM_STATUS_CACHE_SECONDS", "30")),
            work_cache_seconds=float(e.get("ALM_API_WORK_CACHE_SECONDS", "300")),
            work_cache_mb=_count(e, "ALM_API_WORK_CACHE_MB", 64),
            api_store_timeout=_positive(e, "ALM_API_STORE_TIMEOUT", 3.0),
            source_failure_limit=_count(e, "ALM_SOURCE_FAILURE_LIMIT", 200),
            retry=(
                e.get("ALM_RETRY_BASE") or "5m",
                e.get("ALM_RETRY_MAX") or "6h",
                e.get("ALM_RETRY_ATTEMPTS") or "5",
            ),
            gc_threshold=gctune.thresholds(e.get("ALM_GC_THRESHOLD")),
            event_window=_count(e, "ALM_EVENT_WINDOW", 10_000),
            reconcile_seconds=_duration(e, "ALM_RECONCILE_INTERVAL", "6h"),
            backpressure=flag(e, "ALM_SCHEDULER_BACKPRESSURE", True),
            shutdown_grace=_seconds(e, "ALM_SHUTDOWN_GRACE", 20.0),
            base_urls=per_source(e, "_BASE_URL"),
            api_keys=per_source(e, "_API_KEY"),
            rates={k: float(v) for k, v in per_source(e, "_RATE").items()},
            extras=source_extras(e),
            intervals=per_source(e, "_REFRESH"),
            notify=NotifySettings.from_env(e),
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
        """The staleness policy: defaults, ALM_DEFAULT_REFRESH and per-source overrides, and
        the retry backoff (ValueError naming the variable that is wrong)."""
        default = self.intervals.get("default")
        per_source = {k: parse_intervals(v) for k, v in self.intervals.items() if k != "default"}
        base, most, attempts = self.retry
        if not attempts.strip().isdigit() or int(attempts) < 1:
            raise ValueError(f"ALM_RETRY_ATTEMPTS must be a whole number from 1, not {attempts!r}")
        try:
            backoff = parse_duration(base), parse_duration(most)
        except ValueError as exc:
            raise ValueError(f"ALM_RETRY_BASE / ALM_RETRY_MAX: {exc}") from None
        return Policy(
            default=parse_intervals(default) if default else Intervals(),
            per_source=per_source,
            retry_base=backoff[0],
            retry_max=backoff[1],
            max_attempts=int(attempts),
        )

    @property
    def user_agent(self) -> str:
        """The polite User-Agent with a contact address."""
        return f"ALM/0.1 (https://github.com/alm-metrics/alm; mailto:{self.contact_email})"
