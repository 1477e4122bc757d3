"""`alm keys create|list|revoke|generate`: API keys in the configured store (the embedded
SQLite file, or Cassandra with ALM_STORE=cassandra), the store every API replica reads."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable

from services.bootstrap import make_key_store, make_store, utc_now
from services.cli.common import UsageError
from services.core.keys import (
    ApiKey,
    InvalidField,
    KeyStore,
    Role,
    check_email,
    check_name,
    key_id_of,
    new_secret_key,
    parse_key_rate,
)
from services.keyring import create_key
from services.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `alm keys ...` subcommands."""
    keys = sub.add_parser("keys", help="API keys: create, list, revoke").add_subparsers(
        dest="keys_cmd", required=True
    )
    create = keys.add_parser("create", help="make a key; prints it on the last line, once")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--rate", help="its own limit: N/min, N/s or unlimited (default: role's)")
    create.add_argument("--email", help="a contact address")
    listing = keys.add_parser("list", help="every key (no secrets)")
    listing.add_argument("--json", action="store_true")
    keys.add_parser("revoke", help="stop a key working").add_argument("id", help="key id")
    keys.add_parser("generate", help="print a new key without storing it (for a Secret)")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Dispatch `alm keys ...`."""
    if args.keys_cmd == "generate":
        print(new_secret_key())
        return 0
    if args.keys_cmd == "create":
        try:
            name = check_name(args.name)
            rate = parse_key_rate(args.rate) if args.rate is not None else None
            email = check_email(args.email) if args.email is not None else None
        except InvalidField as exc:
            raise UsageError(str(exc).replace("'rate'", "--rate")) from None
        return await _with_keys(settings, lambda keys: _create(keys, name, args.role, rate, email))
    if args.keys_cmd == "list":
        return await _with_keys(settings, lambda keys: _list(keys, args.json))
    key_id = key_id_of(args.id)
    if key_id is None:
        raise UsageError("give the key's id (12 hex characters, see `alm keys list`)")
    return await _with_keys(settings, lambda keys: _revoke(keys, key_id))


async def _with_keys(settings: Settings, action: Callable[[KeyStore], Awaitable[int]]) -> int:
    store = make_store(settings)
    try:
        await store.migrate()
        return await action(make_key_store(store))
    finally:
        await store.close()


def _rate_text(key: ApiKey) -> str:
    if key.rate_per_minute is None:
        return "role default"
    return "unlimited" if key.rate_per_minute == 0 else f"{key.rate_per_minute}/min"


async def _create(keys: KeyStore, name: str, role: str, rate: int | None, email: str | None) -> int:
    record, secret = await create_key(keys, name, Role(role), utc_now(), rate, email)
    print(
        f"created {record.role.value} key {record.key_id} ({record.name}), rate "
        f"{_rate_text(record)}. The key, shown this once:"
    )
    print(secret, flush=True)
    return 0


async def _list(keys: KeyStore, as_json: bool) -> int:
    found = await keys.list_keys()
    if as_json:
        print(json.dumps([k.shown() for k in found], indent=2))
        return 0
    print(f"{'ID':<12}  {'ROLE':<6}  {'CREATED':<20}  {'REVOKED':<20}  {'RATE':<12}  NAME")
    for k in found:
        created = k.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        revoked = k.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if k.revoked_at else "-"
        print(
            f"{k.key_id:<12}  {k.role.value:<6}  {created:<20}  {revoked:<20}  "
            f"{_rate_text(k):<12}  {k.name}"
        )
    print(f"{len(found)} keys, {sum(k.active for k in found)} active")
    return 0


async def _revoke(keys: KeyStore, key_id: str) -> int:
    key = await keys.revoke_key(key_id, utc_now())
    if key is None:
        raise UsageError(f"no key with id {key_id} (see `alm keys list`)")
    print(f"revoked key {key.key_id} ({key.name}); API replicas refuse it within their key cache")
    return 0
