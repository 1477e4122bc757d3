"""Check events against the JSON Schemas in `schemas/` at the edges (consume and publish)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
EVENT_SCHEMAS = ("work", "refresh_request", "observation", "metric_changed", "failed_refresh")


class SchemaViolation(ValueError):
    """An event that does not match its schema; the message names the field and the problem."""


@cache
def _registry() -> Registry:
    resources = []
    for name in EVENT_SCHEMAS:
        doc = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
        resources.append((f"{name}.schema.json", Resource.from_contents(doc)))
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """The validator of schema `name` (one of EVENT_SCHEMAS)."""
    doc = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return Draft202012Validator(doc, registry=_registry())


def check(name: str, event: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return `event` if it matches schema `name`, else raise SchemaViolation."""
    error = next(iter(validator(name).iter_errors(event)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaViolation(f"{name} event invalid at {where}: {error.message}")
    return event
