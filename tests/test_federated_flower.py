"""Federated Cox over Flower: the Simulation Engine, and real SuperLink + 3 SuperNodes with TLS.

Both must reach the coefficients of the in-process federation (which equal lifelines'
stratified fit, see test_federated.py) and so each other. Slow on a loaded machine: the
simulation starts Ray (~1 min); the deployment starts 4 Flower processes and one ClientApp
process per message (a few minutes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from federated_deploy import LocalDeployment  # noqa: E402
from test_federated import LUNG1_FEATURES, lifelines_stratified, load_lung1, survival_federation  # noqa: E402

from radsurv.federated import fit_cox  # noqa: E402
from radsurv.federated.flower import run_flower_simulation, write_flower_app  # noqa: E402

FEATURES = LUNG1_FEATURES[:6]
PENALIZER = 0.1


@pytest.fixture(scope="module")
def lung1_tables(shared_data, tmp_path_factory) -> tuple[dict[str, Path], object]:
    df = load_lung1(shared_data)
    root = tmp_path_factory.mktemp("sites")
    tables = {}
    for name, part in df.groupby("site"):
        tables[name] = root / f"{name}.csv"  # each hospital's own table, as its SuperNode reads it
        part[[*FEATURES, "time", "event"]].to_csv(tables[name], index=False)
    return tables, df


@pytest.fixture(scope="module")
def reference(lung1_tables):
    _, df = lung1_tables
    return fit_cox(survival_federation(df, FEATURES), FEATURES, PENALIZER)


def test_flower_simulation_reaches_the_exact_coefficients(lung1_tables, reference):
    pytest.importorskip("ray")
    tables, df = lung1_tables
    res = run_flower_simulation(tables, {"task": "cox", "features": ",".join(FEATURES), "penalizer": PENALIZER})
    assert res["sites"] == ["site1", "site2", "site3"]
    np.testing.assert_allclose(res["coef"], reference.coef, rtol=0, atol=1e-12)
    assert res["rounds"] == reference.rounds
    cph = lifelines_stratified(df, FEATURES, PENALIZER)
    np.testing.assert_allclose(res["coef"], cph.params_[FEATURES].to_numpy(), rtol=0, atol=1e-6)


def test_superlink_and_three_supernodes_with_tls_reach_the_simulation_coefficients(lung1_tables, reference, tmp_path):
    """Separate processes on localhost, TLS with a CA generated here, SuperNode authentication."""
    tables, df = lung1_tables
    result = tmp_path / "result.json"
    app = write_flower_app(tmp_path / "app", {"task": "cox", "features": ",".join(FEATURES), "penalizer": PENALIZER,
                                              "n-sites": 3, "result-path": str(result)})
    # node authentication on: only the three registered SuperNodes' keys are admitted; a fourth,
    # unregistered SuperNode holding a copy of site1's table must never take part
    with LocalDeployment(tmp_path, tables, node_auth=True, intruder=tables["site1"]) as dep:
        run = dep.run(app)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + dep.log_tail()
        assert result.exists(), dep.log_tail()
        superlink_log = (tmp_path / "superlink.log").read_text()
    res = json.loads(result.read_text())
    assert res["sites"] == ["site1", "site2", "site3"]
    assert not (tmp_path / "audit_intruder.jsonl").exists()
    np.testing.assert_allclose(res["coef"], reference.coef, rtol=0, atol=1e-12)
    assert res["rounds"] == reference.rounds
    assert 0.5 < res["c_index_pooled"] < 1.0
    # TLS was on: the SuperLink was started with certificates and no --insecure
    assert "insecure" not in " ".join(map(str, dep.procs[0].args))
    assert "Push replies from node_id" in superlink_log
    # every site's audit log: aggregates only (no dimension of the site's patient count), n >= k
    sizes = df.groupby("site").size()
    for name in tables:
        lines = [json.loads(x) for x in (tmp_path / f"audit_{name}.jsonl").read_text().splitlines()]
        kinds = {line["sent"]["kind"] for line in lines}
        assert {"hello", "moments", "cox", "concordance"} <= kinds
        for line in lines:
            for key, value in line["sent"].items():
                if isinstance(value, list):
                    assert int(sizes[name]) not in value, (name, key, value)
            if "n" in line["sent"]:
                assert line["sent"]["n"] >= 5
