"""Batch-effect diagnostics before and after in-fold harmonisation, and the survival
C-index with and without it.

* :func:`site_prediction_auc`: how well the batch (centre, scanner) can be predicted
  from the features, by repeated stratified K-fold cross-validation; every
  data-dependent step (ComBat when ``harmonise``, standardisation, the penalty of the
  logistic regression, chosen by an inner CV) is fit inside the training folds.
  Two batches: ROC AUC; more: one-vs-rest macro AUC. 0.5 = the features carry no
  trace of the batch. The CI is a percentile bootstrap over patients (replicate ``b``
  scores CV repeat ``b mod R``, so it covers patient sampling and CV-split variation).
* :func:`kruskal_batch_test`: per feature, Kruskal-Wallis test of a batch difference,
  Benjamini-Hochberg FDR across features.
* :func:`cross_fitted_harmonisation`: each patient harmonised by ComBat fit on the other
  folds (what the "after" rows of the per-feature test and the PCA figure use: the
  honest, out-of-fold view).
* :func:`pca_figure`: the first two principal components before and after, coloured by
  batch (matplotlib, Agg).
* :func:`cv_risk_scores` / :func:`compare_survival_models`: held-out risk scores of
  survival pipelines (:func:`radsurv.modelling.learners.build_pipeline`, optionally with
  :func:`radsurv.harmonisation.combat.with_harmonisation`) by repeated stratified
  K-fold with hyperparameters tuned inside each training fold
  (:func:`radsurv.modelling.learners.tuned_fit`), and Harrell's C with paired bootstrap CIs
  (:func:`radsurv.modelling.metrics.bootstrap_metrics`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kruskal
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from radsurv.harmonisation.combat import ComBatHarmoniser
from radsurv.harmonisation.fdr import with_bh_qvalues

__all__ = ["SiteAUC", "site_prediction_auc", "kruskal_batch_test", "cross_fitted_harmonisation", "pca_figure",
           "cv_risk_scores", "compare_survival_models"]

CLASSIFIERS = ("logistic", "forest")


@dataclass
class SiteAUC:
    """Cross-validated site-prediction AUC with its bootstrap CI."""

    estimate: float
    ci_low: float
    ci_high: float
    per_repeat: list[float]
    n_patients: int
    batches: dict[str, int]
    harmonised: bool
    metric: str
    ci_method: str
    excluded: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        return (f"site-prediction {self.metric} {self.estimate:.3f} (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}; "
                f"{'after in-fold ComBat' if self.harmonised else 'no harmonisation'}; {self.n_patients} patients, "
                f"{len(self.batches)} batches)")


def _harmoniser(harmoniser: ComBatHarmoniser | None) -> ComBatHarmoniser:
    return clone(harmoniser) if harmoniser is not None else ComBatHarmoniser()


def _classifier(kind: str, n_classes: int, seed: int) -> Any:
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegressionCV(
            Cs=[0.01, 0.1, 1.0, 10.0], cv=StratifiedKFold(3, shuffle=True, random_state=seed),
            scoring="roc_auc" if n_classes == 2 else "roc_auc_ovr", max_iter=5000))
    if kind == "forest":
        return RandomForestClassifier(n_estimators=300, min_samples_leaf=3, random_state=seed, n_jobs=1)
    raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {kind!r}")


def _auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    if len(present) < len(classes):
        return float("nan")
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))


def site_prediction_auc(
    X: pd.DataFrame,
    batch: Sequence[Any] | pd.Series,
    harmonise: bool = False,
    harmoniser: ComBatHarmoniser | None = None,
    covariates: pd.DataFrame | None = None,
    n_splits: int = 5,
    n_repeats: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
    classifier: str = "logistic",
) -> SiteAUC:
    """Cross-validated AUC of predicting the batch from the features.

    Args:
        X: features only (one row per patient; every column is used).
        batch: batch label per row.
        harmonise: fit ComBat (``harmoniser``, default :class:`ComBatHarmoniser`) in each
            training fold and apply it to the held-out fold before the classifier.
        covariates: protected covariates for the harmoniser (columns named as in its
            ``covariates`` / ``categorical_covariates``), rows aligned with ``X``.
        n_splits, n_repeats: outer repeated stratified K-fold (stratified by batch).
        n_boot: bootstrap replicates of the CI.
        classifier: ``logistic`` (L2 logistic regression, penalty by inner 3-fold CV on
            the training fold) or ``forest`` (random forest, also catches non-linear
            and spread differences).

    Batches with fewer patients than ``n_splits`` cannot be stratified and are left
    out (listed in ``excluded``).
    """
    lab = pd.Series(np.asarray(batch, dtype=object), index=X.index).astype(str)
    counts = lab.value_counts()
    small = counts[counts < max(int(n_splits), 2)]
    keep = ~lab.isin(small.index)
    Xk, lab = X.loc[keep.to_numpy()], lab[keep]
    if lab.nunique() < 2:
        raise ValueError("site prediction needs at least two batches with enough patients")
    classes = np.array(sorted(lab.unique()))
    y = lab.to_numpy()
    h = _harmoniser(harmoniser) if harmonise else None
    if h is not None:
        Xk = Xk.assign(**{h.batch_column: lab.to_numpy()})
        if covariates is not None:
            cov = covariates.loc[keep.to_numpy()]
            Xk = pd.concat([cov, Xk.drop(columns=[c for c in cov.columns if c in Xk.columns])], axis=1)
    probs: list[np.ndarray] = []
    per_repeat: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(int(n_repeats)):
            skf = StratifiedKFold(n_splits=int(n_splits), shuffle=True, random_state=seed + r)
            P = np.full((len(y), len(classes)), np.nan)
            for tr, te in skf.split(np.zeros(len(y)), y):
                Xtr, Xte = Xk.iloc[tr], Xk.iloc[te]
                if h is not None:
                    hf = clone(h).fit(Xtr)
                    Xtr, Xte = hf.transform(Xtr), hf.transform(Xte)
                clf = _classifier(classifier, len(classes), seed + r).fit(Xtr.to_numpy(float), y[tr])
                pr = clf.predict_proba(Xte.to_numpy(float))
                order = [list(clf.classes_).index(c) for c in classes]
                P[te] = pr[:, order]
            probs.append(P)
            per_repeat.append(_auc(y, P, classes))
        rng = np.random.default_rng(seed)
        boots = []
        for b in range(int(n_boot)):
            rows = rng.integers(0, len(y), len(y))
            boots.append(_auc(y[rows], probs[b % len(probs)][rows], classes))
    boots_arr = np.array(boots, dtype=float)
    boots_arr = boots_arr[np.isfinite(boots_arr)]
    lo, hi = (np.percentile(boots_arr, [2.5, 97.5]) if len(boots_arr) >= 10 else (np.nan, np.nan))
    return SiteAUC(
        estimate=float(np.nanmean(per_repeat)), ci_low=float(lo), ci_high=float(hi), per_repeat=per_repeat,
        n_patients=len(y), batches={str(k): int(v) for k, v in lab.value_counts().sort_index().items()},
        harmonised=bool(harmonise), metric="ROC AUC" if len(classes) == 2 else "one-vs-rest macro ROC AUC",
        ci_method=(f"95% percentile bootstrap over patients ({int(n_boot)} replicates; replicate b scores CV "
                   f"repeat b mod {int(n_repeats)} of {int(n_splits)}-fold CV)"),
        excluded={str(k): int(v) for k, v in small.items()},
    )


def kruskal_batch_test(X: pd.DataFrame, batch: Sequence[Any] | pd.Series, alpha: float = 0.05) -> pd.DataFrame:
    """Per-feature Kruskal-Wallis test of a difference between batches, BH-FDR adjusted.

    Returns:
        ``feature, H, p, q_bh, significant``, most significant first; a feature that is
        constant across all patients gets ``nan``.
    """
    lab = np.asarray(batch, dtype=object).astype(str)
    levels = sorted(set(lab))
    if len(levels) < 2:
        raise ValueError("a batch test needs at least two batches")
    rows = []
    for c in X.columns:
        x = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float)
        groups = [x[(lab == lv) & np.isfinite(x)] for lv in levels]
        groups = [g for g in groups if len(g)]
        if len(groups) < 2 or np.ptp(np.concatenate(groups)) == 0:
            rows.append({"feature": c, "H": np.nan, "p": np.nan})
            continue
        res = kruskal(*groups)
        rows.append({"feature": c, "H": float(res.statistic), "p": float(res.pvalue)})
    out = pd.DataFrame(rows, columns=["feature", "H", "p"])
    out = with_bh_qvalues(out, alpha)
    return out.sort_values(["p", "feature"], kind="mergesort", na_position="last").reset_index(drop=True)


def cross_fitted_harmonisation(X: pd.DataFrame, batch: Sequence[Any] | pd.Series,
                               harmoniser: ComBatHarmoniser | None = None, covariates: pd.DataFrame | None = None,
                               n_splits: int = 5, seed: int = 0) -> pd.DataFrame:
    """Every patient's features harmonised by ComBat fit on the other folds (stratified by batch).

    Patients of a batch the fold's training patients could not estimate follow the
    harmoniser's ``unseen_batch`` policy.
    """
    h = _harmoniser(harmoniser)
    lab = np.asarray(batch, dtype=object).astype(str)
    Xb = X.assign(**{h.batch_column: lab})
    if covariates is not None:
        Xb = pd.concat([covariates, Xb.drop(columns=[c for c in covariates.columns if c in Xb.columns])], axis=1)
    counts = pd.Series(lab).value_counts()
    k = int(max(2, min(n_splits, counts.max())))
    strat = np.where(pd.Series(lab).map(counts).to_numpy() >= k, lab, "__small__")
    out = pd.DataFrame(np.nan, index=X.index, columns=X.columns, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(lab)), strat):
            hf = clone(h).fit(Xb.iloc[tr])
            out.iloc[te] = hf.transform(Xb.iloc[te])[list(X.columns)].to_numpy(dtype=float)
    return out


def pca_figure(before: pd.DataFrame, after: pd.DataFrame | None, batch: Sequence[Any] | pd.Series,
               path: str | Path, title: str = "Features by batch") -> Path:
    """Scatter of the first two principal components (of z-scored features), coloured by
    batch: ``before`` and, when given, ``after`` harmonisation side by side. PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from radsurv.report.plots import save_figure

    lab = np.asarray(batch, dtype=object).astype(str)
    levels = sorted(set(lab))
    panels = [("before harmonisation", before)] + ([("after in-fold ComBat (cross-fitted)", after)]
                                                   if after is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(levels) <= 10 else "tab20")
    for ax, (name, frame) in zip(axes[0], panels, strict=True):
        arr = frame.to_numpy(dtype=float)
        ok = np.isfinite(arr).all(axis=0) & (np.nanstd(arr, axis=0) > 0)
        Z = StandardScaler().fit_transform(arr[:, ok])
        pca = PCA(n_components=2, random_state=0).fit(Z)
        pc = pca.transform(Z)
        for i, lv in enumerate(levels):
            m = lab == lv
            ax.scatter(pc[m, 0], pc[m, 1], s=14, alpha=0.75, color=cmap(i % cmap.N), label=f"{lv} (n={int(m.sum())})")
        ev = pca.explained_variance_ratio_ * 100
        ax.set_xlabel(f"PC1 ({ev[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC2 ({ev[1]:.0f}% of variance)")
        ax.set_title(name)
        ax.legend(fontsize=7, loc="best", title="batch", title_fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path, dpi=110)


def cv_risk_scores(pipe: Any, grid: Mapping[str, list[Any]], X: pd.DataFrame, y: np.ndarray, n_splits: int = 5,
                   n_repeats: int = 3, inner_folds: int = 3, seed: int = 0) -> list[np.ndarray]:
    """Held-out risk scores of ``pipe`` (one array per CV repeat, rows as ``X``).

    Outer: repeated K-fold stratified by event; inner: hyperparameters by
    :func:`radsurv.modelling.learners.tuned_fit` on the training fold only, then refit on it.
    Every step of ``pipe`` (harmonisation included) is therefore fit on training
    patients only.
    """
    from radsurv.modelling.learners import tuned_fit

    ev = y["event"].astype(int)
    out = []
    for r in range(int(n_repeats)):
        risk = np.full(len(y), np.nan)
        skf = StratifiedKFold(n_splits=int(n_splits), shuffle=True, random_state=seed + r)
        for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), ev)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est, _, _ = tuned_fit(pipe, grid, X.iloc[tr], y[tr], inner_folds, seed + 1000 * r + k)
                risk[te] = est.predict(X.iloc[te])
        out.append(risk)
    return out


def compare_survival_models(scores: Mapping[str, list[np.ndarray]], y: np.ndarray, n_boot: int = 1000,
                            seed: int = 0, reference: str | None = None) -> pd.DataFrame:
    """Harrell's C (and Uno's C) per model with paired percentile bootstrap 95% CIs
    (:func:`radsurv.modelling.metrics.bootstrap_metrics`; the same patient resamples for every
    model, so ``delta_harrell_c_vs_<reference>`` has a CI too)."""
    from radsurv.modelling.metrics import bootstrap_metrics

    sets = {name: [(s, None) for s in reps] for name, reps in scores.items()}
    return bootstrap_metrics(y, y, sets, np.array([]), [], None, n_boot, seed, reference=reference)
