"""Leakage-free radiomics Cox model with risk groups (foundation version).

Every data-dependent step is fit on the *training* patients only and applied
unchanged to held-out patients:

1. **Quality filter** - candidate features with any missing/non-finite value or
   zero variance in the training set are dropped (and recorded).
2. **Standardisation** - z-scores with the training mean and SD (ddof=1).
3. **Redundancy reduction** - hierarchical clustering (scipy ``linkage``,
   average linkage) on the distance ``1 - |Spearman rho|`` computed on the
   training set, cut at ``1 - corr_threshold``; per cluster the feature with
   the largest univariate Cox ``|z|`` on the training set is kept.
4. **Univariate screen** - a vectorised univariate Cox *score test* (Breslow
   ties, evaluated at beta = 0, which is equivalent to the log-rank test for a
   continuous covariate) ranks the cluster representatives by ``|z|``
   (equivalently by p-value); the top ``n_screen`` are kept.
5. **Multivariable model** - the top ``max_features`` screened features (by
   ``|z|``; no forward selection, deliberately simple) enter a penalised Cox
   model, lifelines ``CoxPHFitter(penalizer, l1_ratio)``.
6. **Risk groups** - the cut-off(s) are the median (``risk_cut="median"``) or
   the tertiles (``"tertiles"``) of the *training* risk scores and are stored
   in the :class:`Signature`; new patients are grouped with these stored values.

The risk score is the linear predictor ``sum_j coef_j * (x_j - mean_j) / sd_j``
(higher = higher hazard = shorter expected survival), which is also the sign
convention of :func:`sksurv.metrics.concordance_index_censored`.

:func:`run_modelling` splits the cohort (stratified by event), fits the
signature on the training split and reports train/held-out metrics.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.statistics import multivariate_logrank_test
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import norm, rankdata
from sklearn.model_selection import train_test_split
from sksurv.metrics import concordance_index_censored

__all__ = [
    "ModelConfig",
    "Signature",
    "ModelResult",
    "split_cohort",
    "univariate_cox_score",
    "fit_signature",
    "harrell_c",
    "run_modelling",
]

RISK_CUTS = ("median", "tertiles")
GROUP_LABELS: dict[str, tuple[str, ...]] = {
    "median": ("low", "high"),
    "tertiles": ("low", "intermediate", "high"),
}
SIGNATURE_FORMAT = "radsurv.signature/1"


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the modelling stage (the ``modelling`` block of the pipeline config).

    Attributes:
        test_fraction: fraction of patients held out (stratified by event).
        seed: seed of the split and of the bootstrap.
        corr_threshold: features with ``|Spearman rho| >= corr_threshold`` (average
            linkage) are merged into one cluster; one representative is kept.
        n_screen: number of cluster representatives kept by the univariate Cox screen.
        max_features: number of screened features entering the multivariable model.
        penalizer: lifelines ``CoxPHFitter`` penalizer of the multivariable model.
        l1_ratio: lifelines elastic-net mixing (0 = ridge, 1 = lasso).
        risk_cut: ``"median"`` (low/high) or ``"tertiles"`` (low/intermediate/high).
        volume_feature: feature used as the volume-only baseline risk score.
        bootstrap: bootstrap resamples for the CI of the held-out C-index.
    """

    test_fraction: float = 0.35
    seed: int = 42
    corr_threshold: float = 0.9
    n_screen: int = 20
    max_features: int = 5
    penalizer: float = 0.1
    l1_ratio: float = 0.0
    risk_cut: str = "median"
    volume_feature: str = "original_shape_MeshVolume"
    bootstrap: int = 500

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0.0 < self.corr_threshold <= 1.0:
            raise ValueError(f"corr_threshold must be in (0, 1], got {self.corr_threshold}")
        if self.n_screen < 1 or self.max_features < 1:
            raise ValueError("n_screen and max_features must be >= 1")
        if self.penalizer < 0:
            raise ValueError(f"penalizer must be >= 0, got {self.penalizer}")
        if not 0.0 <= self.l1_ratio <= 1.0:
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio}")
        if self.risk_cut not in RISK_CUTS:
            raise ValueError(f"risk_cut must be one of {RISK_CUTS}, got {self.risk_cut!r}")
        if self.bootstrap < 0:
            raise ValueError("bootstrap must be >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ModelConfig:
        """Build from a config mapping; unknown keys raise ``ValueError`` (typos)."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown modelling config key(s): {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


# --------------------------------------------------------------------------- signature


@dataclass
class Signature:
    """A fitted radiomics Cox signature: everything needed to score new patients.

    Attributes:
        features: model features, in model order.
        means, sds: training mean and SD (ddof=1) of each model feature.
        coefficients: Cox coefficient per standardised model feature.
        cutoffs: risk-score cut-off(s) from the training set (1 for median, 2 for tertiles).
        risk_cut: ``"median"`` or ``"tertiles"``.
        config: the :class:`ModelConfig` used (as a dict).
        n_train, events_train: size of the training set the signature was fit on.
        selection_log: rows ``{"step", "n_features"}`` documenting feature selection.
        dropped: features dropped in training by reason (``"missing"``, ``"zero_variance"``).
        coef_stats: per model feature ``{"hr", "se", "p"}`` of the penalised fit (reporting only).
    """

    features: list[str]
    means: dict[str, float]
    sds: dict[str, float]
    coefficients: dict[str, float]
    cutoffs: list[float]
    risk_cut: str = "median"
    config: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    events_train: int = 0
    selection_log: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)
    coef_stats: dict[str, dict[str, float]] = field(default_factory=dict)

    # -- scoring ---------------------------------------------------------------
    def standardise(self, X: pd.DataFrame) -> pd.DataFrame:
        """Z-score the model features of ``X`` with the stored training mean/SD.

        Missing values in new patients are imputed with the training mean (0 after
        standardisation) and a ``RuntimeWarning`` is emitted.
        """
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise ValueError(
                f"{len(missing)} signature feature(s) missing from the table: {missing[:10]}"
            )
        Z = X[self.features].apply(pd.to_numeric, errors="coerce").astype(float)
        Z = (Z - pd.Series(self.means)) / pd.Series(self.sds)
        Z = Z[self.features]
        bad = ~np.isfinite(Z.to_numpy())
        if bad.any():
            warnings.warn(
                f"{int(bad.sum())} missing/non-finite model feature value(s) in "
                f"{int(bad.any(axis=1).sum())} patient(s) imputed with the training mean",
                RuntimeWarning,
                stacklevel=2,
            )
            Z = Z.mask(bad, 0.0)
        return Z

    def risk_score(self, X: pd.DataFrame) -> np.ndarray:
        """Linear predictor per row of ``X`` (higher = higher hazard)."""
        Z = self.standardise(X)
        beta = np.array([self.coefficients[f] for f in self.features], dtype=float)
        return Z.to_numpy(dtype=float) @ beta

    def group_from_score(self, scores: np.ndarray) -> np.ndarray:
        """Risk groups for given risk scores using the stored cut-off(s) unchanged.

        A score equal to a cut-off goes to the lower group (``low`` = score <= median).
        """
        scores = np.asarray(scores, dtype=float)
        labels = np.array(GROUP_LABELS[self.risk_cut], dtype=object)
        idx = np.searchsorted(np.asarray(self.cutoffs, dtype=float), scores, side="left")
        return labels[idx]

    def risk_group(self, X: pd.DataFrame) -> np.ndarray:
        """``"low"``/``"high"`` (or ``"low"``/``"intermediate"``/``"high"``) per row of ``X``."""
        return self.group_from_score(self.risk_score(X))

    # -- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict (with a format tag)."""
        d = asdict(self)
        d["format"] = SIGNATURE_FORMAT
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text; floats round-trip exactly (Python ``repr``)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Signature:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        fmt = d.pop("format", SIGNATURE_FORMAT)
        if fmt != SIGNATURE_FORMAT:
            raise ValueError(f"unsupported signature format {fmt!r} (expected {SIGNATURE_FORMAT})")
        return cls(**d)

    def save(self, path: Path | str) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> Signature:
        """Read a signature written by :meth:`save`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


@dataclass
class ModelResult:
    """Output of :func:`run_modelling`.

    Attributes:
        predictions: columns ``patient_id, set ("train"/"test"), time, event,
            risk_score, risk_group``.
        metrics: plain JSON-serialisable numbers (``None`` where not computable).
        coefficients: columns ``feature, coef, hr, se, p`` of the multivariable model
            (standardised features; SE/p from the penalised fit, not post-selection valid).
        signature: the fitted :class:`Signature`.
        selection_log: columns ``step, n_features``.
    """

    predictions: pd.DataFrame
    metrics: dict[str, Any]
    coefficients: pd.DataFrame
    signature: Signature
    selection_log: pd.DataFrame


# --------------------------------------------------------------------------- helpers


def split_cohort(
    clinical: pd.DataFrame, test_fraction: float = 0.35, seed: int = 42
) -> tuple[list[str], list[str]]:
    """Split patients into train/held-out, stratified by event, deterministically.

    Rows are sorted by ``patient_id`` first so the split does not depend on row
    order. Stratification is dropped (with a warning) when an event class has
    fewer than 2 patients.

    Returns:
        ``(train_ids, test_ids)``, each sorted.
    """
    for col in ("patient_id", "event"):
        if col not in clinical.columns:
            raise ValueError(f"clinical table lacks column {col!r}")
    df = clinical[["patient_id", "event"]].copy()
    df["patient_id"] = df["patient_id"].astype(str)
    if df["patient_id"].duplicated().any():
        dup = df.loc[df["patient_id"].duplicated(), "patient_id"].tolist()[:5]
        raise ValueError(f"duplicate patient_id in clinical table: {dup}")
    df = df.sort_values("patient_id", kind="mergesort").reset_index(drop=True)
    ev = df["event"].astype(int).to_numpy()
    stratify: np.ndarray | None = ev
    if np.bincount(ev, minlength=2).min() < 2:
        warnings.warn("fewer than 2 patients in an event class: split not stratified", stacklevel=2)
        stratify = None
    train, test = train_test_split(
        df["patient_id"].to_numpy(),
        test_size=test_fraction,
        random_state=int(np.random.SeedSequence([int(seed), 1]).generate_state(1, dtype=np.uint32)[0]),
        shuffle=True,
        stratify=stratify,
    )
    return sorted(train.tolist()), sorted(test.tolist())


def univariate_cox_score(X: np.ndarray, time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised univariate Cox score test (Breslow ties) for every column of ``X``.

    At beta = 0 the score is ``U_j = sum_events (x_ij - mean of x_j over the risk set)``
    and the information ``I_j = sum_events var of x_j over the risk set``;
    ``z = U / sqrt(I)`` (positive = higher value, higher hazard), ``p`` two-sided.

    Returns:
        ``(z, p)`` arrays of length ``X.shape[1]``; constant columns get z=0, p=1.
    """
    X = np.asarray(X, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    order = np.argsort(time, kind="mergesort")
    t, e, Xs = time[order], event[order], X[order]
    n = len(t)
    # reverse cumulative sums: risk-set sums for "start index k" = rows k..n-1
    s1 = np.cumsum(Xs[::-1], axis=0)[::-1]
    s2 = np.cumsum((Xs**2)[::-1], axis=0)[::-1]
    cnt = np.arange(n, 0, -1, dtype=float)
    start = np.searchsorted(t, t[e], side="left")  # risk set of each event: t_k >= t_i
    mean = s1[start] / cnt[start, None]
    var = s2[start] / cnt[start, None] - mean**2
    U = (Xs[e] - mean).sum(axis=0)
    info = np.clip(var, 0.0, None).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(info > 1e-12, U / np.sqrt(info), 0.0)
    p = 2.0 * norm.sf(np.abs(z))
    return z, p


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float | None:
    """Harrell's C (sksurv; higher risk = shorter survival); ``None`` if no comparable pair."""
    event = np.asarray(event).astype(bool)
    if event.sum() == 0 or len(event) < 2:
        return None
    try:
        c = concordance_index_censored(event, np.asarray(time, dtype=float), np.asarray(risk, dtype=float))[0]
    except ValueError:  # sksurv NoComparablePairException derives from ValueError
        return None
    return float(c)


def _spearman_abs(Z: np.ndarray) -> np.ndarray:
    """|Spearman rho| matrix of the columns of ``Z`` (no NaN, no constant columns)."""
    R = rankdata(Z, axis=0)
    rho = np.corrcoef(R, rowvar=False)
    return np.abs(np.atleast_2d(rho))


def _cluster(absrho: np.ndarray, corr_threshold: float) -> np.ndarray:
    """Average-linkage clusters on ``1 - |rho|`` cut at ``1 - corr_threshold``."""
    m = absrho.shape[0]
    if m < 2:
        return np.ones(m, dtype=int)
    D = np.clip(1.0 - absrho, 0.0, None)
    D = (D + D.T) / 2.0
    np.fill_diagonal(D, 0.0)
    Lk = linkage(squareform(D, checks=False), method="average")
    return fcluster(Lk, t=1.0 - corr_threshold, criterion="distance")


def _as_float_frame(X: pd.DataFrame) -> pd.DataFrame:
    try:
        return X.astype(float)
    except (TypeError, ValueError) as exc:
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        raise ValueError(f"non-numeric candidate feature column(s): {bad[:10]}") from exc


# --------------------------------------------------------------------------- fitting


def fit_signature(
    X_train: pd.DataFrame, time: np.ndarray | pd.Series, event: np.ndarray | pd.Series, cfg: ModelConfig | None = None
) -> Signature:
    """Fit the signature on training patients only (steps 1-6 of the module docstring).

    Args:
        X_train: training patients x candidate features (numeric).
        time, event: training outcomes aligned with the rows of ``X_train``.
        cfg: settings (defaults if ``None``).

    Returns:
        A :class:`Signature`; its ``selection_log`` records the surviving count per step.
    """
    cfg = cfg or ModelConfig()
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(int)
    if len(time) != len(X_train) or len(event) != len(X_train):
        raise ValueError("time/event must have one value per row of X_train")
    if not np.all(np.isfinite(time)) or np.any(time < 0):
        raise ValueError("survival times must be finite and >= 0")
    if not set(np.unique(event)) <= {0, 1}:
        raise ValueError("event must be 0/1")
    if event.sum() < 2:
        raise ValueError(f"only {int(event.sum())} event(s) in the training set: cannot fit a Cox model")

    X = _as_float_frame(X_train)
    X = X[sorted(X.columns)]  # order-invariant
    log: list[dict[str, Any]] = [{"step": "candidates", "n_features": int(X.shape[1])}]

    # (1) quality filter on train
    arr = X.to_numpy()
    has_missing = ~np.isfinite(arr).all(axis=0)
    sd_all = np.nanstd(np.where(np.isfinite(arr), arr, np.nan), axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
    zero_var = ~has_missing & ~(np.nan_to_num(sd_all) > 0)
    dropped = {
        "missing": [c for c, b in zip(X.columns, has_missing, strict=True) if b],
        "zero_variance": [c for c, b in zip(X.columns, zero_var, strict=True) if b],
    }
    keep = ~(has_missing | zero_var)
    X = X.loc[:, keep]
    log.append({"step": "finite_nonconstant", "n_features": int(X.shape[1])})
    if X.shape[1] == 0:
        raise ValueError("no candidate feature is complete and non-constant in the training set")

    # (2) standardise with train mean/sd
    means = X.mean(axis=0)
    sds = X.std(axis=0, ddof=1)
    Z = (X - means) / sds
    Zv = Z.to_numpy()

    # univariate Cox score test on train (used by (3) and (4))
    z, p = univariate_cox_score(Zv, time, event)
    uni = pd.DataFrame({"feature": Z.columns, "z": z, "p": p, "absz": np.abs(z)})

    # (3) redundancy reduction: keep the highest-|z| feature per cluster
    clusters = _cluster(_spearman_abs(Zv), cfg.corr_threshold)
    uni["cluster"] = clusters
    ranked = uni.sort_values(["absz", "feature"], ascending=[False, True], kind="mergesort")
    reps = ranked.drop_duplicates("cluster", keep="first")
    log.append({"step": "redundancy_reduced", "n_features": int(len(reps))})

    # (4) univariate screen: top n_screen by |z| (= smallest p)
    screened = reps.head(cfg.n_screen)
    log.append({"step": "univariate_screen", "n_features": int(len(screened))})

    # (5) penalised multivariable Cox on the top max_features
    chosen = screened["feature"].head(cfg.max_features).tolist()
    df = Z[chosen].copy()
    df["time"] = time
    df["event"] = event
    cph = CoxPHFitter(penalizer=cfg.penalizer, l1_ratio=cfg.l1_ratio)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cph.fit(df, duration_col="time", event_col="event")
    except Exception as exc:  # lifelines ConvergenceError and friends
        raise ValueError(f"multivariable Cox model did not converge on {chosen}: {exc}") from exc
    for msg in {str(w.message).strip().splitlines()[0] for w in caught}:
        warnings.warn(f"multivariable Cox fit (lifelines): {msg}", RuntimeWarning, stacklevel=2)
    coefs = {f: float(cph.params_[f]) for f in chosen}
    summ = cph.summary
    coef_stats = {
        f: {"hr": float(summ.loc[f, "exp(coef)"]), "se": float(summ.loc[f, "se(coef)"]), "p": float(summ.loc[f, "p"])}
        for f in chosen
    }
    log.append({"step": "in_model", "n_features": int(len(chosen))})

    sig = Signature(
        features=chosen,
        means={f: float(means[f]) for f in chosen},
        sds={f: float(sds[f]) for f in chosen},
        coefficients=coefs,
        cutoffs=[],
        risk_cut=cfg.risk_cut,
        config=cfg.to_dict(),
        n_train=int(len(time)),
        events_train=int(event.sum()),
        selection_log=log,
        dropped=dropped,
        coef_stats=coef_stats,
    )
    # (6) cut-off(s) from the TRAINING risk scores
    train_scores = Z[chosen].to_numpy() @ np.array([coefs[f] for f in chosen])
    qs = [0.5] if cfg.risk_cut == "median" else [1.0 / 3.0, 2.0 / 3.0]
    sig.cutoffs = [float(v) for v in np.quantile(train_scores, qs)]
    return sig


# --------------------------------------------------------------------------- evaluation


def _bootstrap_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, n: int, seed: int) -> tuple[float | None, float | None]:
    """Percentile 95% CI of Harrell's C over ``n`` seeded bootstrap resamples."""
    if n <= 0 or len(time) < 2:
        return None, None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = rng.integers(0, len(time), len(time))
        c = harrell_c(time[idx], event[idx], risk[idx])
        if c is not None:
            vals.append(c)
    if len(vals) < max(10, n // 2):
        return None, None
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def _group_tests(pred: pd.DataFrame, labels: tuple[str, ...]) -> dict[str, Any]:
    """Log-rank test and HR (high vs low, with 95% CI) between risk groups of ``pred``."""
    out: dict[str, Any] = {"logrank_chi2": None, "logrank_p": None, "hr_high_vs_low": None,
                           "hr_ci_low": None, "hr_ci_high": None, "hr_p": None}
    present = [g for g in labels if (pred["risk_group"] == g).any()]
    if len(present) >= 2 and pred["event"].sum() > 0:
        res = multivariate_logrank_test(pred["time"], pred["risk_group"], pred["event"])
        out["logrank_chi2"] = float(res.test_statistic)
        out["logrank_p"] = float(res.p_value)
    if "low" in present and "high" in present:
        dummies = [g for g in labels if g != "low" and g in present]
        df = pd.DataFrame({"time": pred["time"].to_numpy(float), "event": pred["event"].to_numpy(int)})
        for g in dummies:
            df[g] = (pred["risk_group"].to_numpy() == g).astype(float)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cph = CoxPHFitter().fit(df, duration_col="time", event_col="event")
            row = cph.summary.loc["high"]
            vals = [float(row["exp(coef)"]), float(row["exp(coef) lower 95%"]),
                    float(row["exp(coef) upper 95%"]), float(row["p"])]
            if all(math.isfinite(v) for v in vals):
                out["hr_high_vs_low"], out["hr_ci_low"], out["hr_ci_high"], out["hr_p"] = vals
        except Exception:  # no events in a group, separation, ... -> not estimable
            pass
    return out


def run_modelling(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    candidate_features: list[str],
    cfg: ModelConfig | None = None,
    split: tuple[list[str], list[str]] | None = None,
) -> ModelResult:
    """Split, fit the signature on train, score train and held-out, report metrics.

    Args:
        features: radiomics table, index = patient_id.
        clinical: columns ``patient_id, time, event``.
        candidate_features: columns of ``features`` the model may use.
        cfg: settings (defaults if ``None``).
        split: optional precomputed ``(train_ids, test_ids)``; default
            :func:`split_cohort` on the patients present in both tables.

    Only patients present in both tables are used; counts of the others are in
    ``metrics`` (``n_clinical_only``, ``n_features_only``).

    Raises:
        ValueError: candidate features missing from the table, no overlapping
            patient ids, duplicate ids, missing clinical columns.
    """
    cfg = cfg or ModelConfig()
    candidate_features = list(dict.fromkeys(candidate_features))
    if not candidate_features:
        raise ValueError("candidate_features is empty")
    missing = [c for c in candidate_features if c not in features.columns]
    if missing:
        raise ValueError(
            f"{len(missing)} candidate feature(s) not in the feature table: {missing[:10]}"
            + (" ..." if len(missing) > 10 else "")
        )
    for col in ("patient_id", "time", "event"):
        if col not in clinical.columns:
            raise ValueError(f"clinical table lacks column {col!r}")

    feats = features.copy()
    feats.index = feats.index.astype(str)
    if feats.index.duplicated().any():
        raise ValueError(f"duplicate patient ids in the feature table: {feats.index[feats.index.duplicated()][:5].tolist()}")
    clin = clinical[["patient_id", "time", "event"]].copy()
    clin["patient_id"] = clin["patient_id"].astype(str)
    if clin["patient_id"].duplicated().any():
        raise ValueError(f"duplicate patient ids in the clinical table: {clin.loc[clin['patient_id'].duplicated(), 'patient_id'][:5].tolist()}")
    if clin[["time", "event"]].isna().any().any():
        raise ValueError("clinical time/event contain missing values")

    common = sorted(set(clin["patient_id"]) & set(feats.index))
    if not common:
        raise ValueError(
            "no patient_id is present in both the clinical and the feature table "
            f"(e.g. clinical {clin['patient_id'].head(3).tolist()}, features {feats.index[:3].tolist()})"
        )
    clin = clin.set_index("patient_id").loc[common]
    clin["time"] = clin["time"].astype(float)
    clin["event"] = clin["event"].astype(int)

    if split is None:
        train_ids, test_ids = split_cohort(clin.reset_index(), cfg.test_fraction, cfg.seed)
    else:
        train_ids, test_ids = sorted(map(str, split[0])), sorted(map(str, split[1]))
        unknown = sorted((set(train_ids) | set(test_ids)) - set(common))
        if unknown or set(train_ids) & set(test_ids):
            raise ValueError(f"invalid split: overlapping ids or ids not in both tables ({unknown[:5]})")

    tr, te = clin.loc[train_ids], clin.loc[test_ids]
    sig = fit_signature(feats.loc[train_ids, candidate_features], tr["time"], tr["event"], cfg)

    parts = []
    for name, cl in (("train", tr), ("test", te)):
        s = sig.risk_score(feats.loc[cl.index])
        parts.append(pd.DataFrame({
            "patient_id": cl.index.to_numpy(), "set": name, "time": cl["time"].to_numpy(),
            "event": cl["event"].to_numpy(), "risk_score": s, "risk_group": sig.group_from_score(s),
        }))
    pred = pd.concat(parts, ignore_index=True)
    ptr, pte = pred[pred["set"] == "train"], pred[pred["set"] == "test"]

    def _arr(p: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return p["time"].to_numpy(float), p["event"].to_numpy(int), p["risk_score"].to_numpy(float)

    c_lo, c_hi = _bootstrap_c(*_arr(pte), n=cfg.bootstrap, seed=cfg.seed)
    metrics: dict[str, Any] = {
        "n_clinical": int(len(clinical)),
        "n_feature_rows": int(len(features)),
        "n_used": int(len(common)),
        "n_clinical_only": int(len(set(clinical["patient_id"].astype(str)) - set(common))),
        "n_features_only": int(len(set(feats.index) - set(common))),
        "n_train": int(len(ptr)),
        "n_test": int(len(pte)),
        "events_train": int(ptr["event"].sum()),
        "events_test": int(pte["event"].sum()),
        "n_candidate_features": int(len(candidate_features)),
        "n_model_features": int(len(sig.features)),
        "c_index_train": harrell_c(*_arr(ptr)),
        "c_index_test": harrell_c(*_arr(pte)),
        "c_index_test_ci_low": c_lo,
        "c_index_test_ci_high": c_hi,
        "n_bootstrap": int(cfg.bootstrap),
        "c_index_volume_train": None,
        "c_index_volume_test": None,
        "risk_cut": cfg.risk_cut,
    }
    for i, c in enumerate(sig.cutoffs, start=1):
        metrics[f"cutoff_{i}"] = float(c)
    if cfg.volume_feature in feats.columns:
        vol = pd.to_numeric(feats[cfg.volume_feature], errors="coerce")
        for name, p in (("train", ptr), ("test", pte)):
            v = vol.loc[p["patient_id"]].to_numpy(float)
            ok = np.isfinite(v)
            metrics[f"c_index_volume_{name}"] = harrell_c(p["time"].to_numpy(float)[ok], p["event"].to_numpy(int)[ok], v[ok])
    labels = GROUP_LABELS[cfg.risk_cut]
    for name, p in (("train", ptr), ("test", pte)):
        for g in labels:
            metrics[f"n_{g}_{name}"] = int((p["risk_group"] == g).sum())
        for k, v in _group_tests(p, labels).items():
            metrics[f"{k}_{name}"] = v

    coef_df = pd.DataFrame({
        "feature": sig.features,
        "coef": [sig.coefficients[f] for f in sig.features],
        "hr": [sig.coef_stats[f]["hr"] for f in sig.features],
        "se": [sig.coef_stats[f]["se"] for f in sig.features],
        "p": [sig.coef_stats[f]["p"] for f in sig.features],
    })
    return ModelResult(
        predictions=pred,
        metrics=metrics,
        coefficients=coef_df,
        signature=sig,
        selection_log=pd.DataFrame(sig.selection_log),
    )
