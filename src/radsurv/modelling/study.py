"""Honest validation of radiomics survival models against clinical and volume baselines.

One entry point, :func:`run_study`, for every design the config allows:

``design: cv`` (default)
    Repeated (``cv_repeats``) stratified K-fold (``cv_folds``) cross-validation of
    the whole development cohort. In every outer fold the complete pipeline
    (:mod:`radsurv.modelling.transformers`: filtering, scaling, redundancy reduction, screening,
    model) is tuned by an inner stratified K-fold (``inner_folds``) on the outer
    training patients only, refit on them, and scores the outer test patients.
    Each patient gets one out-of-fold prediction per repeat; metrics are computed
    on the pooled out-of-fold predictions of each repeat and averaged over repeats
    (cross-validated risk groups and time-dependent ROC as in Simon et al., Brief
    Bioinform 2011). The fold-wise mean C is reported too.
``design: split``
    One development/validation split: random (``test_fraction``, stratified by
    event) or by a clinical column (``split_by``: patients whose value is in
    ``validation_values``, or on/after ``split_date``, form the validation cohort:
    split by centre or by date). Tuning by inner CV on the development cohort only.

In both designs the final model of every model family is tuned and fit on the
whole development cohort, saved with its exact features and preprocessing, and
applied unchanged to optional external cohorts.

Models (always all that the data allow): ``radiomics`` (radiomic candidates),
``volume`` (log tumour volume, Cox; column from :func:`resolve_volume_column`),
``clinical`` (configured covariates, Cox) and ``combined`` (radiomics + clinical).
A baseline that cannot be built is never skipped silently: a QC row, a log line and
``metrics["baselines_not_built"]`` say why. Risk-group cut-offs (median, tertiles or the
maximally selected log-rank statistic) come from each fit's own training
patients' scores and are applied unchanged to its held-out patients.

Metrics (:mod:`radsurv.modelling.metrics`): the IPCW metrics take the censoring distribution
from the development cohort (the training patients of the final models; in CV the
union of the folds' training sets). Every random choice (folds, splits, forests,
bootstrap) draws its ``random_state`` from the config's ``seed`` through numpy's
``SeedSequence`` (:func:`radsurv.modelling.config.derive_seed`): any seed >= 0 works.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radsurv.modelling import metrics as M
from radsurv.modelling.config import PRIMARY, SEED_BOOTSTRAP, StudyConfig, derive_seed
from radsurv.modelling.data import StudyData, model_blocks, prepare
from radsurv.modelling.design import (
    FitRecord,
    Models,
    OuterResults,
    StudyPlan,
    fit_final_models,
    plan_study,
    run_outer_folds,
    surv_at,
)
from radsurv.modelling.learners import linear_terms, selected_features
from radsurv.modelling.riskgroups import assign_groups, group_labels, group_tests

if TYPE_CHECKING:
    from radsurv.harmonisation.settings import HarmonisationInput

log = logging.getLogger(__name__)

__all__ = ["StudyResult", "run_study"]


@dataclass
class StudyResult:
    """Everything :func:`run_study` produces (written to files by ``radsurv.workflow.modelling.fit_models``)."""

    metrics: dict[str, Any]
    performance: pd.DataFrame
    predictions: pd.DataFrame  # primary model, one row per patient and set
    predictions_all: pd.DataFrame
    final_predictions: pd.DataFrame
    calibration: pd.DataFrame
    tuning: pd.DataFrame
    selection_frequency: pd.DataFrame
    coefficients: pd.DataFrame
    selection: pd.DataFrame
    final_models: dict[str, Any]
    final_description: dict[str, Any]
    qc: list[dict[str, str]]
    timing: dict[str, float] = field(default_factory=dict)  # seconds per phase (not written: not deterministic)


def _horizons_tau(cfg: StudyConfig, y: np.ndarray) -> tuple[list[float], float]:
    """Configured horizons (default: quartiles of the event times) and the C-index ``tau``."""
    horizons = list(cfg.horizons) or [float(v) for v in
                                      np.round(np.quantile(y["time"][y["event"]], [0.25, 0.5, 0.75]), 1)]
    tau = float(cfg.tau) if cfg.tau is not None else float(max(horizons))
    return horizons, tau


# --------------------------------------------------------------------------- metrics


def _performance(models: Models, cfg: StudyConfig, data: StudyData, plan: StudyPlan, outer: OuterResults,
                 tau: float, n_jobs: int) -> pd.DataFrame:
    """Metrics on the evaluation set with paired bootstrap CIs (+ the fold-wise mean C in CV)."""
    ng = len(plan.grid)
    sets = {m: [(outer.risk[m][r], outer.surv[m][r][:, :ng] if ng else None) for r in range(plan.n_rep)]
            for m in models}
    # IPCW censoring distribution: the development cohort (split: the final models' training
    # patients; CV: the union of the folds' training sets), as sksurv's survival_train
    y_dev = data.y[plan.dev_idx]
    perf = M.bootstrap_metrics(y_dev, data.y[plan.eval_idx], sets, plan.grid, plan.horizons, tau, cfg.bootstrap,
                               derive_seed(cfg.seed, SEED_BOOTSTRAP),
                               reference="volume" if "volume" in models else None, n_jobs=n_jobs)
    perf.insert(1, "set", "cross-validated" if cfg.design == "cv" else "validation")
    fw = pd.DataFrame(outer.foldwise)
    if cfg.design == "cv":
        for m in models:
            v = fw.loc[fw["model"] == m, "harrell_c"].astype(float)
            perf.loc[len(perf)] = {"model": m, "set": "cross-validated", "metric": "harrell_c_foldwise_mean",
                                   "estimate": float(v.mean()), "ci_low": float(v.quantile(0.025)),
                                   "ci_high": float(v.quantile(0.975)), "interval": M.INTERVAL_FOLD_SPREAD,
                                   "n_boot_valid": 0}
    return perf


def _risk_groups_calibration(models: Models, cfg: StudyConfig, y_eval: np.ndarray, plan: StudyPlan,
                             outer: OuterResults) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """Risk-group tests (first repeat) and calibration at each horizon, per model."""
    ng = len(plan.grid)
    group_stats: dict[str, dict[str, Any]] = {}
    cal_rows = []
    for m in models:
        pred = pd.DataFrame({"time": y_eval["time"], "event": y_eval["event"].astype(int),
                             "risk_group": outer.group[m][0]})
        group_stats[m] = group_tests(pred, group_labels(cfg.risk_cut))
        for hi, h in enumerate(plan.horizons):
            s_h = outer.surv[m][0][:, ng + hi]
            tab = M.calibration_table(y_eval["time"], y_eval["event"], s_h, h, cfg.calibration_groups)
            slope = M.calibration_slope(y_eval["time"], y_eval["event"], s_h)
            tab.insert(0, "horizon", h)
            tab.insert(0, "model", m)
            tab["slope"], tab["slope_ci_low"], tab["slope_ci_high"] = slope
            cal_rows.append(tab)
    calibration = pd.concat(cal_rows, ignore_index=True) if cal_rows else pd.DataFrame()
    return group_stats, calibration


def _apparent_rows(perf: pd.DataFrame, final: Mapping[str, FitRecord], y_dev: np.ndarray) -> None:
    """Append the apparent (optimistic) development C of the final models to ``perf``."""
    for m, rec in final.items():
        perf.loc[len(perf)] = {"model": m, "set": "development (apparent)", "metric": "harrell_c",
                               "estimate": M.harrell_c(y_dev["time"], y_dev["event"], rec.train_risk),
                               "ci_low": np.nan, "ci_high": np.nan, "interval": "", "n_boot_valid": 0}


# --------------------------------------------------------------------------- predictions


def _heldout_predictions(models: Models, data: StudyData, plan: StudyPlan, outer: OuterResults) -> pd.DataFrame:
    """One row per model, repeat and evaluated patient: held-out risk, group and S(horizon)."""
    ng = len(plan.grid)
    ids = data.X.index.to_numpy()
    y_eval = data.y[plan.eval_idx]
    rows = []
    for m in models:
        for r in range(plan.n_rep):
            d = pd.DataFrame({"patient_id": ids[plan.eval_idx], "model": m, "set": "test", "repeat": r + 1,
                              "fold": outer.fold_of[r] + 1, "time": y_eval["time"],
                              "event": y_eval["event"].astype(int), "risk_score": outer.risk[m][r],
                              "risk_group": outer.group[m][r]})
            for hi, h in enumerate(plan.horizons):
                d[f"surv_{h:g}"] = outer.surv[m][r][:, ng + hi]
            rows.append(d)
    return pd.concat(rows, ignore_index=True)


def _development_predictions(final: Mapping[str, FitRecord], data: StudyData, plan: StudyPlan) -> list[pd.DataFrame]:
    """The final models' (apparent) predictions of the development patients, one frame per model."""
    dev_idx = plan.dev_idx
    y = data.y
    fin_rows = []
    for m, rec in final.items():
        d = pd.DataFrame({"patient_id": data.X.index.to_numpy()[dev_idx], "model": m, "set": "development",
                          "time": y["time"][dev_idx], "event": y["event"][dev_idx].astype(int),
                          "risk_score": rec.train_risk, "risk_group": assign_groups(rec.train_risk, rec.cutoffs)})
        S = surv_at(rec.pipe, data.X.iloc[dev_idx], np.asarray(plan.horizons, float))
        for hi, h in enumerate(plan.horizons):
            d[f"surv_{h:g}"] = S[:, hi]
        fin_rows.append(d)
    return fin_rows


def _primary_predictions(predictions_all: pd.DataFrame, fin_rows: list[pd.DataFrame], final: Mapping[str, FitRecord],
                         cfg: StudyConfig) -> pd.DataFrame:
    """predictions.tsv: the primary model's held-out rows (repeat 1), after (split design) its
    development rows as ``train``."""
    prim = predictions_all[(predictions_all["model"] == PRIMARY) & (predictions_all["repeat"] == 1)]
    prim = prim.drop(columns=["model", "repeat"])
    if cfg.design == "split":
        dev = fin_rows[list(final).index(PRIMARY)].drop(columns=["model"]).assign(set="train")
        prim = pd.concat([dev, prim], ignore_index=True)
    return prim.reset_index(drop=True)


@dataclass
class _External:
    """Predictions and metrics of the final models on one external cohort."""

    performance: pd.DataFrame
    predictions: list[pd.DataFrame]
    qc: list[dict[str, str]]
    n_used: int


def _external_harmonisation(h: HarmonisationInput | None, eclin: pd.DataFrame) -> HarmonisationInput | None:
    """An external cohort's batch labels: its clinical table's batch column when the batch is a
    clinical column only; otherwise (acquisition facts are not recorded for a feature table)
    unknown, so its patients follow the unseen-batch policy."""
    if h is None:
        return None
    from radsurv.harmonisation.settings import HarmonisationInput

    col = h.settings.batch_column
    ids = eclin["patient_id"].astype(str)
    if col and not h.settings.acquisition and col in eclin.columns:
        labels = pd.Series(eclin[col].astype(object).to_numpy(), index=ids.to_numpy(), dtype=object)
    else:
        labels = pd.Series(None, index=ids.to_numpy(), dtype=object)
    return HarmonisationInput(h.settings, labels, None)


def _external_cohort(name: str, efeat: pd.DataFrame, eclin: pd.DataFrame, final: Mapping[str, FitRecord],
                     cfg: StudyConfig, data: StudyData, plan: StudyPlan, tau: float,
                     harmonisation: HarmonisationInput | None = None) -> _External:
    """Apply the final models unchanged to an external cohort and score them there."""
    edata, ecounts, eqc = prepare(efeat, eclin, data.radiomic, cfg, volume=data.volume,
                                  harmonisation=_external_harmonisation(harmonisation, eclin))
    qc = [dict(r, stage=f"modelling:external:{name}") for r in eqc]
    horizons = plan.horizons
    ey = edata.y
    egrid = M.ibs_grid(ey["time"], max(horizons))
    esets = {}
    rows = []
    for m, rec in final.items():
        if m == "volume" and edata.volume is None:
            continue  # the QC row of prepare() says why
        s = rec.pipe.predict(edata.X)
        S = surv_at(rec.pipe, edata.X, np.concatenate([egrid, np.asarray(horizons, float)]))
        esets[m] = [(s, S[:, :len(egrid)] if len(egrid) else None)]
        d = pd.DataFrame({"patient_id": edata.X.index, "model": m, "set": f"external:{name}",
                          "time": ey["time"], "event": ey["event"].astype(int), "risk_score": s,
                          "risk_group": assign_groups(s, rec.cutoffs)})
        for hi, h in enumerate(horizons):
            d[f"surv_{h:g}"] = S[:, len(egrid) + hi]
        rows.append(d)
    ep = M.bootstrap_metrics(data.y[plan.dev_idx], ey, esets, egrid, horizons, tau, cfg.bootstrap,
                             derive_seed(cfg.seed, SEED_BOOTSTRAP),
                             reference="volume" if "volume" in esets else None)
    ep.insert(1, "set", f"external:{name}")
    return _External(ep, rows, qc, ecounts["n_used"])


# --------------------------------------------------------------------------- final models


def _radiomic_steps(entry: dict[str, Any], pipe: Any, feats: Sequence[str], data: StudyData) -> None:
    """Add the radiomics branch's candidates, feature counts per step and training drops to ``entry``."""
    branches = dict((n, t) for n, t, _ in pipe.named_steps["features"].transformers_)
    if "rad" not in branches:
        return
    steps = branches["rad"].named_steps
    entry["radiomic_candidates"] = list(steps["filter"].features_in_)
    entry["radiomic_steps"] = [
        {"step": "candidates", "n_features": len(steps["filter"].features_in_)},
        {"step": "finite_nonconstant", "n_features": len(steps["filter"].features_out_)},
        {"step": "redundancy_reduced", "n_features": len(steps["reduce"].features_out_)},
        {"step": "univariate_screen", "n_features": len(steps["select"].features_out_)},
        {"step": "in_model", "n_features": int(sum(1 for f in feats if f in data.radiomic))},
    ]
    entry["dropped_in_training"] = {"missing": steps["filter"].dropped_missing_,
                                    "zero_variance": steps["filter"].dropped_constant_}


def _final_entry(m: str, rec: FitRecord, models: Models, cfg: StudyConfig,
                 data: StudyData) -> tuple[dict[str, Any], pd.DataFrame]:
    """One final model's description (final_models.json) and its coefficient rows."""
    lt = linear_terms(rec.pipe)
    feats = selected_features(rec.pipe)
    entry: dict[str, Any] = {
        "model_inputs": feats, "learner": models[m][1], "blocks": models[m][0],
        "hyperparameters": dict(rec.params),
        "inner_cv_c": None if not math.isfinite(rec.inner_c) else rec.inner_c,
        "risk_cut": cfg.risk_cut, "cutoffs": rec.cutoffs,
    }
    if lt is not None:
        entry["coefficients"] = dict(zip(lt["feature"], lt["coef"].astype(float), strict=True))
        entry["train_mean"] = dict(zip(lt["feature"], lt["train_mean"].astype(float), strict=True))
        entry["train_sd"] = dict(zip(lt["feature"], lt["train_sd"].astype(float), strict=True))
        entry["input_transform"] = dict(zip(lt["feature"], lt["transform"], strict=True))
        coef = lt.assign(model=m)
    else:
        coef = pd.DataFrame({"feature": feats, "model": m})
    _radiomic_steps(entry, rec.pipe, feats, data)
    if "clin" in models[m][0]:
        entry["covariates"] = [s.to_dict() for s in cfg.covariate_specs()]
    return entry, coef


def _describe_final(final: Mapping[str, FitRecord], models: Models, cfg: StudyConfig,
                    data: StudyData) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """Description of every final model and one coefficient table (``model, feature, ...``)."""
    coef_rows, desc_models = [], {}
    for m, rec in final.items():
        desc_models[m], coef = _final_entry(m, rec, models, cfg, data)
        coef_rows.append(coef)
    coefficients = pd.concat(coef_rows, ignore_index=True)
    cols = ["model", "feature"] + [c for c in coefficients.columns if c not in ("model", "feature")]
    return desc_models, coefficients[cols]


def _selection_frequency(sel_rows: list[dict[str, str]], n_fits: int) -> pd.DataFrame:
    """How often each feature entered the radiomics/combined model over the outer fits."""
    sf = pd.DataFrame(sel_rows, columns=["model", "feature"])
    freq = (sf.groupby(["model", "feature"]).size().rename("times_selected").reset_index()
            if len(sf) else pd.DataFrame(columns=["model", "feature", "times_selected"]))
    freq["fraction_of_fits"] = freq["times_selected"] / n_fits
    freq = freq.sort_values(["model", "times_selected", "feature"], ascending=[True, False, True])
    return freq.reset_index(drop=True)


# --------------------------------------------------------------------------- metrics.json


def _estimate(perf: pd.DataFrame, model: str, metric: str, what: str = "estimate") -> float | None:
    """A metric of the evaluation set (not apparent, not external); ``None`` if absent or not finite."""
    row = perf[(perf["model"] == model) & (perf["metric"] == metric) & (perf["set"] != "development (apparent)")
               & (~perf["set"].str.startswith("external"))]
    if row.empty:
        return None
    v = float(row[what].iloc[0])
    return v if math.isfinite(v) else None


def _by_model(perf: pd.DataFrame, models: Models, group_stats: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """metrics.json ``by_model``: every metric (with CI) and the risk-group tests of each model."""
    summary: dict[str, Any] = {}
    for m in models:
        s = {}
        for _, row in perf[(perf["model"] == m)].iterrows():
            key = row["metric"] if row["set"] in ("cross-validated", "validation") else f"{row['set']}:{row['metric']}"
            s[key] = M.as_plain({"estimate": row["estimate"], "ci_low": row["ci_low"], "ci_high": row["ci_high"]})
        s["risk_groups"] = M.as_plain(group_stats[m])
        summary[m] = s
    return summary


@dataclass
class _Fitted:
    """What metrics.json summarises, gathered by :func:`run_study`."""

    counts: dict[str, Any]
    models: Models
    plan: StudyPlan
    tau: float
    perf: pd.DataFrame
    final: Mapping[str, FitRecord]
    desc_models: Mapping[str, dict[str, Any]]
    group_stats: Mapping[str, dict[str, Any]]


def _metrics(cfg: StudyConfig, data: StudyData, fx: _Fitted) -> dict[str, Any]:
    """metrics.json: counts, design, the primary model's headline numbers, every model's metrics."""
    y, dev_idx, perf = data.y, fx.plan.dev_idx, fx.perf
    y_eval = y[fx.plan.eval_idx]
    metrics: dict[str, Any] = dict(fx.counts)
    metrics.update({
        "design": cfg.design, "design_description": fx.plan.description, "learner": cfg.learner,
        "primary_model": PRIMARY, "models": list(fx.models),
        "n_test": int(len(fx.plan.eval_idx)), "events_test": int(y_eval["event"].sum()),
        "n_train": int(len(dev_idx)), "events_train": int(y["event"][dev_idx].sum()),
        "horizons": fx.plan.horizons, "tau": fx.tau, "n_bootstrap": int(cfg.bootstrap),
        "n_candidate_features": int(len(data.radiomic)),
        "n_model_features": int(len(fx.desc_models[PRIMARY]["model_inputs"])),
        "c_index_test": _estimate(perf, PRIMARY, "harrell_c"),
        "c_index_test_ci_low": _estimate(perf, PRIMARY, "harrell_c", "ci_low"),
        "c_index_test_ci_high": _estimate(perf, PRIMARY, "harrell_c", "ci_high"),
        "c_index_volume_test": _estimate(perf, "volume", "harrell_c"),
        "c_index_train": M.harrell_c(y["time"][dev_idx], y["event"][dev_idx], fx.final[PRIMARY].train_risk),
        "risk_cut": cfg.risk_cut,
        "volume_feature": data.volume,
        "baselines_not_built": {
            **({} if data.volume is not None else {"volume": data.volume_note}),
            **({} if cfg.covariate_specs() else {
                "clinical": "no modelling.clinical_covariates configured (clinical and combined models need them)"}),
        },
    })
    for i, c in enumerate(fx.final[PRIMARY].cutoffs, start=1):
        metrics[f"cutoff_{i}"] = float(c)
    for k, v in fx.group_stats[PRIMARY].items():
        metrics[f"{k}_test"] = v
    metrics["by_model"] = _by_model(perf, fx.models, fx.group_stats)
    return metrics


def _harmonisation_summary(h: HarmonisationInput, final: Mapping[str, FitRecord]) -> dict[str, Any]:
    """metrics.json ``harmonisation``: the settings and policy, and what the final radiomics
    model's ComBat step estimated (batches and sizes, features not harmonised)."""
    out: dict[str, Any] = h.settings.describe()
    rec = final.get(PRIMARY)
    if rec is not None:
        branches = dict((n, t) for n, t, _ in rec.pipe.named_steps["features"].transformers_)
        rad = branches.get("rad")
        if rad is not None and "harmonise" in rad.named_steps:
            out["final_model"] = rad.named_steps["harmonise"].summary()
    return out


# --------------------------------------------------------------------------- entry point


def run_study(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    candidates: Sequence[str],
    cfg: StudyConfig,
    external: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
    n_jobs: int = 1,
    harmonisation: HarmonisationInput | None = None,
) -> StudyResult:
    """Run the configured validation design for every model; see the module docstring.

    Args:
        features: patients (index = patient_id) x radiomic features.
        clinical: ``patient_id, time, event`` + covariates (as text).
        candidates: radiomic columns the models may use.
        external: name -> (features, clinical) of external validation cohorts.
        n_jobs: threads for random survival forests.
        harmonisation: multi-centre studies: each patient's batch and the settings; ComBat is
            then the first step of the radiomics branch of every fit (outer, inner and final
            fits; applied unchanged to held-out and external patients). ``None``: no step,
            outputs exactly as without it.
    """
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    data, counts, qc = prepare(features, clinical, candidates, cfg, harmonisation=harmonisation)
    timing["prepare"] = time.perf_counter() - t0
    models = model_blocks(cfg, data)
    y = data.y
    horizons, tau = _horizons_tau(cfg, y)
    plan = plan_study(cfg, data, horizons)
    y_eval = y[plan.eval_idx]

    t0 = time.perf_counter()
    outer = run_outer_folds(models, cfg, data, plan, n_jobs)
    timing["outer_folds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    final = fit_final_models(models, cfg, data, plan.dev_idx, n_jobs)
    timing["final_models"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    perf = _performance(models, cfg, data, plan, outer, tau, n_jobs)
    timing["bootstrap_metrics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    group_stats, calibration = _risk_groups_calibration(models, cfg, y_eval, plan, outer)
    timing["risk_groups_calibration"] = time.perf_counter() - t0

    predictions_all = _heldout_predictions(models, data, plan, outer)
    fin_rows = _development_predictions(final, data, plan)
    predictions = _primary_predictions(predictions_all, fin_rows, final, cfg)
    for name, (efeat, eclin) in (external or {}).items():
        ext = _external_cohort(name, efeat, eclin, final, cfg, data, plan, tau, harmonisation)
        qc += ext.qc
        fin_rows += ext.predictions
        perf = pd.concat([perf, ext.performance], ignore_index=True)
        counts[f"n_external_{name}"] = ext.n_used
    final_predictions = pd.concat(fin_rows, ignore_index=True)
    _apparent_rows(perf, final, y[plan.dev_idx])

    desc_models, coefficients = _describe_final(final, models, cfg, data)
    selection = pd.DataFrame(desc_models[PRIMARY].get("radiomic_steps", []))
    selection_frequency = _selection_frequency(outer.sel_rows, len(plan.folds))
    metrics = _metrics(cfg, data, _Fitted(counts, models, plan, tau, perf, final, desc_models, group_stats))
    log.info("modelling time per phase (s): %s", {k: round(v, 2) for k, v in timing.items()})
    if harmonisation is not None:
        metrics["harmonisation"] = _harmonisation_summary(harmonisation, final)

    description = {
        "format": "radsurv.final_models/1",
        "features": desc_models[PRIMARY]["model_inputs"],
        "design": plan.description,
        "n_development": int(len(plan.dev_idx)), "events_development": int(y["event"][plan.dev_idx].sum()),
        "horizons": horizons, "config": cfg.to_dict(), "models": desc_models,
    }
    final_models = {m: {"pipeline": rec.pipe, "cutoffs": rec.cutoffs, "horizons": horizons,
                        "model_inputs": desc_models[m]["model_inputs"]} for m, rec in final.items()}
    return StudyResult(metrics=metrics, performance=perf, predictions=predictions,
                       predictions_all=predictions_all, final_predictions=final_predictions,
                       calibration=calibration, tuning=pd.DataFrame(outer.tuning_rows),
                       selection_frequency=selection_frequency, coefficients=coefficients,
                       selection=selection, final_models=final_models, final_description=description, qc=qc,
                       timing=timing)
