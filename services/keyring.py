"""Making keys over the KeyStore port: a new key (with a fresh id if one is taken), the
bootstrap admin key from the environment (every API replica ensures it), and the local admin
key `alm run` keeps in its data directory so its user can write through the API."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from services.core.keys import ApiKey, KeyStore, Role, issue, record_of, split_key

log = structlog.get_logger("alm.keys")

ID_TRIES = 5  # ids are 48 random bits: a second try is already a one-in-10^14 event
BOOTSTRAP_NAME = "bootstrap admin (ALM_API_ADMIN_KEY)"
LOCAL_ADMIN_NAME = "local admin (alm run)"
LOCAL_ADMIN_FILE = "admin.key"


class KeyConflict(RuntimeError):
    """A configured key's id belongs to another stored key."""


async def create_key(
    keys: KeyStore,
    name: str,
    role: Role,
    now: datetime,
    rate_per_minute: int | None = None,
    email: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; its record and the key itself (shown once, never stored)."""
    for _ in range(ID_TRIES):
        record, secret = issue(name, role, now, rate_per_minute, email)
        if await keys.add_key(record):
            log.info("key_created", key_id=record.key_id, role=role.value)
            return record, secret
    raise RuntimeError(f"no free key id in {ID_TRIES} tries")


async def ensure_key(keys: KeyStore, key: str, name: str, role: Role, now: datetime) -> ApiKey:
    """`key` stored (added if its id is unknown); a revoked one stays revoked. KeyConflict if
    its id is another key's."""
    parts = split_key(key)
    if parts is None:
        raise ValueError("not an ALM key")
    key_id, secret = parts
    stored = await keys.get_key(key_id)
    if stored is None:
        record = record_of(key, name, role, now)
        if await keys.add_key(record):
            log.info("key_bootstrapped", key_id=key_id, role=role.value)
            return record
        stored = await keys.get_key(key_id)  # another replica stored it meanwhile
    if stored is None or not stored.matches(secret):
        raise KeyConflict(f"the configured key's id {key_id} belongs to another stored key")
    if not stored.active:
        log.warning("bootstrap_key_revoked", key_id=key_id)
    return stored


@dataclass(frozen=True, slots=True)
class LocalAdmin:
    """The admin key file of an embedded data directory, and what `ensure_local_admin` did."""

    path: Path
    created: bool
    usable: bool  # the file holds an active admin key


async def ensure_local_admin(keys: KeyStore, data_dir: Path, now: datetime) -> LocalAdmin:
    """Make sure the embedded user can write through the API: when no active admin key exists
    at all, create one and write it to DATA_DIR/admin.key (mode 0600). An admin key that was
    revoked is not replaced while another active admin key exists."""
    path = data_dir / LOCAL_ADMIN_FILE
    if await _holds_admin_key(keys, path):
        return LocalAdmin(path, created=False, usable=True)
    if any(k.active and k.role is Role.ADMIN for k in await keys.list_keys()):
        return LocalAdmin(path, created=False, usable=False)
    _, secret = await create_key(keys, LOCAL_ADMIN_NAME, Role.ADMIN, now)
    await asyncio.to_thread(_write_private, path, secret + "\n")
    return LocalAdmin(path, created=True, usable=True)


async def _holds_admin_key(keys: KeyStore, path: Path) -> bool:
    try:
        text = await asyncio.to_thread(path.read_text)
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    parts = split_key(text.strip())
    if parts is None:
        return False
    stored = await keys.get_key(parts[0])
    return (
        stored is not None
        and stored.active
        and stored.role is Role.ADMIN
        and stored.matches(parts[1])
    )


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only, replacing it in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)  # an existing .tmp keeps its mode through O_CREAT
    os.replace(tmp, path)
