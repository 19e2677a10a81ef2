"""The data-dependent feature steps of the survival models, as scikit-learn transformers.

Every step is fit inside whatever training set its pipeline is fit on (an inner CV
fold, an outer CV fold, the development cohort) and applied unchanged to other
patients (the pipelines are assembled in :mod:`radsurv.modelling.learners`):

radiomics branch (``rad``)
    :class:`QualityFilter` (drop features with a missing/non-finite value or zero
    variance in training) -> :class:`Standardiser` (training mean/SD, ddof=1) ->
    :class:`CorrelationReducer` (average-linkage clusters of ``1 - |Spearman rho|``
    cut at ``1 - corr_threshold``, :func:`correlation_clusters`; the member with the
    largest univariate Cox ``|z|`` represents each cluster) ->
    :class:`UnivariateCoxSelector` (top ``k`` by the Cox score test ``|z|``,
    :func:`univariate_cox_score`).
volume branch (``vol``)
    :class:`LogTransform` -> :class:`Standardiser`.
clinical branch (``clin``)
    :class:`radsurv.modelling.clinical_encoder.ClinicalEncoder` (imputation, ordinal/one-hot
    coding, standardisation, all learnt in training).

The clustering of a given training set is memoised (it does not depend on the
hyperparameters or the outcome), so each inner fold computes it once.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import norm, rankdata
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = [
    "QualityFilter",
    "Standardiser",
    "CorrelationReducer",
    "UnivariateCoxSelector",
    "LogTransform",
    "univariate_cox_score",
    "spearman_abs",
    "correlation_clusters",
    "feature_clusters",
    "STEP_SECONDS",
    "reset_step_times",
]


#: Seconds spent per pipeline step since the last :func:`reset_step_times` (for the
#: benchmark's time split; the model fit is ``tuned_fit`` minus the transformer steps).
STEP_SECONDS: Counter[str] = Counter()


def reset_step_times() -> None:
    """Clear :data:`STEP_SECONDS`."""
    STEP_SECONDS.clear()


@contextmanager
def _timed(step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        STEP_SECONDS[step] += time.perf_counter() - t0


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    return pd.DataFrame(np.asarray(X, dtype=float))


class _NamesMixin:
    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.features_out_, dtype=object)


class QualityFilter(_NamesMixin, TransformerMixin, BaseEstimator):
    """Keep features that are finite for every training patient and not constant."""

    def _fit(self, X: pd.DataFrame, y: Any = None) -> QualityFilter:
        X = _frame(X)
        try:
            X = X.astype(float)
        except (TypeError, ValueError):
            X = X.apply(pd.to_numeric, errors="coerce").astype(float)
        arr = X.to_numpy()
        finite = np.isfinite(arr).all(axis=0)
        sd = np.nanstd(np.where(np.isfinite(arr), arr, np.nan), axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
        ok = finite & (np.nan_to_num(sd) > 0)
        self.features_in_ = list(X.columns)
        self.dropped_missing_ = [c for c, f in zip(X.columns, finite, strict=True) if not f]
        self.dropped_constant_ = [c for c, f, o in zip(X.columns, finite, ok, strict=True) if f and not o]
        self.features_out_ = [c for c, o in zip(X.columns, ok, strict=True) if o]
        if not self.features_out_:
            raise ValueError("no feature is complete and non-constant in the training patients")
        return self

    def fit(self, X: pd.DataFrame, y: Any = None) -> QualityFilter:
        with _timed("filter"):
            return self._fit(X, y)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = _frame(X)[self.features_out_]
        try:
            return pd.DataFrame(X.to_numpy(dtype=float), index=X.index, columns=self.features_out_)
        except (TypeError, ValueError):
            return X.apply(pd.to_numeric, errors="coerce").astype(float)


class Standardiser(_NamesMixin, TransformerMixin, BaseEstimator):
    """Z-scores with the training mean and SD (ddof=1); a non-finite value in a new
    patient is set to the training mean (0) with a warning."""

    def _fit(self, X: pd.DataFrame, y: Any = None) -> Standardiser:
        X = _frame(X)
        arr = X.to_numpy(dtype=float)
        self.features_out_ = list(X.columns)
        sd = arr.std(axis=0, ddof=1) if len(arr) > 1 else np.zeros(arr.shape[1])
        self.mean_ = pd.Series(arr.mean(axis=0), index=self.features_out_)
        self.sd_ = pd.Series(np.where(sd > 0, sd, 1.0), index=self.features_out_)
        return self

    def fit(self, X: pd.DataFrame, y: Any = None) -> Standardiser:
        with _timed("scale"):
            return self._fit(X, y)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = _frame(X)
        Z = (X[self.features_out_].to_numpy(dtype=float) - self.mean_.to_numpy()) / self.sd_.to_numpy()
        bad = ~np.isfinite(Z)
        if bad.any():
            warnings.warn(f"{int(bad.sum())} missing/non-finite feature value(s) set to the training mean",
                          RuntimeWarning, stacklevel=2)
            Z[bad] = 0.0
        return pd.DataFrame(Z, index=X.index, columns=self.features_out_)


class LogTransform(_NamesMixin, TransformerMixin, BaseEstimator):
    """Natural log (for tumour volume; non-positive values are an error)."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> LogTransform:
        self.features_out_ = list(_frame(X).columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = _frame(X).apply(pd.to_numeric, errors="coerce").astype(float)
        if (X.to_numpy() <= 0).any():
            raise ValueError(f"log transform of non-positive values in {self.features_out_}")
        return np.log(X)


# --------------------------------------------------------------------------- univariate score, correlation clusters


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


def spearman_abs(Z: np.ndarray) -> np.ndarray:
    """|Spearman rho| matrix of the columns of ``Z`` (no NaN, no constant columns)."""
    R = rankdata(Z, axis=0)
    rho = np.corrcoef(R, rowvar=False)
    return np.abs(np.atleast_2d(rho))


def correlation_clusters(absrho: np.ndarray, corr_threshold: float) -> np.ndarray:
    """Average-linkage clusters on ``1 - |rho|`` cut at ``1 - corr_threshold``."""
    m = absrho.shape[0]
    if m < 2:
        return np.ones(m, dtype=int)
    D = np.clip(1.0 - absrho, 0.0, None)
    D = (D + D.T) / 2.0
    np.fill_diagonal(D, 0.0)
    Lk = linkage(squareform(D, checks=False), method="average")
    return fcluster(Lk, t=1.0 - corr_threshold, criterion="distance")


# --------------------------------------------------------------------------- redundancy reduction and screen


def _zscores(X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    z, _ = univariate_cox_score(X.to_numpy(float), y["time"], y["event"])
    return z


#: Clusters depend only on the (training) data and the threshold, not on the outcome,
#: so inner-loop fits of the same fold reuse them (key: SHA-1 of the data).
_CLUSTER_CACHE: dict[str, np.ndarray] = {}


def feature_clusters(arr: np.ndarray, cols: Sequence[Any], corr_threshold: float) -> np.ndarray:
    """Cluster labels of the columns ``cols`` of ``arr`` (training rows): :func:`correlation_clusters`
    of :func:`spearman_abs`, remembered for the last 64 (data, names, threshold) seen. A correlation
    numpy cannot compute (a column whose ranks do not vary in these rows) counts as "not correlated"."""
    arr = np.ascontiguousarray(arr, dtype=float)
    key = hashlib.sha1(arr.tobytes() + "\x00".join(map(str, cols)).encode()
                       + repr(float(corr_threshold)).encode()).hexdigest()
    clusters = _CLUSTER_CACHE.get(key)
    if clusters is None:
        if len(cols) > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                absrho = np.nan_to_num(spearman_abs(arr), nan=0.0)
            clusters = correlation_clusters(absrho, float(corr_threshold))
        else:
            clusters = np.ones(len(cols), dtype=int)
        if len(_CLUSTER_CACHE) >= 64:
            _CLUSTER_CACHE.pop(next(iter(_CLUSTER_CACHE)))
        _CLUSTER_CACHE[key] = clusters
    return clusters


class CorrelationReducer(_NamesMixin, TransformerMixin, BaseEstimator):
    """One representative per cluster of correlated features (training data only)."""

    def __init__(self, corr_threshold: float = 0.9) -> None:
        self.corr_threshold = corr_threshold

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> CorrelationReducer:
        X = _frame(X)
        cols = sorted(X.columns)  # input-order invariant
        X = X[cols]
        z = _zscores(X, y)
        clusters = feature_clusters(X.to_numpy(float), cols, self.corr_threshold)
        uni = pd.DataFrame({"feature": cols, "absz": np.abs(z), "cluster": clusters})
        ranked = uni.sort_values(["absz", "feature"], ascending=[False, True], kind="mergesort")
        reps = ranked.drop_duplicates("cluster", keep="first")
        self.clusters_ = dict(zip(cols, clusters.tolist(), strict=True))
        self.features_out_ = reps["feature"].tolist()
        return self

    def fit(self, X: pd.DataFrame, y: Any = None) -> CorrelationReducer:
        with _timed("reduce"):
            return self._fit(X, y)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return _frame(X)[self.features_out_]


class UnivariateCoxSelector(_NamesMixin, TransformerMixin, BaseEstimator):
    """The ``k`` features with the largest univariate Cox score-test ``|z|`` in training."""

    def __init__(self, k: int = 5) -> None:
        self.k = k

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> UnivariateCoxSelector:
        X = _frame(X)
        cols = sorted(X.columns)
        z = _zscores(X[cols], y)
        uni = pd.DataFrame({"feature": cols, "z": z, "absz": np.abs(z)})
        ranked = uni.sort_values(["absz", "feature"], ascending=[False, True], kind="mergesort")
        self.scores_ = ranked.set_index("feature")["z"]
        self.features_out_ = ranked["feature"].head(int(self.k)).tolist()
        return self

    def fit(self, X: pd.DataFrame, y: Any = None) -> UnivariateCoxSelector:
        with _timed("screen"):
            return self._fit(X, y)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return _frame(X)[self.features_out_]
