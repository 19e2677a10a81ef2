"""ComBat harmonisation as a scikit-learn transformer, fit on training patients only.

The statistics are neuroCombat's (Fortin et al., NeuroImage 2017/2018; Johnson et al.,
Biostatistics 2007), the reference Python implementation by ComBat's authors:
:func:`neuroCombat.neuroCombat` estimates the location/scale batch effects with
empirical Bayes on the training patients, and :func:`combat_apply` applies those
estimates unchanged to any patient (the formula of
:func:`neuroCombat.neuroCombatFromTraining`, which itself no longer runs under NumPy
2.4; the tests compare the two). This module adds what a cross-validated study needs
around it:

* **Fit on training patients only.** :class:`ComBatHarmoniser` is an ordinary
  transformer; inside a :class:`sklearn.pipeline.Pipeline` it is refit on every
  training fold and held-out patients are corrected with that fold's estimates.
  Harmonising the whole cohort first (the common mistake) lets the held-out
  patients' feature distribution shape the correction.
* **Batch labels travel in X.** The transformer needs the batch (centre, scanner,
  kernel ...) of every row it sees, also of held-out rows, so the batch is a column
  of ``X`` (``batch_column``, default ``"batch"``) that the transformer reads and
  drops; protected covariates (``covariates``) are carried the same way. In
  :func:`radsurv.modelling.learners.build_pipeline` this means adding the batch (and
  covariate) columns to the radiomics branch's column list and putting the
  harmoniser first in that branch (:func:`with_harmonisation` does exactly this).
* **A defined policy for batches it cannot correct** (``unseen_batch``): a batch that
  was not among the training patients, or had fewer than ``min_batch_size`` of them
  (its location and scale cannot be estimated), is either refused (``"refuse"``:
  an error naming the batch) or left uncorrected (``"passthrough"``: the values
  are returned unchanged, a warning names the batch and the number of patients,
  and :meth:`ComBatHarmoniser.uncorrected` flags those rows). Too-small training
  batches are listed as QC-style records in :attr:`ComBatHarmoniser.qc_records_`.

Known pitfalls of neuroCombat 0.2.12 and how they are avoided here:

* A pandas ``dat`` is cast to float32: the data are always passed as float64 arrays.
* A zero-variance feature gets ``var_pooled = median(var_pooled != 0)`` (a boolean
  median): features that are constant or not finite in the training patients
  are not harmonised but passed through unchanged (:attr:`unharmonised_features_`);
  so are features whose empirical-Bayes estimates come out non-finite.
* A batch with one patient has an undefined variance (``ddof=1``): batches below
  ``min_batch_size`` (at least 2) are excluded from the fit (see above).
* ``neuroCombatFromTraining`` uses the *training-average* covariate effect for new
  patients and fails under NumPy >= 2.4; :func:`combat_apply` uses each patient's own
  covariate effect (ComBat's exact formula: on the training patients it reproduces
  neuroCombat's own output, tested) and equals ``neuroCombatFromTraining`` without
  covariates (tested, with the package's one failing ``int()`` call patched).
* ``ref_batch`` uses ``np.int`` (removed in NumPy 1.24), so it is not offered.
* Batch labels of mixed types: every label is converted to text first; levels are
  matched by label (neuroCombat sorts them), never by position.
* Continuous covariates are held as float32 in its design matrix: the wrapper's
  covariate effect uses the same rounding.
* The package prints progress to stdout: silenced.

neuroHarmonize (which builds on these same neuroCombat functions) was not chosen:
its releases 2.5.x require ``numpy<2`` (radsurv pins numpy 2.4) and 2.4.5 declares no
dependencies while importing nibabel at import time.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

__all__ = ["UNSEEN_BATCH_POLICIES", "BatchRecord", "ComBatHarmoniser", "with_harmonisation", "neurocombat_fit",
           "combat_apply"]

UNSEEN_BATCH_POLICIES = ("refuse", "passthrough")


def _quiet() -> contextlib.AbstractContextManager[Any]:
    return contextlib.redirect_stdout(io.StringIO())


def neurocombat_fit(dat: np.ndarray, covars: pd.DataFrame, batch_col: str, continuous_cols: Sequence[str] = (),
                    eb: bool = True, parametric: bool = True, mean_only: bool = False) -> dict[str, Any]:
    """:func:`neuroCombat.neuroCombat` on ``dat`` (features x patients, float64), silenced."""
    from neuroCombat import neuroCombat

    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return neuroCombat(dat=np.asarray(dat, dtype=float), covars=covars, batch_col=batch_col,
                           continuous_cols=list(continuous_cols), eb=eb, parametric=parametric,
                           mean_only=mean_only)


def combat_apply(dat: np.ndarray, batch: Sequence[str], estimates: Mapping[str, Any],
                 covariate_effect: np.ndarray | None = None) -> np.ndarray:
    """Apply fitted ComBat estimates to patients (``dat``: features x patients).

    ComBat's adjustment (Johnson et al. 2007, eq. 3.2; Fortin et al. 2018) with
    neuroCombat's estimates: ``z = (y - stand_mean - X beta) / sqrt(var_pooled)``, then
    ``(z - gamma*_b) / sqrt(delta*_b) * sqrt(var_pooled) + stand_mean + X beta``, where
    ``X beta`` is the patient's own covariate effect (``covariate_effect``, features x
    patients; zero without covariates). This is what
    :func:`neuroCombat.neuroCombatFromTraining` computes (without covariates; with them
    it uses the training-average ``X beta`` for everyone), re-stated here because that
    function fails under NumPy >= 2.4 (``int()`` of a one-element array, line
    ``wh = [int(np.where(...)[0]) ...]``). The tests compare both.
    """
    levels = [str(b) for b in estimates["batches"]]
    pos = {b: i for i, b in enumerate(levels)}
    missing = sorted({str(b) for b in batch} - set(pos))
    if missing:
        raise ValueError(f"batches {missing} are not part of the training patients")
    wh = np.array([pos[str(b)] for b in batch], dtype=int)
    dat = np.asarray(dat, dtype=float)
    stand = np.asarray(estimates["stand.mean"], dtype=float)[:, [0]]
    sd = np.sqrt(np.asarray(estimates["var.pooled"], dtype=float).reshape(-1, 1))
    xb = np.zeros_like(dat) if covariate_effect is None else np.asarray(covariate_effect, dtype=float)
    gamma = np.asarray(estimates["gamma.star"], dtype=float)[wh].T
    delta = np.asarray(estimates["delta.star"], dtype=float)[wh].T
    z = (dat - stand - xb) / sd
    return (z - gamma) / np.sqrt(delta) * sd + stand + xb


@dataclass(frozen=True)
class BatchRecord:
    """One batch of the training patients: size and whether ComBat estimated it."""

    batch: str
    n_train: int
    estimated: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _labels(values: pd.Series) -> pd.Series:
    """Batch labels as text; a missing label stays missing (``None``)."""
    out = values.astype(object).where(values.notna(), None)
    return out.map(lambda v: None if v is None or (isinstance(v, str) and not v.strip()) else str(v))


class ComBatHarmoniser(TransformerMixin, BaseEstimator):
    """ComBat (neuroCombat) fit on the rows it is fit on, applied unchanged to any rows.

    Args:
        batch_column: column of ``X`` holding each patient's batch (centre, scanner ...);
            read and dropped, never harmonised.
        covariates: numeric columns of ``X`` whose effect ComBat must preserve (e.g.
            age); read and dropped. Never the outcome: held-out patients need them too.
        categorical_covariates: text columns of ``X`` to preserve (e.g. histology);
            one-hot coded with the training levels (first level dropped); a level
            unseen in training is an error. Read and dropped.
        eb: empirical Bayes shrinkage of the batch estimates (ComBat's default).
        parametric: parametric (default) or non-parametric empirical Bayes priors.
        mean_only: correct the location only, not the scale.
        min_batch_size: training patients a batch needs to be estimated (>= 2).
        unseen_batch: ``"refuse"`` or ``"passthrough"`` for patients of a batch that
            was not estimated in training (see the module docstring).
        skip_features: feature columns passed through unharmonised (e.g. shape features,
            which do not depend on the scanner: ComBat would also remove a real
            difference in tumour size between centres' case mixes).

    Fitted attributes: ``features_in_`` (harmonised + passed-through feature columns, in
    input order), ``harmonised_features_``, ``unharmonised_features_`` (with the reason
    in ``unharmonised_reasons_``), ``batches_`` (estimated batch labels),
    ``batch_records_`` and ``qc_records_`` (training batches too small to estimate),
    ``estimates_`` (neuroCombat's estimates), ``covariate_columns_`` (design columns),
    ``covariate_coef_`` (covariate effects per feature, recovered from neuroCombat's
    ``mod.mean``).
    """

    def __init__(self, batch_column: str = "batch", covariates: Sequence[str] = (),
                 categorical_covariates: Sequence[str] = (), eb: bool = True, parametric: bool = True,
                 mean_only: bool = False, min_batch_size: int = 3, unseen_batch: str = "passthrough",
                 skip_features: Sequence[str] = ()) -> None:
        self.batch_column = batch_column
        self.covariates = covariates
        self.categorical_covariates = categorical_covariates
        self.eb = eb
        self.parametric = parametric
        self.mean_only = mean_only
        self.min_batch_size = min_batch_size
        self.unseen_batch = unseen_batch
        self.skip_features = skip_features

    # ------------------------------------------------------------------ helpers

    def _check_params(self) -> None:
        if self.unseen_batch not in UNSEEN_BATCH_POLICIES:
            raise ValueError(f"unseen_batch must be one of {UNSEEN_BATCH_POLICIES}, got {self.unseen_batch!r}")
        if int(self.min_batch_size) < 2:
            raise ValueError("min_batch_size must be at least 2 (a batch's spread needs two patients)")

    def _meta_columns(self) -> list[str]:
        return [self.batch_column, *self.covariates, *self.categorical_covariates]

    def _split(self, X: Any) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ComBatHarmoniser needs a pandas DataFrame with the batch column "
                            f"{self.batch_column!r} (the batch of each patient travels with the features)")
        missing = [c for c in self._meta_columns() if c not in X.columns]
        if missing:
            raise ValueError(f"columns {missing} (batch / protected covariates) are missing from the feature table")
        batch = _labels(X[self.batch_column])
        cov = X[[*self.covariates, *self.categorical_covariates]]
        feats = X.drop(columns=self._meta_columns())
        return batch, cov, feats

    def _design(self, cov: pd.DataFrame, fit: bool) -> np.ndarray:
        """Covariate design columns (numeric as is, categorical one-hot, first level dropped)."""
        cols: list[np.ndarray] = []
        names: list[str] = []
        for c in self.covariates:
            v = pd.to_numeric(cov[c], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(v).all():
                raise ValueError(f"protected covariate {c!r} is missing or not numeric for "
                                 f"{int((~np.isfinite(v)).sum())} patient(s); ComBat needs it for every patient")
            cols.append(v)
            names.append(c)
        if fit:
            self.covariate_levels_ = {}
        for c in self.categorical_covariates:
            v = cov[c].astype(object)
            if v.isna().any():
                raise ValueError(f"protected covariate {c!r} is missing for {int(v.isna().sum())} patient(s)")
            v = v.astype(str)
            if fit:
                self.covariate_levels_[c] = sorted(v.unique())
            levels = self.covariate_levels_[c]
            unknown = sorted(set(v) - set(levels))
            if unknown:
                raise ValueError(f"protected covariate {c!r} has value(s) {unknown} that no training patient has; "
                                 f"ComBat cannot preserve an effect it did not estimate")
            for lev in levels[1:]:
                cols.append((v == lev).to_numpy(dtype=float))
                names.append(f"{c}={lev}")
        if fit:
            self.covariate_columns_ = names
        # neuroCombat's design matrix holds continuous covariates as float32; the same
        # rounding here keeps the apply step identical to the package's fit
        return np.column_stack(cols).astype(np.float32).astype(float) if cols else np.zeros((len(cov), 0))

    # ------------------------------------------------------------------ fit

    def _record_batches(self, batch: pd.Series) -> list[str]:
        """Batch records (``batch_records_``) and QC rows (``qc_records_``) of the training
        patients; returns the batches with enough patients to estimate their effects."""
        counts = batch.dropna().value_counts().sort_index()
        size = int(self.min_batch_size)
        self.batch_records_ = [
            BatchRecord(str(b), int(n), int(n) >= size,
                        "estimated" if int(n) >= size else
                        f"only {int(n)} training patient(s) (< {size}): location and scale cannot be estimated; "
                        f"its patients are handled by the unseen-batch policy ({self.unseen_batch})")
            for b, n in counts.items()]
        est_batches = [r.batch for r in self.batch_records_ if r.estimated]
        self.qc_records_ = [r.as_dict() for r in self.batch_records_ if not r.estimated]
        if batch.isna().any():
            self.qc_records_.append({"batch": "", "n_train": int(batch.isna().sum()), "estimated": False,
                                     "reason": "batch label missing: these patients cannot be harmonised"})
        return est_batches

    def _harmonisable(self, sub: np.ndarray) -> np.ndarray:
        """Columns of ``sub`` (estimable-batch training rows) that can be harmonised: finite,
        not constant, not skipped; the reason for every other feature in ``unharmonised_reasons_``."""
        finite = np.isfinite(sub).all(axis=0)
        sd = np.where(finite, np.nanstd(np.where(np.isfinite(sub), sub, np.nan), axis=0, ddof=1), 0.0)
        skip = np.isin(np.asarray(self.features_in_, dtype=object), [str(f) for f in self.skip_features])
        keep = finite & (np.nan_to_num(sd) > 0) & ~skip
        for f, fin, k, sk in zip(self.features_in_, finite, keep, skip, strict=True):
            if sk:
                self.unharmonised_reasons_[f] = "excluded from harmonisation by configuration (skip_features)"
            elif not fin:
                self.unharmonised_reasons_[f] = "missing or non-finite value in a training patient"
            elif not k:
                self.unharmonised_reasons_[f] = "constant in the training patients"
        return np.flatnonzero(keep)

    def _combat_covariates(self, batch: pd.Series, Z: np.ndarray, n_batches: int) -> tuple[pd.DataFrame, list[str]]:
        """neuroCombat's covariate frame (batch + continuous design columns) of the training rows;
        ``ValueError`` if the covariates are collinear with the batches."""
        covars = pd.DataFrame({"batch": batch.to_numpy(dtype=object)})
        cont = []
        for j in range(Z.shape[1]):
            covars[f"cov{j}"] = Z[:, j]
            cont.append(f"cov{j}")
        if Z.shape[1] and np.linalg.matrix_rank(np.column_stack([pd.get_dummies(covars["batch"]).to_numpy(float),
                                                                  Z])) < n_batches + Z.shape[1]:
            raise ValueError("the protected covariates are collinear with the batches in the training patients "
                             "(e.g. a histology seen at one centre only): ComBat cannot tell them apart")
        return covars, cont

    def _estimate(self, sub: np.ndarray, idx: np.ndarray, covars: pd.DataFrame,
                  cont: list[str]) -> tuple[np.ndarray, dict[str, Any], bool]:
        """neuroCombat on the columns ``idx``; features with non-finite estimates are dropped
        (reason recorded) and the rest refit, so the empirical-Bayes prior is not distorted.
        Returns the features kept, the estimates and whether empirical Bayes was used."""
        eb = bool(self.eb) and len(idx) > 1  # the empirical-Bayes prior pools over features
        out = neurocombat_fit(sub[:, idx].T, covars, "batch", cont, eb=eb, parametric=bool(self.parametric),
                              mean_only=bool(self.mean_only))
        est = out["estimates"]
        gs, ds = np.asarray(est["gamma.star"], float), np.asarray(est["delta.star"], float)
        ok = np.isfinite(gs).all(axis=0) & np.isfinite(ds).all(axis=0) & (ds > 0).all(axis=0)
        if not ok.all():
            for j in idx[~ok]:
                self.unharmonised_reasons_[self.features_in_[j]] = "ComBat estimates not finite"
            if ok.any():  # refit without them, so the empirical-Bayes prior is not distorted
                idx = idx[ok]
                eb = bool(self.eb) and len(idx) > 1
                out = neurocombat_fit(sub[:, idx].T, covars, "batch", cont, eb=eb,
                                      parametric=bool(self.parametric), mean_only=bool(self.mean_only))
                est = out["estimates"]
            else:
                idx = idx[:0]
        return idx, est, eb

    def fit(self, X: pd.DataFrame, y: Any = None) -> ComBatHarmoniser:
        """Estimate the batch effects on the rows of ``X`` (the training patients)."""
        self._check_params()
        batch, cov, feats = self._split(X)
        self.features_in_ = [str(c) for c in feats.columns]
        est_batches = self._record_batches(batch)
        arr = feats.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        rows = batch.isin(est_batches).to_numpy()
        Z = self._design(cov, fit=True)
        self.unharmonised_reasons_: dict[str, str] = {}
        self.batches_: list[str] = []
        self.estimates_: dict[str, Any] | None = None
        self.covariate_coef_ = np.zeros((Z.shape[1], 0))
        if len(est_batches) < 2:
            for f in self.features_in_:
                self.unharmonised_reasons_[f] = (f"fewer than two batches with >= {int(self.min_batch_size)} "
                                                 f"training patients ({len(est_batches)}): nothing to harmonise")
            self.harmonised_features_ = []
            self.unharmonised_features_ = list(self.features_in_)
            return self
        sub = arr[rows]
        idx = self._harmonisable(sub)
        if len(idx):
            covars, cont = self._combat_covariates(batch[rows], Z[rows], len(est_batches))
            idx, est, eb = self._estimate(sub, idx, covars, cont)
            if len(idx):
                self.estimates_ = est
                self.batches_ = [str(b) for b in est["batches"]]
                self.eb_used_ = eb
                if Z.shape[1]:
                    # neuroCombat keeps the covariate effect only as mod.mean = Z beta (features x patients)
                    coef, *_ = np.linalg.lstsq(Z[rows], np.asarray(est["mod.mean"], float).T, rcond=None)
                    self.covariate_coef_ = coef  # (n_covariate_columns, n_features)
        self.harmonised_features_ = [self.features_in_[j] for j in idx]
        self.unharmonised_features_ = [f for f in self.features_in_ if f not in set(self.harmonised_features_)]
        return self

    # ------------------------------------------------------------------ transform

    def uncorrected(self, X: pd.DataFrame) -> pd.Series:
        """``True`` for rows of ``X`` whose batch was not estimated in training (their
        values would be left uncorrected under ``passthrough``, refused under ``refuse``)."""
        check_is_fitted(self, "features_in_")
        batch = _labels(X[self.batch_column])
        return pd.Series(~batch.isin(self.batches_).to_numpy(), index=X.index, name="uncorrected_batch")

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Harmonised features (batch and covariate columns dropped), rows as in ``X``."""
        check_is_fitted(self, "features_in_")
        batch, cov, feats = self._split(X)
        absent = [f for f in self.features_in_ if f not in feats.columns]
        if absent:
            raise ValueError(f"features {absent[:5]} seen in training are missing")
        feats = feats[self.features_in_]
        out = feats.apply(pd.to_numeric, errors="coerce").astype(float)
        bad = ~batch.isin(self.batches_).to_numpy()
        if bad.any() and self.harmonised_features_:
            what = batch[bad].fillna("(missing)").value_counts().sort_index()
            desc = ", ".join(f"'{b}' ({n} patient{'s' if n > 1 else ''})" for b, n in what.items())
            if self.unseen_batch == "refuse":
                raise ValueError(f"ComBat cannot correct patients from batch(es) {desc}: none or too few of the "
                                 f"training patients came from them, so their offset is unknown. Set unseen_batch "
                                 f"to 'passthrough' to keep them uncorrected (and flagged).")
            warnings.warn(f"{int(bad.sum())} patient(s) left uncorrected by ComBat (batch not estimated in training): "
                          f"{desc}", RuntimeWarning, stacklevel=2)
        good = ~bad
        if good.any() and self.harmonised_features_:
            cols = self.harmonised_features_
            # ComBat's adjustment is elementwise: a held-out patient's missing value stays missing
            # (the pipeline's quality filter / imputation after this step deals with it)
            dat = out.loc[good, cols].to_numpy(dtype=float)
            Z = self._design(cov, fit=False)[good]
            xb = (Z @ self.covariate_coef_).T if Z.shape[1] else None  # each patient's own covariate effect
            adj = combat_apply(dat.T, batch[good].to_numpy(dtype=str), self.estimates_, xb).T
            out.loc[good, cols] = adj
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "features_in_")
        return np.asarray(self.features_in_, dtype=object)

    def summary(self) -> dict[str, Any]:
        """What was fit, for a report: batches and sizes, policy, features not harmonised."""
        check_is_fitted(self, "features_in_")
        return {
            "method": "ComBat (neuroCombat), " + ("empirical Bayes" if getattr(self, "eb_used_", False)
                                                   else "no empirical Bayes"),
            "batches": [r.as_dict() for r in self.batch_records_],
            "unseen_batch_policy": self.unseen_batch,
            "min_batch_size": int(self.min_batch_size),
            "protected_covariates": list(getattr(self, "covariate_columns_", [])),
            "n_harmonised_features": len(self.harmonised_features_),
            "unharmonised_features": dict(self.unharmonised_reasons_),
        }


def with_harmonisation(pipe: Pipeline, harmoniser: ComBatHarmoniser, branch: str = "rad") -> Pipeline:
    """A copy of a :func:`radsurv.modelling.learners.build_pipeline` pipeline whose ``branch``
    (the radiomics block) starts with ``harmoniser``.

    The branch's column list gains the harmoniser's batch and covariate columns (so
    ``X`` must contain them); the harmoniser drops them again, so the rest of the
    branch sees exactly the radiomic features it saw before. A volume-adjusted branch
    (an ``adjust`` step) keeps its volume column out of the harmonisation: the
    adjustment needs the measured volume.
    """
    new = clone(pipe)
    ct = new.named_steps["features"]
    parts = []
    found = False
    for name, tr, cols in ct.transformers:
        if name == branch:
            found = True
            meta = [c for c in harmoniser._meta_columns() if c not in cols]
            steps = tr.steps if isinstance(tr, Pipeline) else [(name, tr)]
            h = clone(harmoniser)
            adjust = dict(steps).get("adjust")  # volume adjustment: its volume column stays unharmonised
            if adjust is not None and adjust.volume_column not in h.skip_features:
                h.set_params(skip_features=(*h.skip_features, adjust.volume_column))
            tr = Pipeline([("harmonise", h), *steps], memory=getattr(tr, "memory", None))
            cols = [*meta, *cols]
        parts.append((name, tr, cols))
    if not found:
        raise ValueError(f"the pipeline has no {branch!r} branch to harmonise")
    ct.set_params(transformers=parts)
    return new
