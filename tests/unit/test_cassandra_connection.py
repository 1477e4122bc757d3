"""Cassandra credentials and TLS: ALM_CASSANDRA_* settings, and the driver Cluster they build
(building a Cluster resolves the contact points but does not connect)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

from services.adapters.cassandra import CassandraConnection, CassandraStore
from services.adapters.cassandra.session import CqlSession
from services.bootstrap import make_store
from services.cli.main import main
from services.settings import Settings

# A self-signed CA certificate (public part only; its key was thrown away), valid to 2126.
CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBgjCCASmgAwIBAgIUGH5a6m5s16vj3e+Kt41S7Do4T5cwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLQUxNIHRlc3QgQ0EwIBcNMjYxMTI1MTUzMTI3WhgPMjEyNjEx
MDExNTMxMjdaMBYxFDASBgNVBAMMC0FMTSB0ZXN0IENBMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEEM/MPnrV4Xfd7/PxalTbulWy8xLY77AqxkzqNGAITOCmnnIO
YPy8kbIOLP3eVVr29B64VZpJe4AY8VVDSEWZN6NTMFEwHQYDVR0OBBYEFF51UbTD
WpES5miVAUYtWigptbdLMB8GA1UdIwQYMBaAFF51UbTDWpES5miVAUYtWigptbdL
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgTIaoU7m2xPYj9EnK
s3f7Li9BDeZRewjMIhJ4JnlSz1wCIEXDWngSQfRx4ZfoPy2AAJS82wC2huLrkkOi
Hd5YAQDk
-----END CERTIFICATE-----
"""


def _conn(env: dict[str, str]) -> CassandraConnection:
    return CassandraConnection.from_env(Settings.from_env(env).cassandra_env)


@contextmanager
def _cluster(connection: CassandraConnection | None) -> Iterator[Cluster]:
    """The Cluster a session with `connection` would connect with (shut down afterwards)."""
    cluster = CqlSession(["127.0.0.1"], 9042, "alm", connection=connection)._new_cluster()
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Paths of a CA bundle, a client certificate and key, and a password file."""
    contents = {
        "ca": CA_PEM,
        "cert": "not a certificate\n",
        "key": "not a key\n",
        "password": "s3 cret\n",
    }
    for name, text in contents.items():
        (tmp_path / name).write_text(text)
    return {name: str(tmp_path / name) for name in contents}


# -- settings -----------------------------------------------------------------------------


def test_defaults_are_no_credentials_and_no_tls() -> None:
    conn = _conn({})
    assert conn == CassandraConnection()
    assert (conn.username, conn.password, conn.tls) == (None, None, False)
    assert conn.verify_hostname is True
    assert conn.ssl_context() is None


def test_empty_values_count_as_unset() -> None:
    """Empty variables (a site.env line left blank) mean the default, not an empty password."""
    env = {
        "ALM_CASSANDRA_USERNAME": "",
        "ALM_CASSANDRA_PASSWORD": "",
        "ALM_CASSANDRA_PASSWORD_FILE": "",
        "ALM_CASSANDRA_TLS": "",
        "ALM_CASSANDRA_TLS_CA": "",
        "ALM_CASSANDRA_TLS_NO_VERIFY_HOSTNAME": "",
    }
    assert _conn(env) == CassandraConnection()


def test_username_and_password() -> None:
    conn = _conn({"ALM_CASSANDRA_USERNAME": "alm", "ALM_CASSANDRA_PASSWORD": "pw"})
    assert (conn.username, conn.password) == ("alm", "pw")
    assert conn.tls is False


def test_password_file_without_its_final_line_break(files: dict[str, str]) -> None:
    conn = _conn(
        {"ALM_CASSANDRA_USERNAME": "alm", "ALM_CASSANDRA_PASSWORD_FILE": files["password"]}
    )
    assert conn.password == "s3 cret"  # inner space kept, trailing newline dropped


def test_password_file_with_crlf_and_no_newline(tmp_path: Path) -> None:
    crlf, bare = tmp_path / "crlf", tmp_path / "bare"
    crlf.write_bytes(b"pw\r\n")
    bare.write_bytes(b"pw \n\n")  # only the last line break goes
    user = {"ALM_CASSANDRA_USERNAME": "alm"}
    assert _conn({**user, "ALM_CASSANDRA_PASSWORD_FILE": str(crlf)}).password == "pw"
    assert _conn({**user, "ALM_CASSANDRA_PASSWORD_FILE": str(bare)}).password == "pw \n"


def test_repr_hides_the_password(files: dict[str, str]) -> None:
    for env in (
        {"ALM_CASSANDRA_USERNAME": "alm-user", "ALM_CASSANDRA_PASSWORD": "hunter2-secret"},
        {"ALM_CASSANDRA_USERNAME": "alm-user", "ALM_CASSANDRA_PASSWORD_FILE": files["password"]},
    ):
        settings = Settings.from_env(env)
        connection = _conn(env)
        password = connection.password
        assert password
        for text in (repr(settings), str(settings), repr(connection)):
            assert password not in text
            assert "alm-user" in text  # the rest is still shown


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ALM_CASSANDRA_USERNAME": "alm"},
            "ALM_CASSANDRA_USERNAME is set but ALM_CASSANDRA_PASSWORD",
        ),
        ({"ALM_CASSANDRA_PASSWORD": "pw"}, "password is set but ALM_CASSANDRA_USERNAME is not"),
        (
            {"ALM_CASSANDRA_PASSWORD_FILE": "{password}"},
            "password is set but ALM_CASSANDRA_USERNAME is not",
        ),
        (
            {
                "ALM_CASSANDRA_USERNAME": "alm",
                "ALM_CASSANDRA_PASSWORD": "pw",
                "ALM_CASSANDRA_PASSWORD_FILE": "{password}",
            },
            "ALM_CASSANDRA_PASSWORD and ALM_CASSANDRA_PASSWORD_FILE are both set",
        ),
        (
            {"ALM_CASSANDRA_USERNAME": "alm", "ALM_CASSANDRA_PASSWORD_FILE": "{missing}"},
            "ALM_CASSANDRA_PASSWORD_FILE=.*: no such file",
        ),
        (
            {"ALM_CASSANDRA_USERNAME": "alm", "ALM_CASSANDRA_PASSWORD_FILE": "{empty}"},
            "ALM_CASSANDRA_PASSWORD_FILE=.* is empty",
        ),
        (
            {"ALM_CASSANDRA_TLS_CERT": "{cert}"},
            "ALM_CASSANDRA_TLS_CERT is set but ALM_CASSANDRA_TLS_KEY is not",
        ),
        (
            {"ALM_CASSANDRA_TLS_KEY": "{key}"},
            "ALM_CASSANDRA_TLS_KEY is set but ALM_CASSANDRA_TLS_CERT is not",
        ),
        ({"ALM_CASSANDRA_TLS_CA": "{missing}"}, "ALM_CASSANDRA_TLS_CA=.*: no such file"),
        ({"ALM_CASSANDRA_TLS": "maybe"}, "ALM_CASSANDRA_TLS must be true or false, not 'maybe'"),
        (
            {"ALM_CASSANDRA_TLS_NO_VERIFY_HOSTNAME": "sometimes"},
            "ALM_CASSANDRA_TLS_NO_VERIFY_HOSTNAME must be true or false",
        ),
        (
            {"ALM_CASSANDRA_TLS": "false", "ALM_CASSANDRA_TLS_CA": "{ca}"},
            "ALM_CASSANDRA_TLS is false but ALM_CASSANDRA_TLS_CA",
        ),
    ],
)
def test_configuration_errors_name_the_variable(
    files: dict[str, str], tmp_path: Path, env: dict[str, str], message: str
) -> None:
    (tmp_path / "empty").write_text("\n")
    paths = {**files, "empty": str(tmp_path / "empty"), "missing": str(tmp_path / "nope")}
    env = {k: v.format(**paths) for k, v in env.items()}
    with pytest.raises(ValueError, match=message):
        _conn(env)


def test_bad_configuration_stops_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm` reports the error and exits 2 before doing anything."""
    monkeypatch.setenv("ALM_CASSANDRA_USERNAME", "alm")
    monkeypatch.delenv("ALM_CASSANDRA_PASSWORD", raising=False)
    monkeypatch.delenv("ALM_CASSANDRA_PASSWORD_FILE", raising=False)
    assert main(["--data-dir", str(tmp_path), "sources"]) == 2
    err = capsys.readouterr().err
    assert "bad configuration" in err and "ALM_CASSANDRA_PASSWORD" in err


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False), ("0", False)],
)
def test_tls_flag_values(value: str, expected: bool) -> None:
    assert _conn({"ALM_CASSANDRA_TLS": value}).tls is expected


def test_tls_files_turn_tls_on(files: dict[str, str]) -> None:
    conn = _conn({"ALM_CASSANDRA_TLS_CA": files["ca"]})
    assert conn.tls is True
    assert conn.tls_ca == Path(files["ca"])
    mutual = _conn(
        {
            "ALM_CASSANDRA_TLS_CERT": files["cert"],
            "ALM_CASSANDRA_TLS_KEY": files["key"],
        }
    )
    assert mutual.tls is True
    assert (mutual.tls_cert, mutual.tls_key) == (
        Path(files["cert"]),
        Path(files["key"]),
    )


# -- the Cluster the session builds -------------------------------------------------------


def test_cluster_without_credentials_or_tls() -> None:
    for connection in (None, CassandraConnection()):
        with _cluster(connection) as cluster:
            assert cluster.auth_provider is None
            assert cluster.ssl_context is None
            assert cluster.ssl_options is None


def test_cluster_gets_a_plain_text_auth_provider(files: dict[str, str]) -> None:
    conn = _conn(
        {"ALM_CASSANDRA_USERNAME": "alm", "ALM_CASSANDRA_PASSWORD_FILE": files["password"]}
    )
    with _cluster(conn) as cluster:
        provider = cluster.auth_provider
        assert isinstance(provider, PlainTextAuthProvider)
        assert (provider.username, provider.password) == ("alm", "s3 cret")
        assert cluster.ssl_context is None


def test_tls_without_ca_verifies_against_the_system_cas(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[object] = []
    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", lambda self, p: loaded.append(p))
    with _cluster(_conn({"ALM_CASSANDRA_TLS": "true"})) as cluster:
        context = cluster.ssl_context
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.get_ca_certs() == []  # nothing but the (stubbed) system store
        assert cluster.ssl_options is None  # the driver sets server_hostname itself
        assert cluster.auth_provider is None
    assert loaded == [ssl.Purpose.SERVER_AUTH]


def test_tls_with_ca_verifies_against_that_ca_only(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_system_cas(self: ssl.SSLContext, purpose: object) -> None:
        raise AssertionError("system CAs loaded although ALM_CASSANDRA_TLS_CA is set")

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", no_system_cas)
    conn = _conn(
        {
            "ALM_CASSANDRA_TLS_CA": files["ca"],
            "ALM_CASSANDRA_USERNAME": "alm",
            "ALM_CASSANDRA_PASSWORD": "pw",
        }
    )
    with _cluster(conn) as cluster:
        context = cluster.ssl_context
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        (ca,) = context.get_ca_certs()
        assert ca["subject"] == ((("commonName", "ALM test CA"),),)
        assert isinstance(cluster.auth_provider, PlainTextAuthProvider)


def test_no_verify_hostname_still_verifies_the_certificate(files: dict[str, str]) -> None:
    conn = _conn(
        {"ALM_CASSANDRA_TLS_CA": files["ca"], "ALM_CASSANDRA_TLS_NO_VERIFY_HOSTNAME": "true"}
    )
    assert conn.verify_hostname is False
    with _cluster(conn) as cluster:
        context = cluster.ssl_context
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname is False
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert len(context.get_ca_certs()) == 1


def test_mutual_tls_loads_the_client_certificate(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "ALM_CASSANDRA_TLS_CA": files["ca"],
        "ALM_CASSANDRA_TLS_CERT": files["cert"],
        "ALM_CASSANDRA_TLS_KEY": files["key"],
    }
    # the fixture's files are not PEM: the real loader refuses them, so it did read them
    with pytest.raises(ssl.SSLError):
        _conn(env).ssl_context()

    chains: list[tuple[object, object]] = []

    def load_cert_chain(self: ssl.SSLContext, certfile: object, keyfile: object) -> None:
        chains.append((certfile, keyfile))

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", load_cert_chain)
    with _cluster(_conn(env)) as cluster:
        assert isinstance(cluster.ssl_context, ssl.SSLContext)
    assert chains == [(Path(files["cert"]), Path(files["key"]))]


# -- wiring: settings -> make_store -> CassandraStore -> CqlSession ------------------------


def test_make_store_passes_the_connection_through(files: dict[str, str]) -> None:
    settings = Settings.from_env(
        {
            "ALM_STORE": "cassandra",
            "ALM_CASSANDRA_HOSTS": "127.0.0.1",
            "ALM_CASSANDRA_USERNAME": "alm",
            "ALM_CASSANDRA_PASSWORD": "pw",
            "ALM_CASSANDRA_TLS_CA": files["ca"],
        }
    )
    store = make_store(settings)
    assert isinstance(store, CassandraStore)
    session = store._cql
    assert session.connection == _conn(dict(settings.cassandra_env))
    cluster = session._new_cluster()
    try:
        assert cluster.auth_provider.username == "alm"
        assert len(cluster.ssl_context.get_ca_certs()) == 1
    finally:
        cluster.shutdown()


def test_existing_constructor_calls_mean_no_credentials_and_no_tls() -> None:
    store = CassandraStore(["127.0.0.1"], 9042, "alm")
    assert store._cql.connection == CassandraConnection()
    cluster = store._cql._new_cluster()
    try:
        assert cluster.auth_provider is None
        assert cluster.ssl_context is None
    finally:
        cluster.shutdown()
