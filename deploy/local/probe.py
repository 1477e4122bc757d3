"""Readiness probes used by deploy/local/infra-up. Exit 0 when the server answers.

  probe.py kafka PORT      Kafka Metadata v4 request; ready when >= 1 unfenced broker is listed.
  probe.py cassandra PORT  `select release_version from system.local` via cassandra-driver
                           if importable, else a raw CQL OPTIONS -> SUPPORTED exchange.
Standard library only (cassandra-driver is optional).
"""
import socket
import struct
import sys

HOST = "127.0.0.1"


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def kafka(port):
    client_id = b"alm-probe"
    # Request header v1 (api_key=3 Metadata, version 4, correlation id, client id),
    # body v4: topics=null (all), allow_auto_topic_creation=false.
    body = struct.pack(">hhih", 3, 4, 42, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", recv_exact(sock, 4))
        correlation_id, _throttle, brokers = struct.unpack(">iii", recv_exact(sock, size)[:12])
    if correlation_id != 42 or brokers < 1:
        raise RuntimeError(f"broker not ready (brokers={brokers})")
    return f"{brokers} broker(s)"


def cassandra(port):
    try:
        from cassandra.cluster import Cluster
    except ImportError:
        return cql_options(port)
    cluster = Cluster([HOST], port=port, connect_timeout=5, control_connection_timeout=5)
    try:
        row = cluster.connect().execute("select release_version from system.local").one()
        return f"release_version {row.release_version}"
    finally:
        cluster.shutdown()


def cql_options(port):
    # CQL v4 frame: version, flags, stream, opcode OPTIONS (0x05), body length 0.
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(struct.pack(">BBhBi", 0x04, 0, 1, 0x05, 0))
        _version, _flags, _stream, opcode, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
        recv_exact(sock, length)
    if opcode != 0x06:
        raise RuntimeError(f"unexpected CQL opcode {opcode:#x}")
    return "CQL OPTIONS answered"


if __name__ == "__main__":
    try:
        print({"kafka": kafka, "cassandra": cassandra}[sys.argv[1]](int(sys.argv[2])))
    except Exception as exc:  # any failure just means "not ready yet"
        print(f"not ready: {exc}", file=sys.stderr)
        sys.exit(1)
