"""Every radsurv module imports on its own, light modules stay light, and no import cycles.

* Each module is imported in a fresh interpreter (one subprocess per module, a few
  in parallel), so a module that only works after another one was imported, or that
  sits in a cycle that breaks at import time, fails here with its traceback.
* The modules the workflow imports while Snakemake parses the DAG must not pull in
  the heavy imaging / statistics packages (checked in the same fresh interpreters).
* The import graph among radsurv modules is built statically from the AST of every
  module, imports inside functions included (only ``if TYPE_CHECKING:`` blocks, which
  never run, are left out), and any cycle fails the test with the cycle printed.
  ``from radsurv.pkg import mod`` is an edge to ``radsurv.pkg.mod`` when ``mod`` is a
  module or subpackage, otherwise to ``radsurv.pkg``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

#: Packages a light module must not import (imaging, radiomics, statistics, plotting, ML).
HEAVY = ("SimpleITK", "radiomics", "scipy", "matplotlib", "sklearn", "sksurv", "lifelines", "pydicom",
         "highdicom")

#: Modules the workflow imports while Snakemake parses the DAG (``workflow/rules/*.smk``,
#: ``Snakefile``): they must import none of :data:`HEAVY`.
PARSE_TIME = ("radsurv.config", "radsurv.resume", "radsurv.logutil", "radsurv.workflow.rules", "radsurv.features.names",
              "radsurv.robustness.selection")

#: Run in the fresh interpreter: import one module, report an error and the heavy packages loaded.
_PROBE = """
import importlib, json, sys, traceback
name, heavy = sys.argv[1], sys.argv[2].split(",")
try:
    importlib.import_module(name)
    error = None
except BaseException:
    error = traceback.format_exc()
print(json.dumps({"error": error, "heavy": sorted(h for h in heavy if h in sys.modules)}))
"""


def package_dir(package: str = "radsurv") -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file for every ``.py`` under ``root`` (packages by their ``__init__``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = path
    return out


def _runtime_imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree`` (functions included) outside ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """Absolute name of the module an ``ImportFrom`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Static import edges among ``modules`` (the keys), from each file's AST."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _runtime_imports(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                source = _resolve_from(node, name, path.name == "__init__.py")
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                           for a in node.names]
            for target in targets:
                # ``import radsurv.a.b`` of a name that is not a module: its nearest module
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles (``[a, b, ..., a]``): in each strongly connected component of more than one
    module, the shortest cycle through each of its modules (each distinct cycle once)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; module graphs are shallow enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    cycles: list[list[str]] = []
    for comp in sorted(components):
        for start in comp:
            cycle = _cycle_through(graph, start, set(comp))
            first = cycle.index(min(cycle[:-1]))
            cycle = cycle[first:-1] + cycle[:first] + [cycle[first]]  # the same cycle starts at its smallest name
            if cycle not in cycles:
                cycles.append(cycle)
    return cycles


def _cycle_through(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """A shortest cycle from ``start`` back to itself through ``members`` (its strongly connected component)."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start} in {sorted(members)}")  # cannot happen in an SCC


def _probe(module: str) -> tuple[str, dict]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", _PROBE, module, ",".join(HEAVY)], capture_output=True,
                          text=True, env=env, timeout=300)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return module, {"error": f"exit {done.returncode}\n{done.stderr[-3000:]}", "heavy": []}
    return module, json.loads(lines[-1])


@pytest.fixture(scope="module")
def fresh_imports() -> dict[str, dict]:
    """Each radsurv module imported in its own fresh interpreter: ``{module: {error, heavy}}``."""
    modules = sorted(module_files(package_dir(), "radsurv"))
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return dict(pool.map(_probe, modules))


def test_every_module_imports_in_a_fresh_interpreter(fresh_imports):
    assert len(fresh_imports) > 40  # the walk found the package
    failed = {m: r["error"] for m, r in fresh_imports.items() if r["error"]}
    assert not failed, "modules that fail to import on their own:\n\n" + "\n\n".join(
        f"--- {m}\n{err}" for m, err in failed.items())


@pytest.mark.parametrize("module", PARSE_TIME)
def test_parse_time_modules_import_no_heavy_package(fresh_imports, module):
    assert module in fresh_imports, f"{module} does not exist"
    assert fresh_imports[module]["error"] is None
    assert fresh_imports[module]["heavy"] == [], (
        f"{module} is imported while Snakemake parses the workflow and must stay light; "
        f"it imports {fresh_imports[module]['heavy']}")


def test_no_import_cycles_among_radsurv_modules():
    modules = module_files(package_dir(), "radsurv")
    cycles = find_cycles(import_graph(modules))
    assert not cycles, "import cycles among radsurv modules (imports inside functions included):\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles)


# ------------------------------------------------------------- the checkers themselves
def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_graph_finds_cycles_through_function_imports_and_from_package_imports(tmp_path):
    _write(tmp_path / "pkg", {
        "__init__.py": "",
        "a.py": "def f():\n    from pkg import b\n    return b\n",  # `from pkg import b`: an edge to pkg.b
        "b.py": "import pkg.sub.c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from ..a import f\n",  # relative import back to pkg.a
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.e\n",
        "e.py": "from pkg.d import TYPE_CHECKING\n",  # d -> e only for type checkers: no cycle
    })
    modules = module_files(tmp_path / "pkg", "pkg")
    assert set(modules) == {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.d", "pkg.e"}
    graph = import_graph(modules)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.sub.c"] == {"pkg.a"} and graph["pkg.d"] == set()
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]


def test_every_cycle_of_a_component_is_reported():
    graph = {"p.x": {"p.y"}, "p.y": {"p.z"}, "p.z": set()}
    assert find_cycles(graph) == []
    assert find_cycles({**graph, "p.z": {"p.x"}}) == [["p.x", "p.y", "p.z", "p.x"]]
    # two cycles sharing a module (stages <-> two packages): both are named
    two = {"p.stages": {"p.a", "p.b"}, "p.a": {"p.stages"}, "p.b": {"p.stages"}}
    assert find_cycles(two) == [["p.a", "p.stages", "p.a"], ["p.b", "p.stages", "p.b"]]
