"""The layers import inward only, and no two modules import each other (issue #14).

Reads every import statement of the six packages with `ast` (nothing is imported). Imports
inside functions and under `if TYPE_CHECKING:` count: they are dependencies all the same.
A package's `__init__` that Python runs before a submodule is not counted as a dependency.

What each layer may import follows DESIGN.md's folder table. `facesearch` holds five layers,
each a package of its own but the first: the settings, read by everything; `infra` (broker
transport, tansu, Milvus processes, metrics, logging), which knows no use case; `services`, the
use cases (imports, search, people), which take what they use as arguments and never the
System; the composition root (`system.py`, `worker_process.py`), which the API is built on;
and the command line (`cli`), which sits above everything (`facesearch up` serves the API).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "commands", "projections", "gpu_workers", "facesearch", "api")

CLI = "facesearch CLI"
SETTINGS = "facesearch settings"
INFRA = "facesearch infra"
SERVICES = "facesearch services"
# Module-name prefixes of the facesearch layers (a prefix is a module or a package).
FACESEARCH_LAYERS = {
    "facesearch.__main__": CLI, "facesearch.cli": CLI, "facesearch.settings": SETTINGS,
    "facesearch.infra": INFRA, "facesearch.services": SERVICES,
}

_BELOW = frozenset({"domain", "commands", "projections", "gpu_workers"})
# Layer -> the other layers it may import (DESIGN.md; the CLI composes everything).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "commands": frozenset({"domain"}),
    "projections": frozenset({"domain"}),
    "gpu_workers": frozenset({"domain", "commands"}),
    SETTINGS: frozenset({"domain", "commands"}),
    INFRA: _BELOW | {SETTINGS},
    SERVICES: _BELOW | {SETTINGS, INFRA},
    "facesearch": _BELOW | {SETTINGS, INFRA, SERVICES},
    "api": _BELOW | {SETTINGS, INFRA, SERVICES, "facesearch"},
    CLI: _BELOW | {SETTINGS, INFRA, SERVICES, "facesearch", "api"},
}

# "importer -> imported" pairs allowed for now, each with why; none today. An entry that no
# longer occurs fails the test too, so the list only shrinks.
KNOWN_VIOLATIONS: dict[str, str] = {}

Edges = dict[str, dict[str, int]]  # module -> {module it imports: first line}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_imports(root: Path, packages: tuple[str, ...] = PACKAGES) -> Edges:
    """Every import between our modules, by importing module."""
    files = {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}

    def ours(name: str) -> str | None:
        """The longest prefix of a dotted name that is one of our modules."""
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in files:
                return candidate
        return None

    edges: Edges = {}
    for module, path in files.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        found = edges.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, one level up per extra dot
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                # `from pkg import sub` imports the module pkg.sub; `from mod import name`, mod.
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for name in names:
                target = ours(name)
                if target is not None and target != module:
                    found.setdefault(target, node.lineno)
    return edges


def layer_of(module: str) -> str:
    for prefix, layer in FACESEARCH_LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return module.split(".")[0]


def upward_imports(edges: Edges) -> dict[str, str]:
    """Each import the layer rules forbid, as "importer -> imported": where it is."""
    found = {}
    for module, targets in edges.items():
        for target, line in targets.items():
            source, dest = layer_of(module), layer_of(target)
            if source != dest and dest not in MAY_IMPORT[source]:
                found[f"{module} -> {target}"] = f"line {line}: {source} may not import {dest}"
    return found


def import_cycles(edges: Edges) -> list[list[str]]:
    """The groups of modules that import each other (strongly connected, Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges.get(module, {}):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(groups)


def cycle_pairs(edges: Edges, groups: list[list[str]]) -> dict[str, str]:
    """Each import inside a cycle, as "importer -> imported": where it is."""
    return {
        f"{module} -> {target}": f"line {line}: in the import cycle {' / '.join(group)}"
        for group in groups for module in group for target, line in edges[module].items() if target in group
    }


# --- the code base -------------------------------------------------------------------------


def test_the_packages_are_read():
    edges = read_imports(ROOT)
    assert {m.split(".")[0] for m in edges} == set(PACKAGES)
    assert "commands.app" in edges["facesearch.system"]  # a module-level import
    assert "facesearch.cli.owners" in edges["facesearch.cli.main"]  # one inside a function


def test_domain_imports_nothing_of_ours():
    edges = read_imports(ROOT)
    assert {m: sorted(t) for m, t in edges.items() if m.startswith("domain") and
            any(not x.startswith("domain") for x in t)} == {}


def test_no_upward_import_and_no_cycle():
    edges = read_imports(ROOT)
    violations = upward_imports(edges) | cycle_pairs(edges, import_cycles(edges))
    new = {pair: why for pair, why in violations.items() if pair not in KNOWN_VIOLATIONS}
    gone = sorted(set(KNOWN_VIOLATIONS) - set(violations))
    assert new == {}, "imports against the layers (DESIGN.md) or in a cycle:\n" + "\n".join(
        f"{pair}  ({why})" for pair, why in sorted(new.items()))
    assert gone == [], f"KNOWN_VIOLATIONS entries that no longer occur (remove them): {gone}"


# --- the checks themselves, on a made-up tree ------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in PACKAGES:
        (root / pkg).mkdir(exist_ok=True)
    return root


def test_an_upward_import_is_found(tmp_path):
    root = _tree(tmp_path, {
        "domain/__init__.py": "",
        "domain/photo.py": "def f():\n    from commands.app import App\n",
        "commands/__init__.py": "",
        "commands/app.py": "from domain import photo\n",
        "projections/__init__.py": "from gpu_workers.detect import run\n",
        "gpu_workers/detect.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import api.app\n",
        "api/app.py": "import facesearch.cli.main\n",
        "facesearch/cli/main.py": "import api.app\n",
    })
    assert upward_imports(read_imports(root)) == {
        "domain.photo -> commands.app": "line 2: domain may not import commands",
        "projections -> gpu_workers.detect": "line 1: projections may not import gpu_workers",
        "gpu_workers.detect -> api.app": "line 3: gpu_workers may not import api",
        "api.app -> facesearch.cli.main": "line 1: api may not import facesearch CLI",
    }


def test_a_cycle_is_found_through_relative_imports(tmp_path):
    root = _tree(tmp_path, {
        "commands/__init__.py": "",
        "commands/importers/__init__.py": "from .vk import VkSource\n",
        "commands/importers/vk.py": "from . import _http\nfrom ..relay import Relay\n",
        "commands/importers/_http.py": "",
        "commands/relay.py": "from commands.importers.vk import VkSource\n",
    })
    edges = read_imports(root)
    assert edges["commands.importers.vk"] == {"commands.importers._http": 1, "commands.relay": 2}
    groups = import_cycles(edges)
    assert groups == [["commands.importers.vk", "commands.relay"]]
    assert set(cycle_pairs(edges, groups)) == {
        "commands.importers.vk -> commands.relay", "commands.relay -> commands.importers.vk"}
