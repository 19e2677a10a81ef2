"""Benchmark: the survival C-index with and without in-fold ComBat, and the site-prediction AUC
before and after, on a finished run's features (issue #19).

Not a pytest test; run it directly (from the run's working directory)::

    python tests/benchmarks/bench_harmonisation.py --config config/examples/multicentre_demo.yaml
    python tests/benchmarks/bench_harmonisation.py --config /tmp/owkin.yaml   # features-table start

It reads the same inputs as rule ``fit_models`` (the pipeline's ``results/features/features.tsv``,
``results/robustness/robust_features.txt`` and ``results/clinical/clinical.tsv``; or
``modelling.features_table`` and the raw clinical tables), takes the batch from the config's
``harmonisation.batch.column``, and runs :func:`radsurv.modelling.study.run_study` twice (with
and without ComBat inside every fit) plus
:func:`radsurv.workflow.harmonisation.diagnostics_tables`. Printed: held-out Harrell's C with
95% bootstrap CI of the radiomics and volume models in both studies, the C difference, the
site-prediction AUC before/after and the features with a batch difference before/after, and
the wall time of each step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import yaml

from radsurv.harmonisation.settings import HarmonisationInput, HarmonisationSettings
from radsurv.modelling.config import StudyConfig
from radsurv.modelling.study import run_study
from radsurv.workflow.harmonisation import diagnostics_tables
from radsurv.workflow.modelling import _study_inputs


def _c(res, model: str = "radiomics") -> tuple[float, float, float]:
    d = res.metrics["by_model"][model]["harrell_c"]
    return d["estimate"], d["ci_low"], d["ci_high"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--results", default="results")
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    m = dict(cfg.get("modelling") or {})
    sc = StudyConfig.from_dict(m, seed=int(cfg["seed"]))
    columns = cfg["cohort"].get("columns", {})
    r = Path(args.results)
    if m.get("features_table"):
        feats, clinical, robust = m["features_table"], cfg["cohort"]["clinical_table"], None
    else:
        feats, clinical, robust = (r / "features/features.tsv", r / "clinical/clinical.tsv",
                                   r / "robustness/robust_features.txt")
    qc: list = []
    X, clin, cands = _study_inputs(feats, clinical, robust, sc, columns, qc)
    st = HarmonisationSettings.from_config({**cfg["harmonisation"], "enabled": True})
    ids = clin["patient_id"].astype(str)
    labels = pd.Series(clin[st.batch_column].astype(str).to_numpy(), index=ids.to_numpy(), dtype=object)
    out: dict = {"patients": int(len(X)), "candidates": len(cands),
                 "batches": labels.value_counts().sort_index().to_dict()}
    t0 = time.perf_counter()
    d = diagnostics_tables(X.loc[X.index.astype(str).isin(labels.index), cands].rename(index=str), labels, st,
                           seed=int(cfg["seed"]))
    out["t_diagnostics_s"] = round(time.perf_counter() - t0, 1)
    out["site_auc"] = d["site_auc"][["data", "estimate", "ci_low", "ci_high"]].round(3).to_dict(orient="records")
    out["kruskal_significant"] = {"before": d["n_significant_before"], "after": d["n_significant_after"],
                                  "of": d["n_features"]}
    for name, h in (("without", None), ("with in-fold ComBat", HarmonisationInput(st, labels))):
        t0 = time.perf_counter()
        res = run_study(X, clin, cands, sc, harmonisation=h, n_jobs=1)
        out[f"C radiomics {name}"] = [round(v, 3) for v in _c(res)]
        out[f"C volume {name}"] = [round(v, 3) for v in _c(res, "volume")] if "volume" in res.metrics[
            "by_model"] else None
        out[f"t_study_{name}_s"] = round(time.perf_counter() - t0, 1)
    out["C difference (with - without)"] = round(out["C radiomics with in-fold ComBat"][0]
                                                 - out["C radiomics without"][0], 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
