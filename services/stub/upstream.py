"""The stub upstream's contract: each source answers requests from recorded real-format fixtures.

A source's stub is a subclass of StubUpstream in `services/stub/sources/<source>.py` (the
server finds it by the source's name). Fixtures are `tests/fixtures/upstream/<source>/`:
`records/*.json` are recorded responses (or the per-work objects of a batch API; one that does
not name its DOI is keyed by its file name, the DOI with `/` as `_`), and `errors.json` lists
works whose calls answer with a recorded error shape. In synthetic mode, DOIs under the test
prefix 10.5555 get generated records with deterministic counts (benchmarks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

SYNTHETIC_PREFIX = "10.5555/"


def recorded(path: Path) -> Any:
    """A recorded JSON file, parsed once per process while it is unchanged (a stub is built per
    test server: tests start hundreds). Stubs only read what it returns: never change it."""
    stat = path.stat()
    return _parsed(path, stat.st_mtime_ns, stat.st_size)


def recorded_bytes(path: Path) -> bytes:
    """A recorded body file's bytes, read once per process while it is unchanged."""
    stat = path.stat()
    return _read(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4096)
def _read(path: Path, mtime_ns: int, size: int) -> bytes:
    return path.read_bytes()


@lru_cache(maxsize=4096)
def _parsed(path: Path, mtime_ns: int, size: int) -> Any:
    return json.loads(_read(path, mtime_ns, size))


@dataclass(frozen=True, slots=True)
class StubAnswer:
    """What the stub sends back."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> StubAnswer:
        """A JSON answer."""
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def text(cls, body: str, status: int, content_type: str = "text/plain") -> StubAnswer:
        """A non-JSON answer (plain text, HTML)."""
        return cls(status, body.encode(), {"Content-Type": content_type})


@dataclass(frozen=True, slots=True)
class StubRequest:
    """A request as the stub sees it; `query` keeps repeated parameters."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-case

    def param(self, name: str, default: str = "") -> str:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else default


def synthetic_count(doi: str, salt: str, modulo: int = 500) -> int:
    """A deterministic count for a synthetic DOI (same DOI and salt, same number)."""
    digest = hashlib.blake2b(f"{salt}:{doi}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % modulo


SYNTHETIC_PMID_BASE = 300_000_000  # synthetic PMIDs are 3xxxxxxxx: no real PMID is that large


def synthetic_pmid(doi: str) -> str:
    """The PMID every stub gives a synthetic DOI (the same in each source and each process)."""
    return str(SYNTHETIC_PMID_BASE + synthetic_count(doi.lower(), "pmid", 10**8))


def is_synthetic_pmid(pmid: str) -> bool:
    """Whether `pmid` is one `synthetic_pmid` gives: stubs answer for it in any process, also
    one that never saw its DOI (a restarted stub asked by PMID alone)."""
    return pmid.isdigit() and SYNTHETIC_PMID_BASE <= int(pmid) < SYNTHETIC_PMID_BASE + 10**8


class StubUpstream:
    """Base of a source's stub: loads records keyed by DOI and error recordings."""

    def __init__(self, fixtures: Path, synthetic: bool = False) -> None:
        self.fixtures = fixtures
        self.synthetic = synthetic
        self.records: dict[str, Any] = {}
        for path in sorted((fixtures / "records").glob("*.json")):
            record = recorded(path)
            key = self.record_doi(record) or path.stem.replace("_", "/", 1)
            if key:
                self.records[key.lower()] = record
        self.errors: dict[str, StubAnswer] = {}
        errors_file = fixtures / "errors.json"
        if errors_file.exists():
            for entry in recorded(errors_file):
                body = recorded_bytes(fixtures / entry["body_file"])
                key = entry.get("doi") or entry["key"]  # a DOI, or another id the stub names
                self.errors[key.lower()] = StubAnswer(
                    entry["status"], body, entry.get("headers", {})
                )

    def record_doi(self, record: Any) -> str | None:
        """The DOI a recorded fixture is about."""
        raise NotImplementedError

    def synthesize(self, doi: str) -> Any:
        """A generated record for a synthetic DOI."""
        raise NotImplementedError

    def answer(self, request: StubRequest) -> StubAnswer:
        """Answer one request as the real upstream would."""
        raise NotImplementedError

    def lookup(self, doi: str) -> Any | None:
        """The record for `doi`: recorded, synthetic, or None (unknown to the upstream)."""
        key = doi.lower()
        if key in self.records:
            return self.records[key]
        if self.synthetic and key.startswith(SYNTHETIC_PREFIX):
            return self.synthesize(key)
        return None

    def error_for(self, doi: str) -> StubAnswer | None:
        """The recorded error answer configured for `doi`, if any."""
        return self.errors.get(doi.lower())
