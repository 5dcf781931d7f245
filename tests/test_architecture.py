"""The layout's rules, checked on the code: imports point one way and never in a circle.

Layers, lowest first; a module may import its own layer or lower ones (every
import counts, also one inside a function):

    contract   pipeline.contract, pipeline.errors,  the wire contract; imports nothing of the project
               pipeline.logs
    detectors  detectors                            plain Python, no Bytewax
    io         pipeline.config, pipeline.kafka, sinks
    enforce    pipeline.enforce, pipeline.sources
    engine     pipeline.engine
    apps       pipeline.cli, simulator, workbench, analysis

The workbench reads the job's outputs and never imports the engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "detectors", "sinks", "simulator", "workbench", "analysis")
LAYERS: tuple[tuple[str, ...], ...] = (
    ("pipeline.contract", "pipeline.errors", "pipeline.logs"),
    ("detectors",),
    ("pipeline.config", "pipeline.kafka", "sinks"),
    ("pipeline.enforce", "pipeline.sources"),
    ("pipeline.engine",),
    ("pipeline.cli", "simulator", "workbench", "analysis"),
)
FORBIDDEN = {  # importer prefix -> prefixes it must never import
    "workbench": ("pipeline.engine",),
    "detectors": ("bytewax",),
    "pipeline.contract": ("pipeline.errors", "detectors", "sinks", "pipeline.config"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module of the project that `path` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from pkg import sub` depends on the module pkg.sub; `from mod import name` on mod.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = longest_known_prefix(target, known)
            if resolved and resolved != name:
                found.add(resolved)
    return found


def external_imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def longest_known_prefix(target: str, known: set[str]) -> str | None:
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in known:
            return candidate
    return None


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def in_package(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    # `pipeline` itself is only the package's docstring.
    assert [m for m in graph if layer_of(m) < 0 and m != "pipeline"] == []


def test_no_module_imports_a_higher_layer(graph):
    upward = sorted(f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
                    for m, targets in graph.items() for t in targets
                    if m != "pipeline" and layer_of(t) > layer_of(m))
    assert upward == [], "\n".join(upward)


def test_no_import_cycle(graph):
    cycles = strongly_connected(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_forbidden_imports(graph):
    modules = project_modules()
    bad = []
    for module, targets in graph.items():
        for importer, banned in FORBIDDEN.items():
            if not in_package(module, importer):
                continue
            names = targets | external_imports_of(modules[module])
            bad += [f"{module} imports {t}" for t in sorted(names) if any(in_package(t, b) for b in banned)]
    assert bad == [], "\n".join(bad)


def test_the_rules_catch_an_upward_import_and_a_cycle():
    """The checks themselves can fail: a made-up graph with both faults."""
    fake = {"detectors.x": {"pipeline.engine.y"}, "pipeline.engine.y": {"detectors.x"}}
    assert layer_of("detectors.x") < layer_of("pipeline.engine.y")
    assert strongly_connected(fake) == [["detectors.x", "pipeline.engine.y"]]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, round and round."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)
