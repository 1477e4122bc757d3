"""The compatibility rule of a published event schema: a new revision is additive only.

Two kinds of reader must keep working across a revision (docs/changes.md):

- a consumer written against the OLD revision reading NEW events (forward compatibility): every
  field it relies on must still be there with the same meaning and the same accepted values, so
  no field is removed, renamed or made optional, and no field's schema changes at all (a
  narrower one is fine for this reader but not the next; a wider one, `integer` to `number`,
  hands it values it rejects). It ignores fields it does not know, which is why objects may
  open (`additionalProperties: false` dropped) but never close;
- a consumer written against the NEW revision reading OLD events still on the topic (backward
  compatibility): no new required field, since old events lack it.

So between two revisions, at every object level, the `required` set is the same, every old
property keeps exactly its validation keywords (annotations like `description` may change) and
new properties are optional. `breaking_changes` lists every way `new` breaks that rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Keywords that describe and never validate: free to change between revisions.
ANNOTATIONS = frozenset(
    {"title", "description", "$comment", "examples", "default", "deprecated", "$id", "$schema"}
)


def validation_keywords(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` without its annotations, recursively (what decides which values it accepts)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        out[key] = _strip(value)
    return out


def _strip(value: Any) -> Any:
    if isinstance(value, Mapping):
        return validation_keywords(value)
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def breaking_changes(old: Mapping[str, Any], new: Mapping[str, Any], where: str = "") -> list[str]:
    """Every way the schema `new` breaks the additive-only rule against `old` (empty: none)."""
    here = where or "(top)"
    if "properties" not in old and "properties" not in new:
        if validation_keywords(old) != validation_keywords(new):
            return [f"{here}: its schema changed (only annotations may)"]
        return []
    problems = _object_level(old, new, here)
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    for name, schema in old_props.items():
        path = f"{where}/{name}"
        if name not in new_props:
            problems.append(f"{path}: removed (or renamed)")
        else:
            problems += breaking_changes(schema, new_props[name], path)
    return problems


def _object_level(old: Mapping[str, Any], new: Mapping[str, Any], here: str) -> list[str]:
    """What changed at one object level besides its properties: required, openness, the rest."""
    problems = []
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    if new_required - old_required:
        problems.append(f"{here}: newly required {sorted(new_required - old_required)}")
    if old_required - new_required:
        problems.append(f"{here}: no longer required {sorted(old_required - new_required)}")
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        problems.append(f"{here}: closed to fields it accepted (additionalProperties false)")
    skip = {"properties", "required", "additionalProperties"}
    rest_old = {k: v for k, v in validation_keywords(old).items() if k not in skip}
    rest_new = {k: v for k, v in validation_keywords(new).items() if k not in skip}
    if rest_old != rest_new:
        problems.append(f"{here}: its schema changed besides its properties")
    extra = old.get("additionalProperties")
    if isinstance(extra, Mapping) and _strip(extra) != _strip(new.get("additionalProperties")):
        problems.append(f"{here}: the schema of its other fields changed")
    return problems


def known_fields(schema: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """What a tolerant reader of `schema` sees of `event`: only the fields `schema` names (at
    the top level; an open map such as `current` is kept whole)."""
    names = schema.get("properties", {})
    return {k: v for k, v in event.items() if k in names}
