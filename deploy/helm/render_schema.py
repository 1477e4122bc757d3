"""Render the per-source part of deploy/helm/alm/values.schema.json: one entry under
`properties.sources.properties` for every source of services/fetchers/registry.py, each the
schema in deploy/helm/source.schema.json (replicas, resources, rate, apiKey, ...). The rest of
values.schema.json is edited by hand; this rewrites the sources part only.

    python3 deploy/helm/render_schema.py          # rewrite values.schema.json
    python3 deploy/helm/render_schema.py --check  # exit 1 if it is not what this renders

Adding a source: its plug-in and registry line, then run this (and give it an entry under
`sources:` in values.yaml; tests/deploy/test_deploy_manifests.py checks both). Standard library
only, plus the registry, whose plug-ins import nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "deploy" / "helm" / "alm" / "values.schema.json"
SOURCE_SCHEMA = ROOT / "deploy" / "helm" / "source.schema.json"


def registered_sources() -> list[str]:
    """The registry's source names, in its order."""
    sys.path.insert(0, str(ROOT))
    from services.fetchers.registry import SOURCES

    return list(SOURCES)


def render(schema_text: str, source_schema_text: str, sources: Sequence[str]) -> str:
    """`schema_text` with its sources part made of `source_schema_text` once per source."""
    schema = json.loads(schema_text)
    entry = json.loads(source_schema_text)
    schema["properties"]["sources"]["properties"] = {name: entry for name in sources}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    current = SCHEMA.read_text()
    rendered = render(current, SOURCE_SCHEMA.read_text(), registered_sources())
    if rendered == current:
        return 0
    if args.check:
        print(f"{SCHEMA.relative_to(ROOT)} is out of date: run {Path(__file__).relative_to(ROOT)}")
        return 1
    SCHEMA.write_text(rendered)
    print(f"{SCHEMA.relative_to(ROOT)} rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
