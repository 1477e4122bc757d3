"""The layers of services/, read from the source (ast): what may import what.

- core: the domain; imports only core, and no I/O library.
- adapters: one package per external system; each imports core and its own package only.
- the services (scheduler, fetchers, stub, aggregator, api, notifier, checks, ...): import core,
  never an adapter: they get adapters passed in by the wiring.
- the wiring (bootstrap, embedded, cli, and the entry points of processes that are started by
  something other than the CLI) is the only place that imports adapters.
- the API imports none of the other services nor the wiring: it is handed what it needs.
- no import cycle between modules (imports under TYPE_CHECKING or in a function aside), and
  no module over MAX_LINES lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
MAX_LINES = 400

IO_LIBRARIES = (
    "aiohttp",
    "aiokafka",
    "cassandra",
    "faust",
    "kafka",
    "prometheus_client",
    "requests",
    "socket",
    "sqlite3",
)
# Modules that wire adapters into services: they are allowed to import every layer.
WIRING = ("services.bootstrap", "services.embedded", "services.cli")
ENTRY_POINTS = ("services.aggregator.app", "services.notifier.main")
API_MAY_NOT_IMPORT = (
    "services.bootstrap",
    "services.embedded",
    "services.cli",
    "services.adapters",
    "services.fetchers",
    "services.scheduler",
    "services.aggregator",
    "services.stub",
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module, or a package's module)
    line: int
    top_level: bool  # at module level and not under `if TYPE_CHECKING:`


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SERVICES.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative import
        kept = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*kept, base])
    for alias in node.names:
        full = f"{base}.{alias.name}"
        yield full if full in MODULES else base


def imports_of(name: str) -> list[Import]:
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.extend(Import(name, t, node.lineno, top) for t in _targets(node, package))
            elif isinstance(node, ast.If):
                visit(node.body, top and not _type_checking(node))
                visit(node.orelse, top)
            elif isinstance(node, (ast.Try,)):
                visit(node.body + node.finalbody + node.orelse, top)
                for handler in node.handlers:
                    visit(handler.body, top)
            else:
                for child in ast.walk(node):  # function bodies, classes: not top level
                    if isinstance(child, (ast.Import, ast.ImportFrom)):
                        found.extend(
                            Import(name, t, child.lineno, False) for t in _targets(child, package)
                        )

    visit(tree.body, True)
    return found


ALL_IMPORTS = [imp for name in MODULES for imp in imports_of(name)]


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _adapter_family(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:3]) if len(parts) > 2 else name


def _where(imp: Import) -> str:
    path = MODULES.get(imp.module)
    where = path.relative_to(ROOT) if path else imp.module
    return f"{where}:{imp.line} imports {imp.target}"


def _rule_broken(module: str, target: str) -> str | None:
    """The rule `module` importing `target` breaks, if any (the API's own rule aside)."""
    internal = target.startswith("services")
    if module.startswith("services.core"):
        if internal and not target.startswith("services.core"):
            return "core imports outside core"
        if not internal and target.split(".")[0] in IO_LIBRARIES:
            return "core imports an I/O library"
        return None
    if module.startswith("services.adapters"):
        own = target.startswith("services.core") or _adapter_family(target) == _adapter_family(
            module
        )
        return None if own or not internal else "an adapter imports outside core and its package"
    if _within(module, WIRING + ENTRY_POINTS):
        return None
    if target.startswith("services.adapters"):
        return "a service imports an adapter"
    return "a service imports the wiring" if _within(target, WIRING) else None


def layer_violations(imports: list[Import]) -> list[str]:
    """Every import that runs against the layer rules of the module docstring."""
    bad = []
    for imp in imports:
        if rule := _rule_broken(imp.module, imp.target):
            bad.append(f"{rule}: {_where(imp)}")
        if imp.module.startswith("services.api") and _within(imp.target, API_MAY_NOT_IMPORT):
            bad.append(f"the API imports another service or the wiring: {_where(imp)}")
    return bad


def cycle(imports: list[Import]) -> list[str]:
    """A circle of modules importing each other at load time ([] when there is none)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.top_level and imp.target != imp.module and imp.target.startswith("services"):
            graph.setdefault(imp.module, set()).add(imp.target)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return []


def test_every_import_follows_the_layers() -> None:
    assert layer_violations(ALL_IMPORTS) == []


def test_no_import_cycle() -> None:
    assert cycle(ALL_IMPORTS) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines"


# The checks themselves, on made-up imports: each rule catches what it is for.


def _imp(module: str, target: str, top: bool = True) -> Import:
    return Import(module, target, 1, top)


@pytest.mark.parametrize(
    ("module", "target", "rule"),
    [
        ("services.core.works", "services.api.present", "core imports outside core"),
        ("services.core.works", "sqlite3", "core imports an I/O library"),
        ("services.adapters.sqlite.works", "services.api.app", "an adapter imports outside"),
        ("services.adapters.sqlite.works", "services.adapters.cassandra.works", "an adapter"),
        ("services.scheduler.service", "services.adapters.sqlite", "a service imports an adapter"),
        ("services.api.views", "services.fetchers.registry", "the API imports another service"),
        ("services.api.app", "services.bootstrap", "a service imports the wiring"),
    ],
)
def test_a_broken_rule_is_reported(module: str, target: str, rule: str) -> None:
    reported = layer_violations([_imp(module, target)])
    assert any(r.startswith(rule) for r in reported), reported


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("services.core.works", "services.core.identifiers"),
        ("services.adapters.sqlite.works", "services.adapters.sqlite.connection"),
        ("services.adapters.sqlite.works", "services.core.works"),
        ("services.scheduler.service", "services.core.ports"),
        ("services.bootstrap", "services.adapters.sqlite"),
        ("services.cli.run", "services.adapters.memory.bus"),
    ],
)
def test_an_allowed_import_is_not_reported(module: str, target: str) -> None:
    assert layer_violations([_imp(module, target)]) == []


def test_a_cycle_is_found_and_a_type_checking_import_is_no_cycle() -> None:
    a, b = "services.core.works", "services.core.identifiers"
    assert sorted(set(cycle([_imp(a, b), _imp(b, a)]))) == sorted([a, b])
    assert cycle([_imp(a, b), _imp(b, a, top=False)]) == []
