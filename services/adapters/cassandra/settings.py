"""How the Cassandra adapter authenticates and encrypts its connections: CassandraConnection,
read from the ALM_CASSANDRA_* credential and TLS variables (services/settings.py only keeps
them as given, in `Settings.cassandra_env`)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """A true/false variable (1/0, yes/no, on/off too); unset or empty: `default`."""
    raw = env.get(name, "").strip().lower()
    choices = {"true": True, "1": True, "yes": True, "on": True}
    choices |= {"false": False, "0": False, "no": False, "off": False}
    if raw and raw not in choices:
        raise ValueError(f"{name} must be true or false, not {env[name]!r}")
    return choices[raw] if raw else default


def _file(env: Mapping[str, str], name: str) -> Path | None:
    """The file `name` points to (unset or empty: None); a ValueError if there is none."""
    raw = env.get(name, "").strip()
    if raw and not Path(raw).is_file():
        raise ValueError(f"{name}={raw}: no such file")
    return Path(raw) if raw else None


def _password(env: Mapping[str, str]) -> str | None:
    """ALM_CASSANDRA_PASSWORD, or the content of the file ALM_CASSANDRA_PASSWORD_FILE names
    (a mounted Kubernetes Secret) without its final line break; never both."""
    password = env.get("ALM_CASSANDRA_PASSWORD") or None
    if password is not None and env.get("ALM_CASSANDRA_PASSWORD_FILE"):
        raise ValueError(
            "ALM_CASSANDRA_PASSWORD and ALM_CASSANDRA_PASSWORD_FILE are both set: use one"
        )
    path = _file(env, "ALM_CASSANDRA_PASSWORD_FILE")
    if path is None:
        return password
    try:
        content = path.read_text().removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"ALM_CASSANDRA_PASSWORD_FILE={path}: cannot read it ({exc})") from exc
    if not content:
        raise ValueError(f"ALM_CASSANDRA_PASSWORD_FILE={path} is empty")
    return content


@dataclass(frozen=True, slots=True)
class CassandraConnection:
    """How the store authenticates to Cassandra and encrypts its connections. The defaults (no
    credentials, plain TCP) suit a local node; a production cluster usually needs both."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr or a log line
    tls: bool = False
    tls_ca: Path | None = None  # verify the nodes against this CA bundle (else the system's)
    tls_cert: Path | None = None  # client certificate and key (mutual TLS)
    tls_key: Path | None = None
    verify_hostname: bool = True  # the node's certificate must name the address connected to

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CassandraConnection:
        """From ALM_CASSANDRA_USERNAME, ALM_CASSANDRA_PASSWORD[_FILE], ALM_CASSANDRA_TLS,
        ALM_CASSANDRA_TLS_CA, ALM_CASSANDRA_TLS_CERT, ALM_CASSANDRA_TLS_KEY and
        ALM_CASSANDRA_TLS_NO_VERIFY_HOSTNAME; a ValueError naming what is missing or wrong."""
        username = env.get("ALM_CASSANDRA_USERNAME") or None
        password = _password(env)
        if username is None and password is not None:
            raise ValueError("a Cassandra password is set but ALM_CASSANDRA_USERNAME is not")
        if username is not None and password is None:
            raise ValueError(
                "ALM_CASSANDRA_USERNAME is set but ALM_CASSANDRA_PASSWORD "
                "(or ALM_CASSANDRA_PASSWORD_FILE) is not"
            )
        ca = _file(env, "ALM_CASSANDRA_TLS_CA")
        cert = _file(env, "ALM_CASSANDRA_TLS_CERT")
        key = _file(env, "ALM_CASSANDRA_TLS_KEY")
        if cert is not None and key is None:
            raise ValueError("ALM_CASSANDRA_TLS_CERT is set but ALM_CASSANDRA_TLS_KEY is not")
        if key is not None and cert is None:
            raise ValueError("ALM_CASSANDRA_TLS_KEY is set but ALM_CASSANDRA_TLS_CERT is not")
        files = ca is not None or cert is not None
        tls = _flag(env, "ALM_CASSANDRA_TLS", default=files)
        if files and not tls:
            raise ValueError(
                "ALM_CASSANDRA_TLS is false but ALM_CASSANDRA_TLS_CA or ALM_CASSANDRA_TLS_CERT "
                "is set: unset them or set ALM_CASSANDRA_TLS=true"
            )
        return cls(
            username=username,
            password=password,
            tls=tls,
            tls_ca=ca,
            tls_cert=cert,
            tls_key=key,
            verify_hostname=not _flag(env, "ALM_CASSANDRA_TLS_NO_VERIFY_HOSTNAME"),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context (None without TLS): the nodes' certificates are always
        verified (CERT_REQUIRED), against `tls_ca` or else the system's CAs, and their
        hostname unless `verify_hostname` is off; the client certificate if there is one."""
        if not self.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname on
        context.check_hostname = self.verify_hostname
        if self.tls_ca is not None:
            context.load_verify_locations(cafile=self.tls_ca)
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.tls_cert is not None:
            context.load_cert_chain(certfile=self.tls_cert, keyfile=self.tls_key)
        return context
