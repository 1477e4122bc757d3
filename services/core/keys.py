"""API keys: what a key is, how one is made, checked and stored. Pure: time comes in.

A key reads `alm_<id>_<secret>`: `id` is 12 hex characters, public (it is shown by `alm keys
list` and names the key in logs and in `revoke`), so a presented key is looked up by id, one
row; `secret` is 32 random bytes from `secrets` (256 bits, base64url). Only a SHA-256 digest of
id and secret is stored, never the key; a presented secret is compared with
`hmac.compare_digest`, in constant time.

Why a plain fast hash and not bcrypt/argon2: those are slow on purpose to protect passwords
people choose, which an attacker holding the table can guess from a small space. A 256-bit
random secret has no such space: a leaked digest cannot be reversed or guessed, whatever the
hash costs, so a slow hash would only spend 50-250 ms of CPU on every API request (and hand
anyone sending random keys a way to burn it). A server-side pepper (HMAC with a secret key)
would add nothing against guessing either, and would be one more secret to ship to every API
replica and every `alm keys` and rotate; GitHub and Stripe store their random tokens the same
way (a digest looked up by an identifying part).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.core.quota import parse_rate
from services.core.timeutil import to_iso

KEY_PREFIX = "alm"
ID_CHARS = 12  # hex characters of the public id (48 bits: ids are unique, checked on insert)
SECRET_BYTES = 32
HASH_SCHEME = "sha256-v1"
_KEY = re.compile(r"alm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_KEY_ID = re.compile(r"[0-9a-f]{12}")

NAME_MAX = 100  # characters of a key's name
# What a name may not hold (the OpenAPI document's KeyName pattern says the same): C0 and C1
# controls, line and paragraph separators, zero-width and bidirectional formatting characters
FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
EMAIL_MAX = 254  # RFC 5321's limit on a forward path
LOCAL_MAX = 64  # characters before the @
# local@domain.tld: a local part of visible characters other than @ and quotes, a domain of
# dot-separated labels of letters, digits and inner hyphens (IDN letters too), a TLD of 2+ letters
_LABEL = r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?"
_EMAIL = re.compile(
    r"(?P<local>[^\s@\"<>()\[\],;:\\]+)@"
    rf"(?P<domain>(?:{_LABEL}\.)+(?:[^\W\d_]{{2,63}}|xn--[a-z0-9-]{{1,59}}))",
    re.IGNORECASE,
)


class Role(enum.StrEnum):
    """What a key may do: read, or also write and administer."""

    READER = "reader"
    ADMIN = "admin"


class InvalidField(ValueError):
    """A key's name, email or rate is not acceptable; the message names the field, never
    repeats its value."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: everything but the key itself."""

    key_id: str
    name: str
    role: Role
    secret_hash: str = field(repr=False)  # hex SHA-256 of id and secret (see `digest`)
    created_at: datetime
    revoked_at: datetime | None = None
    rate_per_minute: int | None = None  # None: the role's default; 0: no limit
    email: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def matches(self, secret: str) -> bool:
        """Whether `secret` is this key's (constant-time comparison of the digests)."""
        return hmac.compare_digest(digest(self.key_id, secret), self.secret_hash)

    def shown(self) -> dict[str, Any]:
        """What may be shown of the key (never its digest): the API's and `alm keys`' form."""
        return {
            "id": self.key_id,
            "name": self.name,
            "role": self.role.value,
            "email": self.email,
            "rate_per_minute": self.rate_per_minute,
            "created_at": to_iso(self.created_at),
            "revoked_at": to_iso(self.revoked_at) if self.revoked_at else None,
            "active": self.active,
        }


class KeyStore(Protocol):
    """Where keys live, shared by every API replica (SQLite embedded, Cassandra distributed)."""

    async def add_key(self, key: ApiKey) -> bool:
        """Store a new key; False (nothing written) when a key with its id exists."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not."""

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        """Mark the key revoked at `at` (a key revoked before keeps its first time); the key as
        it is now, or None if there is no such key."""


def digest(key_id: str, secret: str) -> str:
    """The stored form of a key: hex SHA-256 over a scheme tag, its id and its secret."""
    data = f"{HASH_SCHEME}:{key_id}:{secret}".encode()
    return hashlib.sha256(data).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a key in the `alm_<id>_<secret>` form, or None for anything else."""
    found = _KEY.fullmatch(presented)
    return (found.group(1), found.group(2)) if found else None


def valid_key_id(text: str) -> bool:
    """Whether `text` has the form of a key id (12 lower-case hex characters)."""
    return _KEY_ID.fullmatch(text) is not None


def key_id_of(text: str) -> str | None:
    """The id named by `text`: an id itself, or a whole key (its id part); None otherwise."""
    if valid_key_id(text):
        return text
    parts = split_key(text)
    return parts[0] if parts else None


def new_secret_key() -> str:
    """A fresh key in the `alm_<id>_<secret>` form (nothing stored)."""
    key_id = secrets.token_hex(ID_CHARS // 2)
    return f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def record_of(
    key: str,
    name: str,
    role: Role,
    now: datetime,
    rate_per_minute: int | None = None,
    email: str | None = None,
) -> ApiKey:
    """The stored record of `key` (checked: a ValueError if it is not in the key form)."""
    parts = split_key(key)
    if parts is None:
        raise InvalidField("a key reads alm_<12 hex characters>_<43 base64url characters>")
    key_id, secret = parts
    return ApiKey(
        key_id=key_id,
        name=check_name(name),
        role=role,
        secret_hash=digest(key_id, secret),
        created_at=now,
        rate_per_minute=check_rate(rate_per_minute),
        email=check_email(email) if email is not None else None,
    )


def issue(
    name: str,
    role: Role,
    now: datetime,
    rate_per_minute: int | None = None,
    email: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key: its record (to store) and the key itself (to show once, never stored)."""
    key = new_secret_key()
    return record_of(key, name, role, now, rate_per_minute, email), key


def check_name(name: str) -> str:
    """A key's name: at most NAME_MAX characters, not blank, no FORBIDDEN character; the
    surrounding spaces are cut."""
    if len(name) > NAME_MAX:
        raise InvalidField(f"'name' takes at most {NAME_MAX} characters, got {len(name)}")
    if FORBIDDEN.search(name):
        raise InvalidField("'name' must not hold control, line-break or invisible characters")
    if not name.strip():
        raise InvalidField("'name' must not be empty")
    return name.strip()


def check_email(email: str) -> str:
    """An e-mail address of the `local@domain.tld` shape, at most EMAIL_MAX characters, no
    spaces or control characters (the domain's case is folded; the local part's is kept)."""
    if len(email) > EMAIL_MAX:
        raise InvalidField(f"'email' takes at most {EMAIL_MAX} characters, got {len(email)}")
    found = _EMAIL.fullmatch(email)
    if found is None or len(found.group("local")) > LOCAL_MAX:
        raise InvalidField("'email' must be an address of the form name@example.org")
    return f"{found.group('local')}@{found.group('domain').lower()}"


MAX_RATE = 1_000_000  # requests a minute


def check_rate(rate_per_minute: int | None) -> int | None:
    """A key's own rate: None (the role's default), 0 (no limit) or 1 to MAX_RATE a minute."""
    if rate_per_minute is not None and not 0 <= rate_per_minute <= MAX_RATE:
        raise InvalidField(f"'rate' must be 0 (no limit) to {MAX_RATE} requests a minute")
    return rate_per_minute


def parse_key_rate(text: str) -> int:
    """Requests a minute from `N/min`, `N/s` or `N` (a minute), or `unlimited` (0)."""
    try:
        rate = parse_rate(text)
    except ValueError:
        raise InvalidField("'rate' must read N/min, N/s or unlimited") from None
    if rate is None:
        return 0
    if rate.seconds > 60:
        raise InvalidField("'rate' of a key is per minute or per second: N/min, N/s")
    count = rate.count * round(60 / rate.seconds)
    if count > MAX_RATE:
        raise InvalidField(f"'rate' must be 0 (no limit) to {MAX_RATE} requests a minute")
    return count


def by_creation(keys: Sequence[ApiKey]) -> list[ApiKey]:
    """Keys oldest first (ties by id), the order every listing uses."""
    return sorted(keys, key=lambda k: (k.created_at, k.key_id))
