"""The ingest package's import structure: a DAG of small modules that need neither
:mod:`radsurv.config` nor libraries they do not use.

Each module is imported in a fresh interpreter (``sys.modules`` of the test process
already holds everything), and its ``sys.modules`` afterwards is inspected.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

INGEST = Path(__file__).resolve().parents[1] / "src" / "radsurv" / "ingest"
MODULES = sorted(f"radsurv.ingest.{p.stem}" for p in INGEST.glob("*.py") if p.stem != "__init__")


def _imported_by(module: str) -> set[str]:
    """Every module in ``sys.modules`` after ``import module`` in a fresh interpreter."""
    code = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _ingest_imports(path: Path) -> set[str]:
    """The ``radsurv.ingest`` modules a file imports anywhere (module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n for n in names if n in MODULES}
    return found


def test_the_old_dicomio_module_is_gone() -> None:
    """One home per concept: no re-export shim of the split module."""
    assert not (INGEST / "dicomio.py").exists()
    assert "radsurv.ingest.discovery" in MODULES and "radsurv.ingest.convert" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_without_the_config(module: str) -> None:
    """Every ingest module imports on its own, and never pulls in radsurv.config (which
    imports the modelling stage) or a stage above ingest."""
    loaded = _imported_by(module)
    assert module in loaded
    assert "radsurv.config" not in loaded
    assert not {m for m in loaded if m.startswith(("radsurv.modelling", "radsurv.robustness", "radsurv.report"))}


def test_discovery_and_records_stay_light() -> None:
    """Discovery reads headers only: no SimpleITK, matplotlib, pandas or highdicom. The records
    module (ScanRecord, manifests) needs not even pydicom or numpy."""
    discovery = _imported_by("radsurv.ingest.discovery")
    assert not {"SimpleITK", "matplotlib", "pandas", "highdicom"} & discovery
    records = _imported_by("radsurv.ingest.records")
    assert not {"pydicom", "numpy", "SimpleITK", "pandas"} & records


def test_reading_the_clinical_table_needs_no_scikit_learn() -> None:
    """The clinical stage and the config checks read the table; only the encoder (a model
    step, :mod:`radsurv.modelling.clinical_encoder`) is a scikit-learn transformer."""
    assert not {m for m in _imported_by("radsurv.ingest.clinical") if m.split(".")[0] == "sklearn"}
    assert "sklearn.base" in _imported_by("radsurv.modelling.clinical_encoder")


def test_ingest_imports_form_a_dag() -> None:
    """No import cycle inside ingest, not even one hidden in a function-level import."""
    graph = {f"radsurv.ingest.{p.stem}": _ingest_imports(p) for p in INGEST.glob("*.py") if p.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
