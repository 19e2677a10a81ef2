"""Confound controls around tumour volume.

Many radiomic features are surrogates of tumour size (Welch et al., Radiother Oncol
2019), and a model that only re-learns volume adds nothing to the volume-only
baseline. Two tools:

* :func:`volume_association`: per feature, Spearman's rho with log tumour volume
  (rank-based, so the same as with volume itself) and its p-value, with the
  Benjamini-Hochberg FDR across features (:func:`scipy.stats.spearmanr`,
  :func:`scipy.stats.false_discovery_control`).
* :class:`VolumeResidualiser`: a transformer that, fit on the training patients,
  regresses each feature on log volume (ordinary least squares,
  :class:`sklearn.linear_model.LinearRegression`) and returns the residuals for any
  patient with the training coefficients (volume-adjusted features). Like
  :class:`radsurv.harmonisation.combat.ComBatHarmoniser`, the volume travels as a
  column of ``X`` (``volume_column``) that is read and dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LinearRegression
from sklearn.utils.validation import check_is_fitted

from radsurv.harmonisation.fdr import with_bh_qvalues

__all__ = ["log_volume", "volume_association", "VolumeResidualiser"]


def log_volume(volume: Any) -> np.ndarray:
    """Natural log of the tumour volume of every patient; ``ValueError`` if any is missing or not positive."""
    v = pd.to_numeric(pd.Series(np.asarray(volume).ravel()), errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(v).all() or (v <= 0).any():
        raise ValueError(f"tumour volume must be a positive number for every patient "
                         f"({int((~np.isfinite(v) | (v <= 0)).sum())} missing, zero or negative)")
    return np.log(v)


def volume_association(X: pd.DataFrame, volume: Any, features: Sequence[str] | None = None,
                       alpha: float = 0.05) -> pd.DataFrame:
    """Spearman correlation of each feature with log tumour volume.

    Args:
        X: features, one row per patient.
        volume: tumour volume per patient (rows aligned with ``X``), positive.
        features: columns to test (default: every numeric column of ``X``).
        alpha: FDR level for ``significant``.

    Returns:
        ``feature, rho, abs_rho, p, q_bh, significant, n``, strongest association first.
        Features with fewer than 3 finite values or constant get ``nan``.
    """
    logv = log_volume(volume)
    cols = list(features) if features is not None else [c for c in X.columns
                                                         if pd.api.types.is_numeric_dtype(X[c])]
    rows = []
    for c in cols:
        x = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(x)
        if ok.sum() < 3 or np.nanstd(x[ok]) == 0:
            rows.append({"feature": c, "rho": np.nan, "p": np.nan, "n": int(ok.sum())})
            continue
        res = spearmanr(x[ok], logv[ok])
        rows.append({"feature": c, "rho": float(res.statistic), "p": float(res.pvalue), "n": int(ok.sum())})
    out = pd.DataFrame(rows, columns=["feature", "rho", "p", "n"])
    out["abs_rho"] = out["rho"].abs()
    out = with_bh_qvalues(out, alpha)
    out = out[["feature", "rho", "abs_rho", "p", "q_bh", "significant", "n"]]
    return out.sort_values(["abs_rho", "feature"], ascending=[False, True], kind="mergesort",
                           na_position="last").reset_index(drop=True)


class VolumeResidualiser(TransformerMixin, BaseEstimator):
    """Features adjusted for tumour size: residuals of a per-feature OLS on log volume.

    Fit on the training patients (intercept and slope per feature); any patient's
    adjusted value is ``feature - (intercept + slope * log(volume))`` with those
    training coefficients. ``volume_column`` is read from ``X`` and dropped (keep the
    volume-only baseline in its own block). Features with a non-finite training value
    are an error (filter them first).

    Args:
        volume_column: the column of ``X`` with the tumour volume (any unit, positive).
        add_mean: add the training mean of each feature back (residuals keep the
            feature's scale and location; off: residuals centred on 0).
    """

    def __init__(self, volume_column: str = "volume", add_mean: bool = False) -> None:
        self.volume_column = volume_column
        self.add_mean = add_mean

    def _split(self, X: Any) -> tuple[np.ndarray, pd.DataFrame]:
        if not isinstance(X, pd.DataFrame) or self.volume_column not in X.columns:
            raise ValueError(f"VolumeResidualiser needs a DataFrame with the volume column {self.volume_column!r}")
        logv = log_volume(X[self.volume_column])
        feats = X.drop(columns=[self.volume_column]).apply(pd.to_numeric, errors="coerce").astype(float)
        return logv, feats

    def fit(self, X: pd.DataFrame, y: Any = None) -> VolumeResidualiser:
        logv, feats = self._split(X)
        arr = feats.to_numpy(dtype=float)
        if not np.isfinite(arr).all():
            raise ValueError("missing/non-finite feature values in the training patients: filter them before "
                             "volume adjustment")
        self.features_in_ = [str(c) for c in feats.columns]
        reg = LinearRegression().fit(logv.reshape(-1, 1), arr)
        self.intercept_ = pd.Series(np.atleast_1d(reg.intercept_), index=self.features_in_)
        self.slope_ = pd.Series(np.asarray(reg.coef_).reshape(-1), index=self.features_in_)
        self.mean_ = pd.Series(arr.mean(axis=0), index=self.features_in_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "features_in_")
        logv, feats = self._split(X)
        arr = feats[self.features_in_].to_numpy(dtype=float)
        res = arr - (self.intercept_.to_numpy() + np.outer(logv, self.slope_.to_numpy()))
        if self.add_mean:
            res = res + self.mean_.to_numpy()
        return pd.DataFrame(res, index=X.index, columns=self.features_in_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "features_in_")
        return np.asarray(self.features_in_, dtype=object)
