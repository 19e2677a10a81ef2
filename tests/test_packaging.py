"""Pins agree everywhere, and the README's commands are the ones CI runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def _norm(req: str) -> tuple[str, str]:
    name, version = req.split("==")
    return name.strip().lower().replace("_", "-"), version.strip()


def test_pyproject_pins_equal_the_lock():
    lock = _lock()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("radsurv")]
    assert reqs
    for req in reqs:
        assert "==" in req, f"{req} is not pinned exactly"
        name, version = _norm(req)
        assert lock.get(name) == version, f"{name}: pyproject {version}, lock {lock.get(name)}"


ENVS = sorted((REPO / "workflow" / "envs").glob("*.yaml"))


@pytest.mark.parametrize("env", ENVS, ids=[e.stem for e in ENVS])
def test_conda_envs_equal_the_lock_and_cover_their_extra(env):
    lock = _lock()
    doc = yaml.safe_load(env.read_text())
    pip = next(d["pip"] for d in doc["dependencies"] if isinstance(d, dict))
    pins = dict(_norm(p) for p in pip if "==" in p)
    for name, version in pins.items():
        assert lock.get(name) == version, f"{env.name}: {name}=={version}, lock has {lock.get(name)}"
    assert f"-e ../..[{env.stem}]" in pip  # the repository root, seen from workflow/envs/
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"][env.stem]
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for req in [*core, *extra]:
        assert _norm(req)[0] in pins, f"{env.name} lacks {req}"


def test_every_rule_uses_an_existing_env():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rel in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / rel).resolve().is_file(), f"{smk.name}: {rel}"


def test_readme_quick_start_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", readme, re.S)
    assert block, "README must open with a Quick start code block"
    commands = [c for c in block.group(1).splitlines() if c.strip()]
    assert len(commands) == 2 and "snakemake" in commands[0] and "pytest" in commands[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci
