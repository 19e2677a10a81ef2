"""Benchmark: time per step of a classification study at scale (issue #17).

Not a pytest test; run it directly::

    python tests/benchmarks/bench_classification_scale.py [--patients 500] [--features 2000] [--learners rf]
        [--repeats 1]

A seeded synthetic cohort (``--patients`` x ``--features``, blocks of correlated
features, a binary label tied to a few of them) goes through
:func:`radsurv.modelling.classification.design.run_classification_cv` with the default settings
except the learners. Printed: total wall time and seconds per step summed over all fits
(``prep``: quality filter + z-scores + correlation clustering; ``reduce``: the clustering
alone; ``screen``: univariate screens; ``model``: learner fits), and the nested-CV AUC.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd

from radsurv.modelling.classification.design import run_classification_cv
from radsurv.modelling.classification.models import STEP_SECONDS
from radsurv.modelling.classification.settings import ClassificationSettings


def cohort(n: int, p: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    blocks = rng.normal(size=(n, p // 20))
    X = np.repeat(blocks, 20, axis=1)[:, :p] + rng.normal(0, 0.5, size=(n, p))
    X[:, :40] += 0.6 * y[:, None]
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(p)], index=[f"p{i}" for i in range(n)])
    return df, pd.Series(y, index=df.index)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=500)
    ap.add_argument("--features", type=int, default=2000)
    ap.add_argument("--learners", nargs="+", default=["rf"])
    ap.add_argument("--repeats", type=int, default=None, help="outer CV repeats (default: the schema's)")
    args = ap.parse_args()
    X, y = cohort(args.patients, args.features)
    s = ClassificationSettings(learners=tuple(args.learners))
    if args.repeats is not None:
        s.cv_repeats = args.repeats
    STEP_SECONDS.clear()
    t0 = time.perf_counter()
    res = run_classification_cv(X, y, s, models=["radiomics"])
    total = time.perf_counter() - t0
    out = {"load_1min": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
           "patients": args.patients, "features": args.features, "learners": args.learners,
           "outer": f"{s.cv_folds}x{s.cv_repeats}", "inner": s.inner_folds, "total_s": round(total, 1),
           "steps_s": {k: round(v, 1) for k, v in STEP_SECONDS.items()},
           "auc": round(float(res.metrics.loc[0, "auc"]), 3)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
