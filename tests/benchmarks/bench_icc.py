"""Benchmark: radsurv.robustness.icc (vectorised) vs a loop of pingouin.intraclass_corr.

Not a pytest test (no ``test_`` prefix); run it directly::

    python tests/benchmarks/bench_icc.py [--features 2000] [--subjects 30] [--pingouin-subset 200]

Design: 2,000 features x 30 patients x 2 scans (test-retest), seeded.

* radsurv: ``icc(data, form)`` on the whole (2000, 30, 2) array, timed for
  ICC(3,1) alone and for all six forms (six calls), best of 5 repeats.
* pingouin: one ``intraclass_corr`` call per feature (each call returns all six
  forms). The loop is slow, so only the first ``--pingouin-subset`` features
  are timed and the time is *extrapolated linearly* to all features. The long
  (tidy) frames pingouin needs are built before the timer starts, so the
  pingouin time is the call alone. The ratio is pingouin(extrapolated) /
  radsurv. Agreement of the two on the timed subset is checked (1e-6).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from radsurv.robustness.icc import FORMS, icc

PG_NAMES = {"ICC(1,1)": "ICC(1,1)", "ICC(2,1)": "ICC(A,1)", "ICC(3,1)": "ICC(C,1)",
            "ICC(1,k)": "ICC(1,k)", "ICC(2,k)": "ICC(A,k)", "ICC(3,k)": "ICC(C,k)"}


def _best_of(fn, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=2000)
    ap.add_argument("--subjects", type=int, default=30)
    ap.add_argument("--scans", type=int, default=2)
    ap.add_argument("--pingouin-subset", type=int, default=200)
    args = ap.parse_args()

    import pingouin as pg

    rng = np.random.default_rng(2024)
    m, n, k = args.features, args.subjects, args.scans
    data = rng.normal(size=(m, n, 1)) * rng.uniform(0.1, 3.0, size=(m, 1, 1)) + rng.normal(size=(m, n, k))

    t_icc3 = _best_of(lambda: icc(data, "ICC(3,1)"))
    t_all = _best_of(lambda: [icc(data, f) for f in FORMS])

    sub = min(args.pingouin_subset, m)
    targets, raters = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)
    frames = [pd.DataFrame({"t": targets, "r": raters, "s": data[i].ravel()}) for i in range(sub)]
    tables = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        for fr in frames:
            tables.append(pg.intraclass_corr(fr, "t", "r", "s"))
        t_pg_sub = time.perf_counter() - t0
    t_pg = t_pg_sub * m / sub

    # Sanity: same numbers on the timed subset.
    worst = 0.0
    for form in FORMS:
        ours = icc(data[:sub], form).icc
        theirs = np.array([tab.set_index("Type").at[PG_NAMES[form], "ICC"] for tab in tables])
        worst = max(worst, float(np.max(np.abs(ours - theirs))))
    assert worst < 1e-6, worst

    print(f"design: {m} features x {n} subjects x {k} scans")
    print(f"radsurv icc, ICC(3,1), all features:        {t_icc3:10.4f} s (best of 5)")
    print(f"radsurv icc, all six forms, all features:   {t_all:10.4f} s (best of 5)")
    print(f"pingouin loop, {sub} features (measured):     {t_pg_sub:10.4f} s")
    print(f"pingouin loop, {m} features (extrapolated x{m / sub:g}): {t_pg:10.2f} s (returns all six forms)")
    print(f"ratio pingouin / radsurv ICC(3,1):  {t_pg / t_icc3:10.0f}x")
    print(f"ratio pingouin / radsurv six forms: {t_pg / t_all:10.0f}x")
    print(f"max |ICC difference| on the {sub} timed features, all forms: {worst:.2e}")


if __name__ == "__main__":
    main()
