"""Benchmark and real-data measurements of the modelling stage (not a pytest test).

Synthetic benchmark (default): the modelling stage (:func:`radsurv.modelling.study.run_study`)
on 300 patients x 1,000 features with random survival forests on 2 cores, time split by
step::

    python tests/benchmarks/bench_modelling.py [--patients 300] [--features 1000] [--jobs 2]

Design: 1,000 features in 100 correlated blocks of 10 (within-block rho ~ 0.9), two
informative blocks (log-hazard 0.8 x block 0 + 0.5 x block 1), Weibull times, ~30%
censoring, age + stage covariates; learner ``rsf`` (300 trees, min leaf tuned over
{5, 15} by inner 3-fold CV), 5-fold outer CV x 1 repeat, 200 bootstrap resamples.
Times: phases of ``run_study`` and seconds per pipeline step summed over every fit
(filter, scale, reduce = correlation clustering, screen, and model = the rest of
``tuned_fit``: estimator fits, inner-CV scoring).

Lung1 (``--lung1``, needs ../shared/data): with the true outcomes, cross-validated C with
95% CIs of the radiomics (all 1,218 features), volume, clinical and combined models;
the shuffled-outcome leakage test over ``--shuffles`` permutations with the same full
pipeline (inner tuning included); and the Aerts 2014 signature::

    python tests/benchmarks/bench_modelling.py --lung1 [--shuffles 10]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from radsurv.modelling import transformers as pipelines
from radsurv.modelling.config import StudyConfig
from radsurv.modelling.study import run_study

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def synthetic(n: int, p: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    blocks = p // 10
    latent = rng.normal(size=(n, blocks))
    X = np.repeat(latent, 10, axis=1)[:, :p] + 0.33 * rng.normal(size=(n, p))
    ids = [f"S{i:04d}" for i in range(n)]
    cols = [f"original_f{j:04d}" for j in range(p)]
    feats = pd.DataFrame(X * rng.uniform(1, 100, p), index=pd.Index(ids, name="patient_id"), columns=cols)
    feats["original_shape_MeshVolume"] = np.exp(rng.normal(10, 1, n))
    age = rng.normal(66, 9, n)
    lp = 0.8 * latent[:, 0] + 0.5 * latent[:, 1] + 0.2 * (age - 66) / 9
    t = 30 * (-np.log(rng.uniform(size=n)) / np.exp(lp)) ** (1 / 1.4)
    c = rng.exponential(90, n)
    clin = pd.DataFrame({"patient_id": ids, "time": np.minimum(t, c).round(2) + 0.01, "event": (t <= c).astype(int),
                         "age": age.round().astype(int).astype(str),
                         "stage": rng.choice(["I", "II", "IIIA", "IIIB"], n)})
    return feats, clin


COVS = {"age": {"type": "numeric"}, "stage": {"type": "ordinal", "levels": ["I", "II", "IIIA", "IIIB"]}}


def bench(n: int, p: int, jobs: int) -> None:
    feats, clin = synthetic(n, p)
    cands = [c for c in feats.columns if c != "original_shape_MeshVolume"]
    cfg = StudyConfig(learner="rsf", cv_folds=5, cv_repeats=1, inner_folds=3, rsf_trees=300, rsf_min_leaf=(5, 15),
                      n_screen=20, bootstrap=200, horizons=(12.0, 24.0, 36.0), clinical_covariates=COVS, seed=42)
    pipelines.reset_step_times()
    t0 = time.perf_counter()
    res = run_study(feats, clin, cands, cfg, n_jobs=jobs)
    total = time.perf_counter() - t0
    st = dict(pipelines.STEP_SECONDS)
    transformer = sum(st.get(k, 0.0) for k in ("filter", "scale", "reduce", "screen"))
    print(f"modelling stage: {n} patients x {p} features, learner rsf, {jobs} cores: total {total:.1f} s")
    print("phases (s):", {k: round(v, 1) for k, v in res.timing.items()})
    steps = {k: round(st.get(k, 0.0), 2) for k in ("filter", "scale", "reduce", "screen")}
    steps["model (fit + inner-CV scoring)"] = round(st.get("tuned_fit_total", 0.0) - transformer, 2)
    print("pipeline steps summed over all fits (s):", steps)
    print(f"fits: {len(res.tuning)} outer-fold tunings + {len(res.final_models)} final models")
    print(res.performance.query("set == 'cross-validated' and metric in ['harrell_c', 'uno_c', 'ibs']")
          .round(3).to_string(index=False))


def lung1(shuffles: int, repeats: int, bootstrap: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_modelling import _load_lung1

    from radsurv.modelling.signatures import validate_signature

    feats, clin = _load_lung1(SHARED)
    raw = pd.read_csv(SHARED / "lung1" / "lung1_clinical_v3.csv", dtype=str, keep_default_na=False)
    raw = raw.rename(columns={"PatientID": "patient_id"}).set_index("patient_id")
    for c in ("age", "clinical.T.Stage", "Overall.Stage"):
        clin[c] = raw.loc[clin["patient_id"], c].to_numpy()
    cands = [c for c in feats.columns if not c.startswith("diagnostics_") and c != "Patient"
             and pd.api.types.is_numeric_dtype(feats[c])]
    cands = [c for c in cands if c != "Unnamed: 0"]
    covs = {"age": {"type": "numeric"},
            "clinical.T.Stage": {"type": "ordinal", "levels": [1, 2, 3, 4], "missing_values": [5]},
            "Overall.Stage": {"type": "ordinal", "levels": ["I", "II", "IIIa", "IIIb"]}}
    cfg = StudyConfig(cv_folds=5, cv_repeats=repeats, inner_folds=3, bootstrap=bootstrap, horizons=(365.0, 730.0),
                      clinical_covariates=covs, seed=42)
    t0 = time.perf_counter()
    res = run_study(feats, clin, cands, cfg, n_jobs=2)
    print(f"Lung1 true outcomes: {res.metrics['n_used']} patients, {res.metrics['events']} events, "
          f"{len(cands)} candidate features, missing covariates {res.metrics['missing_covariates']} (imputed "
          f"in training folds); {cfg.cv_repeats} x 5-fold CV, inner 3-fold; {time.perf_counter() - t0:.0f} s")
    print(res.performance.query("set == 'cross-validated'").round(3).to_string(index=False))

    cs = []
    t0 = time.perf_counter()
    for s in range(shuffles):
        rng = np.random.default_rng(1000 + s)
        cl = clin[["patient_id", "time", "event"]].copy()
        cl[["time", "event"]] = cl[["time", "event"]].to_numpy()[rng.permutation(len(cl))]
        r = run_study(feats, cl, cands, StudyConfig(cv_folds=5, cv_repeats=1, inner_folds=3, bootstrap=0,
                                                    horizons=(365.0,), seed=s))
        cs.append(r.metrics["c_index_test"])
    print(f"Lung1 shuffled outcome ({shuffles} permutations, all {len(cands)} features, full nested pipeline): "
          f"mean CV C {np.mean(cs):.3f} (SD {np.std(cs, ddof=1):.3f}); runs {np.round(cs, 3).tolist()}; "
          f"{time.perf_counter() - t0:.0f} s")
    tab = validate_signature(SHARED / "signatures" / "aerts_2014.yaml", feats, clin, [365, 730], None, 1000, 42)
    print(tab.round(3).to_string(index=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--features", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--lung1", action="store_true")
    ap.add_argument("--shuffles", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=500)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    if a.lung1:
        lung1(a.shuffles, a.repeats, a.bootstrap)
    else:
        bench(a.patients, a.features, a.jobs)


if __name__ == "__main__":
    main()
