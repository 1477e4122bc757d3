"""Turn a CustomResourceDefinition (YAML on stdin) into the JSON Schema of one of its served
versions, the way `deploy/helm/validate.py` checks custom resources against it.

    git show v0.93.0:example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml \
      | python extract.py "prometheus-operator/prometheus-operator v0.93.0 example/..." \
      > podmonitor-monitoring-v1.json

(in a clone of the repository; the argument says where the CRD came from.)

What is kept: the version's openAPIV3Schema without `description`s (most of the size), with
the CRD's group, kind and version, and its origin, in `x-alm-crd`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml


def strip(node: Any) -> Any:
    """The schema without descriptions (a property *named* description is kept)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                continue
            if key == "properties" and isinstance(value, dict):
                out[key] = {name: strip(prop) for name, prop in value.items()}
            else:
                out[key] = strip(value)
        return out
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def main() -> int:
    crd = yaml.safe_load(sys.stdin)
    spec = crd["spec"]
    version = next(v for v in spec["versions"] if v.get("storage"))
    schema = strip(version["schema"]["openAPIV3Schema"])
    schema["x-alm-crd"] = {
        "group": spec["group"],
        "kind": spec["names"]["kind"],
        "version": version["name"],
        "origin": sys.argv[1] if len(sys.argv) > 1 else "",
    }
    json.dump(schema, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
