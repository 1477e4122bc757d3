"""Validate rendered Kubernetes manifests (`helm template ... | python validate.py -k 1.37 ...`):
every built-in kind against kubernetes-validate's bundled, strict schemas for each Kubernetes
version given, and the custom resources the chart makes (ServiceMonitor, PodMonitor,
PrometheusRule, ScaledObject) against their CRDs' schemas in crd-schemas/.

This wraps kubernetes-validate's own `validate()` (the function its CLI calls) instead of
piping into the CLI because the CLI reads standard input once for the first `-k` only (the
other versions see nothing and pass) and only warns, with exit code 0, about a kind it has no
schema for: here a document of an unknown kind fails, and each document is checked against
every version.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

CRD_SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"


def strict(schema: Any) -> Any:
    """A CRD schema that also rejects unknown fields, as the API server's strict field
    validation does (kubectl's default): every object with `properties` gets
    additionalProperties false, unless it keeps unknown fields on purpose."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items() if key != "properties"}
    if "properties" in schema:
        out["properties"] = {name: strict(prop) for name, prop in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and (
            "additionalProperties" not in schema
        ):
            out["additionalProperties"] = False
    return out


def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator of that custom resource, from crd-schemas/*.json."""
    out = {}
    for path in sorted(CRD_SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        crd = schema.pop("x-alm-crd")
        api_version = f"{crd['group']}/{crd['version']}"
        out[(api_version, crd["kind"])] = jsonschema.Draft7Validator(strict(schema))
    return out


def documents(paths: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """(where, document) for every non-empty YAML document of the files ("-": stdin)."""
    out = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        for doc in yaml.safe_load_all(text):
            if doc:
                name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
                out.append((f"{path}: {name}", doc))
    return out


def check(
    docs: list[tuple[str, dict[str, Any]]],
    versions: list[str],
    crds: dict[tuple[str, str], jsonschema.protocols.Validator],
) -> list[str]:
    """Every problem found, one line each (empty: all valid)."""
    problems = []
    for where, doc in docs:
        custom = crds.get((doc.get("apiVersion", ""), doc.get("kind", "")))
        if custom is not None:
            for error in custom.iter_errors(doc):
                path = ".".join(str(p) for p in error.absolute_path)
                problems.append(f"{where}: {path}: {error.message} (CRD schema)")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                problems.append(f"{where}: {path}: {error.message} (Kubernetes {version})")
            except SchemaNotFoundError as error:
                problems.append(f"{where}: {error.message}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", "--kubernetes-version", action="append", required=True)
    parser.add_argument("files", nargs="*", default=["-"])
    args = parser.parse_args(argv)
    docs = documents(args.files)
    if not docs:
        print("validate: no Kubernetes objects in the input", file=sys.stderr)
        return 1
    crds = crd_validators()
    problems = check(docs, args.kubernetes_version, crds)
    for line in problems:
        print(f"INVALID {line}")
    kinds = sorted({doc["kind"] for _, doc in docs})
    custom = sum((doc.get("apiVersion"), doc.get("kind")) in crds for _, doc in docs)
    print(
        f"validate: {len(docs)} objects ({', '.join(kinds)}), {custom} against CRD schemas, "
        f"the others against Kubernetes {', '.join(args.kubernetes_version)} (strict): "
        f"{len(problems)} problems"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
