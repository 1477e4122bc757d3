"""Check events against the JSON Schemas in `schemas/` at the edges (consume and publish).

Validation runs on every event in and out of every service, so it uses the compiled
jsonschema-rs validators (about a microsecond an event) rather than a pure-Python validator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs


def _schema_dir() -> Path:
    """`schemas/` of the source tree, else the copy installed with the package."""
    tree = Path(__file__).resolve().parents[2] / "schemas"
    if tree.is_dir():
        return tree
    return Path(str(resources.files("alm_schemas")))


SCHEMA_DIR = _schema_dir()
EVENT_SCHEMAS = (
    "work",
    "refresh_request",
    "observation",
    "metric_changed",
    "failed_refresh",
    "record_batch",
)


class SchemaViolation(ValueError):
    """An event that does not match its schema; the message names the field and the problem."""


@cache
def _documents() -> dict[str, dict[str, Any]]:
    return {n: json.loads((SCHEMA_DIR / f"{n}.schema.json").read_text()) for n in EVENT_SCHEMAS}


@cache
def validator(name: str) -> jsonschema_rs.Validator:
    """The compiled validator of schema `name` (one of EVENT_SCHEMAS)."""
    docs = _documents()
    registry = jsonschema_rs.Registry([(doc["$id"], doc) for doc in docs.values()])
    return jsonschema_rs.validator_for(docs[name], registry=registry)


def check(name: str, event: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return `event` if it matches schema `name`, else raise SchemaViolation."""
    checker = validator(name)
    if checker.is_valid(event):
        return event
    error = next(iter(checker.iter_errors(event)))
    where = "/".join(str(p) for p in error.instance_path) or "(top level)"
    raise SchemaViolation(f"{name} event invalid at {where}: {error.message}")
