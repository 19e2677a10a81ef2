"""The validation design: outer folds or the development/validation split, model fits.

:func:`plan_study` turns the config into the outer fits (repeated stratified K-fold of
the whole cohort, or one development/validation split); :func:`run_outer_folds` fits
every model on each outer training set (tuning, selection and risk-group cut-offs
inside it) and collects the held-out predictions; :func:`fit_final_models` fits the
final models on the whole development cohort. Every random choice draws its seed
from the config's ``seed`` (:func:`radsurv.modelling.config.derive_seed`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from radsurv.modelling import metrics as M
from radsurv.modelling.config import (
    SEED_FINAL_FIT,
    SEED_FOLD_FIT,
    SEED_OUTER_FOLDS,
    SEED_SPLIT,
    StudyConfig,
    derive_seed,
    parallel_map,
    validation_rows,
)
from radsurv.modelling.data import StudyData
from radsurv.modelling.learners import build_pipeline, param_grid, selected_features, tuned_fit
from radsurv.modelling.riskgroups import assign_groups, choose_cutoffs

log = logging.getLogger(__name__)

__all__ = ["FitRecord", "fit_model", "surv_at", "dev_val_split", "StudyPlan", "plan_study", "outer_fold",
           "OuterResults", "run_outer_folds", "fit_final_models"]

#: Model name -> (feature blocks, learner), as :func:`radsurv.modelling.data.model_blocks` gives.
Models = Mapping[str, tuple[list[str], str]]


# --------------------------------------------------------------------------- one fit


@dataclass
class FitRecord:
    """One tuned fit of a model on a training set."""

    pipe: Any  # the fitted pipeline
    params: dict[str, Any]  # chosen hyperparameters
    inner_c: float  # mean inner-CV C of the chosen setting (nan: nothing tuned)
    cutoffs: list[float]  # risk-group cut-off(s) from the training patients' scores
    train_risk: np.ndarray  # risk scores of the training patients


def fit_model(model: str, blocks: list[str], learner: str, cfg: StudyConfig, data: StudyData, train_idx: np.ndarray,
              seed: int, n_jobs: int, memory: Any) -> FitRecord:
    """Tune and fit ``model`` on the patients ``train_idx`` of ``data``; risk-group cut-offs
    from their scores."""
    specs = [s.to_dict() for s in cfg.covariate_specs()]
    settings = cfg.to_dict()
    pipe = build_pipeline(blocks, data.radiomic, data.volume, specs, learner, settings, seed, n_jobs, memory)
    if data.harmoniser is not None and "rad" in blocks:  # multi-centre: ComBat first, refit in every fold
        from radsurv.harmonisation.combat import with_harmonisation

        pipe = with_harmonisation(pipe, data.harmoniser)
    grid = param_grid(blocks, learner, settings)
    if model in ("volume",):
        grid = {"model__alpha": [min(cfg.penalizer)]}
    Xtr, ytr = data.X.iloc[train_idx], data.y[train_idx]
    fitted, params, inner_c = tuned_fit(pipe, grid, Xtr, ytr, cfg.inner_folds, seed)
    risk = fitted.predict(Xtr)
    cut = choose_cutoffs(risk, ytr["time"], ytr["event"].astype(int), cfg.risk_cut)
    return FitRecord(fitted, params, inner_c, cut, risk)


def surv_at(pipe: Any, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Predicted S(t) at ``times`` (n x len(times)); times beyond a step function's
    domain are clipped to it (S is flat there)."""
    if len(times) == 0:
        return np.zeros((len(X), 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fns = pipe.predict_survival_function(X)
    out = np.empty((len(X), len(times)))
    for i, fn in enumerate(fns):
        lo, hi = fn.domain
        out[i] = fn(np.clip(times, lo, hi))
    return out


# --------------------------------------------------------------------------- the plan


def dev_val_split(cfg: StudyConfig, data: StudyData) -> tuple[np.ndarray, np.ndarray, str]:
    """Development and validation rows of the ``split`` design, and how they were split."""
    ids = data.X.index.to_numpy()
    if not cfg.split_by:
        tr, te = train_test_split(np.arange(len(ids)), test_size=cfg.test_fraction,
                                  random_state=derive_seed(cfg.seed, SEED_SPLIT),
                                  shuffle=True, stratify=data.y["event"].astype(int))
        how = f"random {1 - cfg.test_fraction:.0%}/{cfg.test_fraction:.0%} (stratified by event)"
        return np.sort(tr), np.sort(te), how
    val, how = validation_rows(data.clinical[cfg.split_by], cfg.split_by, cfg.validation_values, cfg.split_date)
    return np.where(~val)[0], np.where(val)[0], how


@dataclass
class StudyPlan:
    """The outer fits of the design and the patients they are evaluated on."""

    folds: list[tuple[int, int, np.ndarray, np.ndarray]]  # (repeat, fold, training rows, held-out rows)
    eval_idx: np.ndarray  # rows of the evaluation set (CV: everyone; split: the validation cohort)
    dev_idx: np.ndarray  # rows of the development cohort (the final models' training patients)
    n_rep: int  # repeats (one held-out prediction per evaluated patient and repeat)
    description: str
    grid: np.ndarray  # time grid of the integrated Brier score
    horizons: list[float]

    @property
    def grid_h(self) -> np.ndarray:
        """Times at which held-out S(t) is predicted: the IBS grid, then the horizons."""
        return np.concatenate([self.grid, np.asarray(self.horizons, float)])


def plan_study(cfg: StudyConfig, data: StudyData, horizons: list[float]) -> StudyPlan:
    """The outer folds (``cv``: ``cv_repeats`` x stratified ``cv_folds``-fold) or the split."""
    y = data.y
    n = len(y)
    if cfg.design == "cv":
        ev = y["event"].astype(int)
        k = int(min(cfg.cv_folds, np.bincount(ev, minlength=2).min()))
        if k < 2:
            raise ValueError("too few events or censored patients for cross-validation")
        folds = []
        for r in range(cfg.cv_repeats):
            skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=derive_seed(cfg.seed, SEED_OUTER_FOLDS, r))
            for f, (tr, te) in enumerate(skf.split(np.zeros(n), ev)):
                folds.append((r, f, tr, te))
        eval_idx = np.arange(n)
        desc = f"{cfg.cv_repeats} x repeated stratified {k}-fold CV; inner {cfg.inner_folds}-fold tuning"
        dev_idx = np.arange(n)
    else:
        dev_idx, val_idx, how = dev_val_split(cfg, data)
        folds = [(0, 0, dev_idx, val_idx)]
        eval_idx = val_idx
        desc = f"development/validation split by {how}; inner {cfg.inner_folds}-fold tuning"
    n_rep = cfg.cv_repeats if cfg.design == "cv" else 1
    grid = M.ibs_grid(y[eval_idx]["time"], max(horizons))
    return StudyPlan(folds, eval_idx, dev_idx, n_rep, desc, grid, horizons)


# --------------------------------------------------------------------------- outer folds


def outer_fold(models: Models, cfg: StudyConfig, data: StudyData, tr: np.ndarray, te: np.ndarray, seed: int,
               n_jobs: int, grid_h: np.ndarray) -> dict[str, dict[str, Any]]:
    """Fit every model on one outer training set (tuning, selection, cut-offs inside it) and
    predict its held-out patients: risk, S(t) on ``grid_h``, risk group, chosen features."""
    out: dict[str, dict[str, Any]] = {}
    Xte = data.X.iloc[te]
    for m, (blocks, learner) in models.items():
        rec = fit_model(m, blocks, learner, cfg, data, tr, seed, n_jobs, None)
        s = rec.pipe.predict(Xte)
        out[m] = {"risk": s, "surv": surv_at(rec.pipe, Xte, grid_h), "group": assign_groups(s, rec.cutoffs),
                  "features": selected_features(rec.pipe), "inner_c": rec.inner_c, "params": rec.params,
                  "cutoffs": rec.cutoffs}
    return out


@dataclass
class OuterResults:
    """Held-out predictions of every model (repeat x evaluated patient) and per-fit records."""

    risk: dict[str, np.ndarray]  # model -> (n_rep, n_eval)
    surv: dict[str, np.ndarray]  # model -> (n_rep, n_eval, len(grid_h))
    group: dict[str, np.ndarray]  # model -> (n_rep, n_eval) risk-group labels
    fold_of: np.ndarray  # (n_rep, n_eval) outer fold of each held-out prediction
    tuning_rows: list[dict[str, Any]] = field(default_factory=list)
    sel_rows: list[dict[str, str]] = field(default_factory=list)
    foldwise: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def empty(cls, models: Models, plan: StudyPlan) -> OuterResults:
        """Arrays of NaN (risk, S) / None (groups) to be filled fold by fold."""
        shape = (plan.n_rep, len(plan.eval_idx))
        return cls(risk={m: np.full(shape, np.nan) for m in models},
                   surv={m: np.full((*shape, len(plan.grid_h)), np.nan) for m in models},
                   group={m: np.empty(shape, dtype=object) for m in models},
                   fold_of=np.zeros(shape, dtype=int))

    def add(self, r: int, f: int, tr: np.ndarray, te: np.ndarray, p: list[int], out: dict[str, dict[str, Any]],
            y: np.ndarray) -> None:
        """Store one outer fit's held-out predictions (rows ``p`` of the evaluation set) and records."""
        for m, o in out.items():
            s = o["risk"]
            self.risk[m][r, p] = s
            self.surv[m][r, p, :] = o["surv"]
            self.group[m][r, p] = o["group"]
            self.fold_of[r, p] = f
            feats = o["features"]
            self.tuning_rows.append({
                "repeat": r + 1, "fold": f + 1, "model": m, "n_train": len(tr), "n_test": len(te),
                "inner_c": o["inner_c"],
                "params": ";".join(f"{k.split('__')[-1]}={v}" for k, v in sorted(o["params"].items())),
                "cutoffs": ";".join(f"{c:.6g}" for c in o["cutoffs"]),
                "n_model_inputs": len(feats), "model_inputs": ";".join(feats)})
            if m in ("radiomics", "combined"):
                self.sel_rows += [{"model": m, "feature": x} for x in feats]
            self.foldwise.append({"model": m, "repeat": r + 1, "fold": f + 1,
                                  "harrell_c": M.harrell_c(y["time"][te], y["event"][te], s)})


def run_outer_folds(models: Models, cfg: StudyConfig, data: StudyData, plan: StudyPlan, n_jobs: int) -> OuterResults:
    """Every outer fit of the plan, its held-out predictions assembled in fold order.

    Outer folds are independent (each has its own seed): they run in parallel worker
    processes when ``n_jobs`` > 1, so results are the same for any ``n_jobs``; estimators
    then use one thread each.
    """
    pos = {int(i): j for j, i in enumerate(plan.eval_idx)}  # patient row -> position in the evaluation set
    grid_h = plan.grid_h
    res = OuterResults.empty(models, plan)
    fold_jobs = max(1, min(int(n_jobs), len(plan.folds)))
    inner_jobs = 1 if fold_jobs > 1 else n_jobs
    tasks = [(r, f, tr, te, derive_seed(cfg.seed, SEED_FOLD_FIT, r, f)) for r, f, tr, te in plan.folds]
    outs = parallel_map(outer_fold, [(models, cfg, data, tr, te, sd, inner_jobs, grid_h)
                                     for _, _, tr, te, sd in tasks], fold_jobs)
    for (r, f, tr, te, _), out in zip(tasks, outs, strict=True):
        res.add(r, f, tr, te, [pos[int(i)] for i in te], out, data.y)
        log.info("outer fold repeat %d fold %d: %d training / %d held-out patients", r + 1, f + 1, len(tr), len(te))
    return res


def fit_final_models(models: Models, cfg: StudyConfig, data: StudyData, dev_idx: np.ndarray,
                     n_jobs: int) -> dict[str, FitRecord]:
    """Every model tuned and fit on the whole development cohort."""
    return {m: fit_model(m, blocks, learner, cfg, data, dev_idx, derive_seed(cfg.seed, SEED_FINAL_FIT), n_jobs,
                         None)
            for m, (blocks, learner) in models.items()}
