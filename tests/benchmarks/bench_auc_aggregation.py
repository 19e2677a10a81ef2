"""Benchmark: pooled vs per-fold cross-validated AUC when there is no signal (issue #17).

Not a pytest test; run it directly::

    python tests/benchmarks/bench_auc_aggregation.py [--runs 200] [--patients 60 120] [--features 200]

Seeded cohorts of pure noise (``--patients`` x ``--features``, a balanced random binary
label) go through a leakage-free 5-fold CV (z-scores, ANOVA-F top 10 and L2 logistic
regression, C = 0.1, all fit in the training folds, scikit-learn). The true AUC is 0.5.
Printed per cohort size: mean and SD over runs of the POOLED held-out AUC (every held-out
probability ranked against every other, the ``auc`` of
:func:`radsurv.modelling.classification.design.summarise`) and of the MEAN OF PER-FOLD AUCs
(``auc_fold_mean``). Airola et al. (2011) and Parker et al. (2007) report that pooling is
biased downwards with small samples (differently-calibrated fold models ranked together);
this script measures that bias for radsurv's aggregation.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def one_run(n: int, p: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = rng.permutation(np.arange(n) % 2)
    pooled = np.empty(n)
    per_fold = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y):
        pipe = make_pipeline(StandardScaler(), SelectKBest(f_classif, k=10), LogisticRegression(C=0.1))
        pooled[te] = pipe.fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
        per_fold.append(roc_auc_score(y[te], pooled[te]))
    return float(roc_auc_score(y, pooled)), float(np.mean(per_fold))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--patients", type=int, nargs="+", default=[60, 120])
    ap.add_argument("--features", type=int, default=200)
    args = ap.parse_args()
    out = []
    for n in args.patients:
        r = np.array([one_run(n, args.features, s) for s in range(args.runs)])
        out.append({"patients": n, "features": args.features, "runs": args.runs,
                    "pooled_mean": round(float(r[:, 0].mean()), 4), "pooled_sd": round(float(r[:, 0].std(ddof=1)), 4),
                    "per_fold_mean": round(float(r[:, 1].mean()), 4),
                    "per_fold_sd": round(float(r[:, 1].std(ddof=1)), 4)})
        print(json.dumps(out[-1]), flush=True)


if __name__ == "__main__":
    main()
