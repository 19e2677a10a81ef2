"""Screening benchmark: fixed (untuned) learners and soft-voting ensembles on the 20 radMLBench tables.

Not a pytest test; run it directly::

    python tests/benchmarks/bench_radmlbench_screen.py [--datasets A B ...] [--out DIR]

A cheap screen of candidate defaults for :class:`radsurv.modelling.classification.models.RadiomicsClassifier`
(issue #17): each pipeline is fit on the training patients of the SAME outer folds as
``bench_radmlbench.py --repeats 1`` (stratified 5-fold, seed ``derive_seed(0, 10, 0)``) and
scored on the pooled held-out probabilities (the headline AUC of ``summarise``). No inner
tuning: every step -- quality filter, z-scores, quantile transform, correlation clusters,
univariate screen, learner -- is fit in the outer training patients only. The ensembles
average the members' probabilities. Writes ``radmlbench_screen_<family>.csv`` / ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import QuantileTransformer
from sklearn.svm import SVC

from radsurv.modelling.classification.models import ClassCorrelationReducer, UnivariateScreen
from radsurv.modelling.config import derive_seed
from radsurv.modelling.transformers import QualityFilter, Standardiser

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "radmlbench"


def _prep(quantile: bool = False, reduce: float | None = None, k: int | None = None) -> list:
    steps = [("filter", QualityFilter()), ("scale", Standardiser())]
    if quantile:
        steps.append(("quantile", _Frame(QuantileTransformer(n_quantiles=50, output_distribution="normal"))))
    if reduce is not None:
        steps.append(("reduce", ClassCorrelationReducer(reduce, "f")))
    if k is not None:
        steps.append(("screen", UnivariateScreen(k, "f")))
    return steps


class _Frame:
    """A transformer that keeps the DataFrame columns (so the radsurv steps after it work)."""

    def __init__(self, est):
        self.est = est

    def fit(self, X, y=None):
        self.est.fit(X.to_numpy(float))
        return self

    def transform(self, X):
        return pd.DataFrame(self.est.transform(X.to_numpy(float)), index=X.index, columns=X.columns)

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    def get_params(self, deep=True):
        return {"est": self.est}


def forests(seed: int) -> dict[str, Pipeline]:
    """Random-forest variants (second screen): leaf size, features per split, clustering first."""
    def rf(leaf: int = 3, mf: str | float = "sqrt", n: int = 500) -> RandomForestClassifier:
        return RandomForestClassifier(n, max_features=mf, min_samples_leaf=leaf, class_weight="balanced_subsample",
                                      random_state=seed, n_jobs=1)
    et = ExtraTreesClassifier(500, max_features="sqrt", min_samples_leaf=3, class_weight="balanced",
                              random_state=seed, n_jobs=1)
    return {
        "rf500_all": Pipeline(_prep() + [("m", rf())]),
        "rf500_leaf1": Pipeline(_prep() + [("m", rf(leaf=1))]),
        "rf500_leaf5": Pipeline(_prep() + [("m", rf(leaf=5))]),
        "rf500_log2": Pipeline(_prep() + [("m", rf(mf="log2"))]),
        "rf500_r95": Pipeline(_prep(reduce=0.95) + [("m", rf())]),
        "et500_all": Pipeline(_prep() + [("m", et)]),
    }


def pipelines(seed: int) -> dict[str, Pipeline]:
    rf = RandomForestClassifier(500, max_features="sqrt", min_samples_leaf=3, class_weight="balanced_subsample",
                                random_state=seed, n_jobs=1)
    et = ExtraTreesClassifier(500, max_features="sqrt", min_samples_leaf=3, class_weight="balanced",
                              random_state=seed, n_jobs=1)
    return {
        "rf500_all": Pipeline(_prep() + [("m", rf)]),
        "et500_all": Pipeline(_prep() + [("m", et)]),
        "et500_r90": Pipeline(_prep(reduce=0.9) + [("m", et)]),
        "hgb_reg_r90k64": Pipeline(_prep(reduce=0.9, k=64) + [("m", HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=100, max_depth=2, min_samples_leaf=10, l2_regularization=1.0,
            class_weight="balanced", random_state=seed))]),
        "l2_all_C0.005": Pipeline(_prep() + [("m", LogisticRegression(C=0.005, class_weight="balanced",
                                                                        max_iter=5000))]),
        "l2q_r90_C0.01": Pipeline(_prep(quantile=True, reduce=0.9) + [("m", LogisticRegression(
            C=0.01, class_weight="balanced", max_iter=5000))]),
        "l2q_r90k32_C0.05": Pipeline(_prep(quantile=True, reduce=0.9, k=32) + [("m", LogisticRegression(
            C=0.05, class_weight="balanced", max_iter=5000))]),
        "svm_r90k32": Pipeline(_prep(reduce=0.9, k=32) + [("m", SVC(C=1.0, gamma="scale", probability=False,
                                                                    class_weight="balanced"))]),
    }


ENSEMBLES_FORESTS = {"ens_rf_et": ["rf500_all", "et500_all"]}
ENSEMBLES = {
    "ens_rf_et_l2": ["rf500_all", "et500_all", "l2_all_C0.005"],
    "ens_et_l2q": ["et500_all", "l2q_r90_C0.01"],
    "ens_rf_et_l2q_svm": ["rf500_all", "et500_all", "l2q_r90_C0.01", "svm_r90k32"],
    "ens_all": None,
}


def _proba(pipe: Pipeline, Xtr: pd.DataFrame, ytr: np.ndarray, Xte: pd.DataFrame) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(Xtr, ytr)
        m = pipe.steps[-1][1]
        if isinstance(m, SVC):  # decision value -> training-fitted logistic (Platt on training scores)
            Ztr, Zte = pipe[:-1].transform(Xtr), pipe[:-1].transform(Xte)
            d_tr, d_te = m.decision_function(Ztr), m.decision_function(Zte)
            platt = LogisticRegression(C=1.0).fit(d_tr.reshape(-1, 1), ytr)
            return platt.predict_proba(d_te.reshape(-1, 1))[:, 1]
        return pipe.predict_proba(Xte)[:, 1]


def run(name: str, data: Path, family: str = "mixed") -> dict:
    df = pd.read_csv(data / f"{name}.csv.gz")
    X = df.drop(columns=["ID", "Target"])
    X.index = df["ID"].astype(str)
    y = df["Target"].to_numpy()
    folds = StratifiedKFold(5, shuffle=True, random_state=derive_seed(0, 10, 0)).split(np.zeros(len(y)), y)
    make, ensembles = (forests, ENSEMBLES_FORESTS) if family == "forests" else (pipelines, ENSEMBLES)
    names = list(make(0))
    P = {n: np.full(len(y), np.nan) for n in names}
    t0 = time.perf_counter()
    for f, (tr, te) in enumerate(folds):
        for n, pipe in make(derive_seed(0, 20, 0, f)).items():
            P[n][te] = _proba(pipe, X.iloc[tr], y[tr], X.iloc[te])
    row = {"dataset": name, "n": len(y), "features": X.shape[1]}
    row.update({n: roc_auc_score(y, p) for n, p in P.items()})
    for e, members in ensembles.items():
        row[e] = roc_auc_score(y, np.mean([P[m] for m in (members or names)], axis=0))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("radmlbench_screen_out"))
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--family", choices=["mixed", "forests"], default="mixed",
                    help="mixed: learners of every family and their ensembles; forests: random-forest variants")
    args = ap.parse_args()
    ref = pd.read_csv(args.data / "datasets.csv").set_index("Dataset")
    names = args.datasets or list(ref.index)
    df = pd.DataFrame([run(n, args.data, args.family) for n in names])
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / f"radmlbench_screen_{args.family}.csv", index=False)
    cols = [c for c in df.columns if c not in ("dataset", "n", "features", "seconds")]
    md = ["# radMLBench screen: fixed learners and ensembles (pooled held-out AUC, outer 5-fold x 1)", "",
          "| data set | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    md += [f"| {r.dataset} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |" for _, r in df.iterrows()]
    md.append("| **mean** | " + " | ".join(f"**{df[c].mean():.3f}**" for c in cols) + " |")
    (args.out / f"radmlbench_screen_{args.family}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
