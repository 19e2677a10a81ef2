"""Benchmark: the confound controls of a finished run (issue #19) -- the real radiomics model, the
volume-only model and every negative control side by side, the endpoint C-index with vs without
in-fold ComBat, and the radiomics model on volume-adjusted features.

Not a pytest test; run it from the run's working directory after the workflow::

    .venv/bin/snakemake --configfile config/examples/multicentre_demo.yaml --cores 2
    python tests/benchmarks/bench_negative_controls.py --config config/examples/multicentre_demo.yaml

Read: ``results/model/metrics.json`` (the workflow's real study: held-out Harrell's C with 95%
patient-bootstrap CI of the radiomics and volume models) and ``results/controls/<control>/metrics.json``
(each control's study, with its paired difference to the volume-only model). Computed: the study
re-run by :func:`radsurv.modelling.study.run_study` on the run's features with and without in-fold
ComBat (same folds and seeds; ``--skip-refit`` leaves this out) and with ``modelling.volume_adjust``.
Printed as JSON: every C (CI), each control's difference from the volume-only model (and whether it
is within 0.05; and paired, with its CI), on the demo the candidate feature of each control that best
tracks the planted tumour heterogeneity (``demo/truth.csv``), the C change with vs without ComBat and
its paired patient-bootstrap 95% CI (:func:`radsurv.modelling.metrics.paired_c_difference`, 1000
replicates at least), wall times.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml


def _ci(d: dict) -> list[float]:
    return [round(float(d[k]), 3) for k in ("estimate", "ci_low", "ci_high")]


def _refits(cfg: dict, results: Path) -> dict:
    """The real study again through the library: without harmonisation, with in-fold ComBat, and
    with volume-adjusted features (and ComBat when the config harmonises)."""
    import pandas as pd

    from radsurv.harmonisation.settings import HarmonisationInput, HarmonisationSettings
    from radsurv.modelling.config import StudyConfig
    from radsurv.modelling.metrics import paired_c_difference
    from radsurv.modelling.study import run_study
    from radsurv.workflow.modelling import _study_inputs

    m = dict(cfg.get("modelling") or {})
    columns = cfg["cohort"].get("columns", {})
    qc: list = []
    sc = StudyConfig.from_dict(m, seed=int(cfg["seed"]))
    X, clin, cands = _study_inputs(results / "features/features.tsv", results / "clinical/clinical.tsv",
                                   results / "robustness/robust_features.txt", sc, columns, qc)
    harm = None
    if (cfg.get("harmonisation") or {}).get("enabled"):
        st = HarmonisationSettings.from_config(cfg["harmonisation"])
        ids = clin["patient_id"].astype(str)
        harm = HarmonisationInput(st, pd.Series(clin[st.batch_column].astype(str).to_numpy(), index=ids.to_numpy(),
                                                dtype=object))
    out: dict = {}
    held_out: dict = {}
    runs = [("without harmonisation", sc, None), ("with in-fold ComBat", sc, harm),
            ("volume-adjusted" + (", in-fold ComBat" if harm else ""),
             StudyConfig.from_dict({**m, "volume_adjust": True}, seed=int(cfg["seed"])), harm)]
    for name, config, h in runs:
        if name == "with in-fold ComBat" and h is None:
            continue
        t0 = time.perf_counter()
        res = run_study(X, clin, cands, config, harmonisation=h, n_jobs=1)
        by = res.metrics["by_model"]
        pa = res.predictions_all
        held_out[name] = pa[(pa["model"] == "radiomics") & (pa["set"] == "test")]
        out[f"radiomics C, {name}"] = _ci(by["radiomics"]["harrell_c"])
        out[f"volume C, {name}"] = _ci(by["volume"]["harrell_c"]) if "volume" in by else None
        out[f"t_study {name} (s)"] = round(time.perf_counter() - t0, 1)
    if "radiomics C, with in-fold ComBat" in out:
        out["C change with - without ComBat"] = round(out["radiomics C, with in-fold ComBat"][0]
                                                      - out["radiomics C, without harmonisation"][0], 3)
        # is the change noise? the paired bootstrap of the held-out C difference (same patients,
        # folds and repeats; the study's bootstrap count and seed)
        d = paired_c_difference(held_out["without harmonisation"], held_out["with in-fold ComBat"],
                                n_boot=max(int(sc.bootstrap), 1000), seed=int(cfg["seed"]))
        out["C change with - without ComBat, paired bootstrap"] = {
            "estimate": round(d["estimate"], 3), "ci_95": [round(d["ci_low"], 3), round(d["ci_high"], 3)],
            "share of replicates <= 0": round(d["p_boot_le_0"], 3), "n_boot": d["n_boot_valid"],
            "CI inside +-0.02": bool(-0.02 <= d["ci_low"] and d["ci_high"] <= 0.02)}
    return out


def _planted_heterogeneity(r: Path, control: str) -> dict | None:
    """On the demo (``demo/truth.csv``): which of the control's candidate features still carries the
    planted tumour heterogeneity (Spearman rho with its score ``z_heterogeneity``, which sets the intensity
    spread or, with ``demo.texture: grain``, the grain; over the first scans), beside
    its rho with log volume; the same for the real features. ``None`` without the truth table."""
    import pandas as pd
    from scipy.stats import spearmanr

    truth_f, robust_f = r / "demo/truth.csv", r / "robustness/robust_features.txt"
    if not truth_f.is_file() or not robust_f.is_file():
        return None
    truth = pd.read_csv(truth_f).set_index("patient_id")
    robust = [x for x in robust_f.read_text().split() if "_shape_" not in x]

    def top(table: Path) -> dict:
        f = pd.read_csv(table, sep="\t")
        if "session" in f.columns:
            f = f[f["session"] == f.groupby("patient_id")["session"].transform("min")]
        f = f.set_index("patient_id").reindex(truth.index)
        rho = {c: spearmanr(f[c], truth["z_heterogeneity"], nan_policy="omit")[0] for c in robust if c in f.columns}
        best = max(rho, key=lambda c: abs(rho[c]))
        return {"feature": best, "rho heterogeneity": round(float(rho[best]), 2),
                "rho log volume": round(float(spearmanr(f[best], truth["log_volume"], nan_policy="omit")[0]), 2),
                "features with |rho heterogeneity| >= 0.5": int(sum(abs(v) >= 0.5 for v in rho.values()))}

    ctab = r / "controls" / control / "features.tsv"
    return {"real": top(r / "features/features.tsv"), control: top(ctab)} if ctab.is_file() else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--results", default="results")
    ap.add_argument("--skip-refit", action="store_true", help="only read the run's metrics")
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    r = Path(args.results)
    by = json.loads((r / "model/metrics.json").read_text())["by_model"]
    out: dict = {"real radiomics model (workflow)": _ci(by["radiomics"]["harrell_c"]),
                 "volume-only model (workflow)": _ci(by["volume"]["harrell_c"])}
    vol = out["volume-only model (workflow)"][0]
    for name in (cfg.get("harmonisation") or {}).get("negative_controls") or []:
        f = r / "controls" / name / "metrics.json"
        if not f.is_file():
            out[f"control {name}"] = "not run"
            continue
        m = json.loads(f.read_text())
        c = [round(float(m[k]), 3) for k in ("c_index_test", "c_index_test_ci_low", "c_index_test_ci_high")]
        out[f"control {name}"] = c
        out[f"control {name} - volume"] = round(c[0] - vol, 3)
        if m.get("delta_harrell_c_vs_volume"):  # paired: same patients and folds, patient bootstrap
            out[f"control {name} - volume, paired 95% CI"] = _ci(m["delta_harrell_c_vs_volume"])
        out[f"control {name} within 0.05 of volume"] = bool(abs(c[0] - vol) <= 0.05)
        planted = _planted_heterogeneity(r, name)
        if planted:
            out[f"control {name}: planted heterogeneity (non-shape candidates)"] = planted
    if not args.skip_refit:
        out.update(_refits(cfg, r))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
