"""Clinical covariates as model inputs: :class:`ClinicalEncoder`, a scikit-learn transformer.

The covariate definitions and parsing (:class:`radsurv.ingest.clinical.CovariateSpec`) live
with the clinical table; the encoder, which learns imputation, coding and scaling from
the training patients of a fit, lives with the other model transformers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from radsurv.ingest.clinical import CovariateSpec

__all__ = ["ClinicalEncoder"]


class ClinicalEncoder(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: clinical covariates (text) -> standardised model columns.

    Everything is learnt from the training patients in :meth:`fit`: the imputation
    value of each covariate (median for numeric and ordinal codes, the most frequent
    level for categorical), the categorical levels (if not configured) and the
    mean/SD used to standardise each output column. :meth:`transform` applies them
    unchanged; a categorical level never seen in training gets all indicators 0 and
    a warning.

    Args:
        specs: list of :class:`CovariateSpec` as dicts (``CovariateSpec.to_dict``),
            so the estimator stays clonable.
    """

    def __init__(self, specs: Sequence[Mapping[str, Any]] = ()) -> None:
        self.specs = specs

    def _specs(self) -> list[CovariateSpec]:
        return [CovariateSpec(**dict(s)) for s in self.specs]

    def _raw(self, X: pd.DataFrame) -> dict[str, tuple[list[Any], list[bool]]]:
        return {s.name: s.parse(list(X[s.name])) for s in self._specs()}

    def fit(self, X: pd.DataFrame, y: Any = None) -> ClinicalEncoder:
        import warnings

        raw = self._raw(X)
        self.fill_: dict[str, Any] = {}
        self.levels_: dict[str, list[str]] = {}
        self.n_missing_train_: dict[str, int] = {}
        for s in self._specs():
            vals, miss = raw[s.name]
            self.n_missing_train_[s.name] = int(sum(miss))
            present = [v for v, m in zip(vals, miss, strict=True) if not m]
            if not present:
                raise ValueError(f"clinical covariate {s.name!r} is missing for every training patient")
            if s.type == "numeric":
                self.fill_[s.name] = float(np.median(present))
            elif s.type == "ordinal":
                codes = [s.levels.index(v) for v in present]
                self.fill_[s.name] = float(np.median(codes))
            else:
                levels = s.levels or sorted(set(present))
                counts = pd.Series(present).value_counts()
                self.fill_[s.name] = str(sorted(counts[counts == counts.max()].index)[0])
                self.levels_[s.name] = list(levels)
                if len(levels) < 2:
                    warnings.warn(f"categorical covariate {s.name!r} has one level in training", RuntimeWarning,
                                  stacklevel=2)
        M = self._matrix(raw, fit=True)
        self.mean_ = M.mean(axis=0)
        sd = M.std(axis=0, ddof=1) if len(M) > 1 else np.zeros(M.shape[1])
        self.scale_ = np.where(sd > 0, sd, 1.0)
        return self

    def _matrix(self, raw: Mapping[str, tuple[list[Any], list[bool]]], fit: bool = False) -> np.ndarray:
        import warnings

        cols: list[np.ndarray] = []
        names: list[str] = []
        for s in self._specs():
            vals, miss = raw[s.name]
            if s.type == "numeric":
                cols.append(np.array([self.fill_[s.name] if m else v for v, m in zip(vals, miss, strict=True)], float))
                names.append(s.name)
            elif s.type == "ordinal":
                cols.append(np.array([self.fill_[s.name] if m else s.levels.index(v)
                                      for v, m in zip(vals, miss, strict=True)], float))
                names.append(s.name)
            else:
                levels = self.levels_[s.name]
                filled = [self.fill_[s.name] if m else v for v, m in zip(vals, miss, strict=True)]
                unseen = sorted({v for v in filled if v not in levels})
                if unseen:
                    warnings.warn(f"covariate {s.name!r}: level(s) {unseen} not seen in training "
                                  "(coded as the reference level)", RuntimeWarning, stacklevel=3)
                for lv in levels[1:]:
                    cols.append(np.array([1.0 if v == lv else 0.0 for v in filled]))
                    names.append(f"{s.name}={lv}")
        if fit:
            self.feature_names_out_ = names
        return np.column_stack(cols) if cols else np.zeros((len(next(iter(raw.values()))[0]) if raw else 0, 0))

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        M = (self._matrix(self._raw(X)) - self.mean_) / self.scale_
        return pd.DataFrame(M, index=X.index, columns=self.feature_names_out_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)
