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
``SeedSequence`` (:func:`radsurv.modelling.metrics.derive_seed`): any seed >= 0 works.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from radsurv.ingest.clinical import complete_case_ids, missing_counts
from radsurv.modelling import metrics as M
from radsurv.modelling.config import (
    PRIMARY,
    SEED_BOOTSTRAP,
    SEED_FINAL_FIT,
    SEED_FOLD_FIT,
    SEED_OUTER_FOLDS,
    SEED_SPLIT,
    StudyConfig,
)
from radsurv.modelling.legacy import GROUP_LABELS, _group_tests, univariate_cox_score
from radsurv.modelling.transformers import (
    build_pipeline,
    linear_terms,
    param_grid,
    selected_features,
    tuned_fit,
)
from radsurv.qc import qc_row

log = logging.getLogger(__name__)

__all__ = ["StudyResult", "run_study", "choose_cutoffs", "assign_groups"]


# --------------------------------------------------------------------------- risk groups


def choose_cutoffs(scores: np.ndarray, time: np.ndarray, event: np.ndarray, method: str) -> list[float]:
    """Risk-score cut-off(s) from TRAINING patients only.

    ``median``; ``tertiles``; ``maxstat``: the cut maximising the log-rank statistic
    over candidate cuts between the 10th and 90th percentile of the scores (each
    group keeps >= 10% of patients). A patient whose score equals a cut-off goes to
    the lower group.
    """
    scores = np.asarray(scores, float)
    if method == "median":
        return [float(np.median(scores))]
    if method == "tertiles":
        return [float(v) for v in np.quantile(scores, [1 / 3, 2 / 3])]
    if method == "maxstat":
        # log-rank chi2 of "score > c" for every candidate c at once: the Cox score test
        # of a binary covariate (Breslow ties) is the log-rank test
        lo, hi = np.quantile(scores, [0.1, 0.9])
        cands = np.unique(scores[(scores >= lo) & (scores < hi)])
        if len(cands) == 0:
            return [float(np.median(scores))]
        ind = (scores[:, None] > cands[None, :]).astype(float)
        z, _ = univariate_cox_score(ind, np.asarray(time, float), np.asarray(event).astype(bool))
        return [float(cands[int(np.argmax(z**2))])]
    raise ValueError(f"unknown risk_cut {method!r}")


def assign_groups(scores: np.ndarray, cutoffs: Sequence[float]) -> np.ndarray:
    """Labels ``low``/``high`` (1 cut) or ``low``/``intermediate``/``high`` (2 cuts)."""
    labels = np.array(GROUP_LABELS["median" if len(cutoffs) == 1 else "tertiles"], dtype=object)
    return labels[np.searchsorted(np.asarray(cutoffs, float), np.asarray(scores, float), side="left")]


# --------------------------------------------------------------------------- data


@dataclass
class StudyData:
    """Patients x columns (radiomic features + clinical covariates) and outcomes."""

    X: pd.DataFrame  # index patient_id
    y: np.ndarray  # sksurv structured, aligned with X
    radiomic: list[str]
    clinical: pd.DataFrame  # patient_id index, covariates as text + split column
    volume: str | None = None  # column of the volume baseline; None: baseline not built
    volume_note: str = ""  # why the volume baseline is missing, or which column was chosen


#: Column names taken for tumour volume when ``modelling.volume_feature`` is not in the table,
#: in order of preference (each also with any prefix, e.g. ``CT_original_shape_MeshVolume``).
VOLUME_SUFFIXES = ("shape_MeshVolume", "shape_VoxelVolume")


def resolve_volume_column(columns: Sequence[str], configured: str) -> tuple[str | None, str]:
    """The feature-table column of the volume-only baseline, and a note for the QC table.

    ``configured`` (``modelling.volume_feature``) if it is a column; otherwise the one
    column ending in ``shape_MeshVolume`` or, failing that, the one ending in
    ``shape_VoxelVolume`` (pyradiomics' names); ``None`` when there is none or several
    (ambiguous), with the reason.
    """
    cols = [str(c) for c in columns]
    if configured in cols:
        return configured, ""
    for suffix in VOLUME_SUFFIXES:
        found = sorted(c for c in cols if c.endswith(suffix))
        if len(found) == 1:
            return found[0], (f"modelling.volume_feature {configured!r} is not a column of the feature table; "
                              f"the volume-only baseline uses {found[0]!r}, the table's only *{suffix} column")
        if len(found) > 1:
            return None, (f"volume-only baseline not built: modelling.volume_feature {configured!r} is not a "
                          f"column of the feature table, and it has several *{suffix} columns {found[:5]}; "
                          "set modelling.volume_feature to one of them")
    return None, (f"volume-only baseline not built: modelling.volume_feature {configured!r} is not a column of "
                  "the feature table and the table has no tumour-volume column (*shape_MeshVolume or "
                  "*shape_VoxelVolume); set modelling.volume_feature to the column holding the tumour volume")


def prepare(features: pd.DataFrame, clinical: pd.DataFrame, candidates: Sequence[str], cfg: StudyConfig,
            volume: str | None | bool = True) -> tuple[StudyData, dict[str, Any], list[dict[str, str]]]:
    """Join features and clinical data, apply the complete-case rule; counts and QC rows.

    ``volume``: ``True`` finds the volume column (:func:`resolve_volume_column`); a column
    name uses that one (external cohorts: the development cohort's); ``None``/``False``: none.
    Patients whose volume is missing or <= 0 (an empty contour) are left out of every model,
    so all models compare on the same patients, one QC row each; if that would leave out more
    than half of the cohort the volume column is taken to be wrong and the baseline is not
    built instead (QC row naming ``modelling.volume_feature``).
    """
    feats = features.copy()
    feats.index = feats.index.astype(str)
    if feats.index.duplicated().any():
        raise ValueError(f"duplicate patient ids in the feature table: {feats.index[feats.index.duplicated()][:5].tolist()}")
    missing = [c for c in candidates if c not in feats.columns]
    if missing:
        raise ValueError(f"{len(missing)} candidate feature(s) not in the feature table: {missing[:10]}")
    clin = clinical.copy()
    clin["patient_id"] = clin["patient_id"].astype(str)
    if clin["patient_id"].duplicated().any():
        raise ValueError("duplicate patient ids in the clinical table")
    specs = cfg.covariate_specs()
    need = [s.name for s in specs] + ([cfg.split_by] if cfg.design == "split" and cfg.split_by else [])
    absent = [c for c in need if c not in clin.columns]
    if absent:
        raise ValueError(f"clinical column(s) {absent} are configured for modelling but not in the clinical "
                         "table; list them in cohort.columns.covariates")
    common = sorted(set(clin["patient_id"]) & set(feats.index))
    counts: dict[str, Any] = {
        "n_clinical": int(len(clin)), "n_feature_rows": int(len(feats)),
        "n_clinical_only": int(len(set(clin["patient_id"]) - set(common))),
        "n_features_only": int(len(set(feats.index) - set(common))),
    }
    qc: list[dict[str, str]] = []
    if not common:
        raise ValueError("no patient_id is present in both the clinical and the feature table")
    clin = clin.set_index("patient_id").loc[common]
    counts["missing_covariates"] = missing_counts(clin.reset_index(), specs) if specs else {}
    if specs and cfg.missing_covariates == "complete_case":
        keep, qc = complete_case_ids(clin.reset_index(), specs)
        counts["n_dropped_incomplete_covariates"] = len(common) - len(keep)
        common = keep
        clin = clin.loc[common]
    else:
        counts["n_dropped_incomplete_covariates"] = 0
        for s in specs:  # parse now so bad values stop the run with a clear message
            s.parse(clin[s.name].tolist())
    vol_col: str | None
    vol_note = ""
    n_bad_volume = 0
    if volume is True:
        vol_col, vol_note = resolve_volume_column(list(feats.columns), cfg.volume_feature)
    elif volume:
        vol_col = str(volume) if str(volume) in feats.columns else None
        if vol_col is None:
            vol_note = (f"volume-only baseline not applied: the table has no column {volume!r} "
                        "(modelling.volume_feature of the development cohort)")
    else:
        vol_col = None
    if vol_col is not None:
        v = pd.to_numeric(feats.loc[common, vol_col], errors="coerce")
        bad = [pid for pid, val in zip(common, v.to_numpy(float), strict=True) if not (np.isfinite(val) and val > 0)]
        if len(bad) * 2 > len(common):
            vol_note = (f"volume-only baseline not built: modelling.volume_feature column {vol_col!r} is missing or "
                        f"<= 0 for {len(bad)} of {len(common)} patients; set modelling.volume_feature to the "
                        "column holding the tumour volume")
            vol_col = None
        elif bad:
            n_bad_volume = len(bad)
            for pid in bad:
                raw = feats.loc[pid, vol_col]
                qc.append(qc_row(pid, "", "modelling", "excluded",
                                 f"tumour volume ({vol_col}) is {'missing' if pd.isna(raw) or raw == '' else raw}"
                                 " (an empty or unreadable contour); left out of every model so that all "
                                 "models compare on the same patients"))
            bad_set = set(bad)
            common = [c for c in common if c not in bad_set]
            clin = clin.loc[common]
    counts["n_dropped_invalid_volume"] = n_bad_volume
    counts["volume_feature"] = vol_col
    if vol_note:
        qc.append(qc_row("", "", "modelling", "warning", vol_note))
        log.warning("%s", vol_note)
    cols = list(dict.fromkeys(candidates))
    if vol_col is not None and vol_col not in cols:
        cols.append(vol_col)  # the volume baseline's input (not a radiomics candidate)
    num = feats.loc[common, cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    X = pd.DataFrame(num, index=pd.Index(common, name="patient_id"), columns=cols)  # one float block: fast
    for s in specs:
        X[s.name] = clin[s.name].astype(object).to_numpy()
    y = M.surv_array(clin["time"].astype(float).to_numpy(), clin["event"].astype(int).to_numpy())
    counts["n_used"] = int(len(common))
    counts["events"] = int(y["event"].sum())
    return StudyData(X, y, list(dict.fromkeys(candidates)), clin, vol_col, vol_note), counts, qc


def _model_blocks(cfg: StudyConfig, data: StudyData) -> dict[str, tuple[list[str], str]]:
    """Model name -> (blocks, learner), for the models the data allow."""
    specs = cfg.covariate_specs()
    out: dict[str, tuple[list[str], str]] = {"radiomics": (["rad"], cfg.learner)}
    if data.volume is not None:  # else prepare() has written the QC row and log line saying why
        out["volume"] = (["vol"], "cox")
    if specs:
        out["clinical"] = (["clin"], "cox")
        out["combined"] = (["rad", "clin"], cfg.learner)
    return out


# --------------------------------------------------------------------------- fitting


@dataclass
class FitRecord:
    pipe: Any
    params: dict[str, Any]
    inner_c: float
    cutoffs: list[float]
    train_risk: np.ndarray


def _fit(model: str, blocks: list[str], learner: str, cfg: StudyConfig, data: StudyData, train_idx: np.ndarray,
         seed: int, n_jobs: int, memory: Any) -> FitRecord:
    specs = [s.to_dict() for s in cfg.covariate_specs()]
    settings = cfg.to_dict()
    pipe = build_pipeline(blocks, data.radiomic, data.volume, specs, learner, settings, seed, n_jobs, memory)
    grid = param_grid(blocks, learner, settings)
    if model in ("volume",):
        grid = {"model__alpha": [min(cfg.penalizer)]}
    Xtr, ytr = data.X.iloc[train_idx], data.y[train_idx]
    fitted, params, inner_c = tuned_fit(pipe, grid, Xtr, ytr, cfg.inner_folds, seed)
    risk = fitted.predict(Xtr)
    cut = choose_cutoffs(risk, ytr["time"], ytr["event"].astype(int), cfg.risk_cut)
    return FitRecord(fitted, params, inner_c, cut, risk)


def _surv_at(pipe: Any, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
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


@dataclass
class StudyResult:
    """Everything :func:`run_study` produces (written to files by ``stages.modelling``)."""

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


def _dev_val_split(cfg: StudyConfig, data: StudyData) -> tuple[np.ndarray, np.ndarray, str]:
    ids = data.X.index.to_numpy()
    if not cfg.split_by:
        tr, te = train_test_split(np.arange(len(ids)), test_size=cfg.test_fraction,
                                  random_state=M.derive_seed(cfg.seed, SEED_SPLIT),
                                  shuffle=True, stratify=data.y["event"].astype(int))
        return np.sort(tr), np.sort(te), f"random {1 - cfg.test_fraction:.0%}/{cfg.test_fraction:.0%} (stratified by event)"
    col = data.clinical[cfg.split_by]
    if cfg.split_date:
        d = pd.to_datetime(col, errors="coerce")
        if d.isna().any():
            raise ValueError(f"split_by column {cfg.split_by!r} has {int(d.isna().sum())} value(s) that are not dates")
        val = (d >= pd.Timestamp(cfg.split_date)).to_numpy()
        how = f"{cfg.split_by} on/after {cfg.split_date}"
    else:
        val = col.astype(str).str.strip().isin(cfg.validation_values).to_numpy()
        how = f"{cfg.split_by} in {list(cfg.validation_values)}"
    if val.all() or not val.any():
        raise ValueError(f"the split ({how}) leaves an empty development or validation cohort")
    return np.where(~val)[0], np.where(val)[0], how


def _outer_fold(models: Mapping[str, tuple[list[str], str]], cfg: StudyConfig, data: StudyData,
                tr: np.ndarray, te: np.ndarray, seed: int, n_jobs: int, grid_h: np.ndarray) -> dict[str, dict[str, Any]]:
    """Fit every model on one outer training set (tuning, selection, cut-offs inside it) and
    predict its held-out patients: risk, S(t) on ``grid_h``, risk group, chosen features."""
    out: dict[str, dict[str, Any]] = {}
    Xte = data.X.iloc[te]
    for m, (blocks, learner) in models.items():
        rec = _fit(m, blocks, learner, cfg, data, tr, seed, n_jobs, None)
        s = rec.pipe.predict(Xte)
        out[m] = {"risk": s, "surv": _surv_at(rec.pipe, Xte, grid_h), "group": assign_groups(s, rec.cutoffs),
                  "features": selected_features(rec.pipe), "inner_c": rec.inner_c, "params": rec.params,
                  "cutoffs": rec.cutoffs}
    return out


def run_study(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    candidates: Sequence[str],
    cfg: StudyConfig,
    external: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
    n_jobs: int = 1,
) -> StudyResult:
    """Run the configured validation design for every model; see the module docstring.

    Args:
        features: patients (index = patient_id) x radiomic features.
        clinical: ``patient_id, time, event`` + covariates (as text).
        candidates: radiomic columns the models may use.
        external: name -> (features, clinical) of external validation cohorts.
        n_jobs: threads for random survival forests.
    """
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    data, counts, qc = prepare(features, clinical, candidates, cfg)
    timing["prepare"] = time.perf_counter() - t0
    models = _model_blocks(cfg, data)
    ids = data.X.index.to_numpy()
    y = data.y
    n = len(y)
    horizons = list(cfg.horizons) or [float(v) for v in np.round(np.quantile(y["time"][y["event"]], [0.25, 0.5, 0.75]), 1)]
    tau = float(cfg.tau) if cfg.tau is not None else float(max(horizons))

    # ---- outer folds
    if cfg.design == "cv":
        ev = y["event"].astype(int)
        k = int(min(cfg.cv_folds, np.bincount(ev, minlength=2).min()))
        if k < 2:
            raise ValueError("too few events or censored patients for cross-validation")
        folds = []
        for r in range(cfg.cv_repeats):
            skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=M.derive_seed(cfg.seed, SEED_OUTER_FOLDS, r))
            for f, (tr, te) in enumerate(skf.split(np.zeros(n), ev)):
                folds.append((r, f, tr, te))
        eval_idx = np.arange(n)
        design_desc = f"{cfg.cv_repeats} x repeated stratified {k}-fold CV; inner {cfg.inner_folds}-fold tuning"
        dev_idx = np.arange(n)
    else:
        dev_idx, val_idx, how = _dev_val_split(cfg, data)
        folds = [(0, 0, dev_idx, val_idx)]
        eval_idx = val_idx
        design_desc = f"development/validation split by {how}; inner {cfg.inner_folds}-fold tuning"
    n_rep = cfg.cv_repeats if cfg.design == "cv" else 1
    y_eval = y[eval_idx]
    pos = {int(i): j for j, i in enumerate(eval_idx)}  # patient row -> position in the evaluation set
    grid = M.ibs_grid(y_eval["time"], max(horizons))
    grid_h = np.concatenate([grid, np.asarray(horizons, float)])

    risk = {m: np.full((n_rep, len(eval_idx)), np.nan) for m in models}
    surv = {m: np.full((n_rep, len(eval_idx), len(grid_h)), np.nan) for m in models}
    group = {m: np.empty((n_rep, len(eval_idx)), dtype=object) for m in models}
    fold_of = np.zeros((n_rep, len(eval_idx)), dtype=int)
    tuning_rows, sel_rows, foldwise = [], [], []

    memory = None
    t0 = time.perf_counter()
    # Outer folds are independent (each has its own seed): run them in parallel worker
    # processes when the rule has threads, assembled in fold order, so results are the
    # same for any n_jobs. Estimators then use one thread each.
    fold_jobs = max(1, min(int(n_jobs), len(folds)))
    inner_jobs = 1 if fold_jobs > 1 else n_jobs
    tasks = [(r, f, tr, te, M.derive_seed(cfg.seed, SEED_FOLD_FIT, r, f)) for r, f, tr, te in folds]
    if fold_jobs > 1:
        from joblib import Parallel, delayed

        outs = Parallel(n_jobs=fold_jobs)(delayed(_outer_fold)(models, cfg, data, tr, te, sd, inner_jobs, grid_h)
                                          for _, _, tr, te, sd in tasks)
    else:
        outs = [_outer_fold(models, cfg, data, tr, te, sd, inner_jobs, grid_h) for _, _, tr, te, sd in tasks]
    for (r, f, tr, te, _), out in zip(tasks, outs):
        p = [pos[int(i)] for i in te]
        for m, o in out.items():
            s = o["risk"]
            risk[m][r, p] = s
            surv[m][r, p, :] = o["surv"]
            group[m][r, p] = o["group"]
            fold_of[r, p] = f
            feats = o["features"]
            tuning_rows.append({"repeat": r + 1, "fold": f + 1, "model": m, "n_train": len(tr),
                                "n_test": len(te), "inner_c": o["inner_c"],
                                "params": ";".join(f"{k.split('__')[-1]}={v}" for k, v in sorted(o["params"].items())),
                                "cutoffs": ";".join(f"{c:.6g}" for c in o["cutoffs"]),
                                "n_model_inputs": len(feats), "model_inputs": ";".join(feats)})
            if m in ("radiomics", "combined"):
                sel_rows += [{"model": m, "feature": x} for x in feats]
            foldwise.append({"model": m, "repeat": r + 1, "fold": f + 1,
                             "harrell_c": M.harrell_c(y["time"][te], y["event"][te], s)})
        log.info("outer fold repeat %d fold %d: %d training / %d held-out patients", r + 1, f + 1, len(tr), len(te))

    timing["outer_folds"] = time.perf_counter() - t0
    # ---- final models on the whole development cohort
    t0 = time.perf_counter()
    final: dict[str, FitRecord] = {}
    for m, (blocks, learner) in models.items():
        final[m] = _fit(m, blocks, learner, cfg, data, dev_idx, M.derive_seed(cfg.seed, SEED_FINAL_FIT), n_jobs,
                        memory)
    timing["final_models"] = time.perf_counter() - t0

    # ---- metrics on the evaluation set with paired bootstrap CIs
    t0 = time.perf_counter()
    ng = len(grid)
    sets = {m: [(risk[m][r], surv[m][r][:, :ng] if ng else None) for r in range(n_rep)] for m in models}
    # IPCW censoring distribution: the development cohort (split: the final models' training
    # patients; CV: the union of the folds' training sets), as sksurv's survival_train
    y_dev = y[dev_idx]
    perf = M.bootstrap_metrics(y_dev, y_eval, sets, grid, horizons, tau, cfg.bootstrap,
                               M.derive_seed(cfg.seed, SEED_BOOTSTRAP),
                               reference="volume" if "volume" in models else None, n_jobs=n_jobs)
    perf.insert(1, "set", "cross-validated" if cfg.design == "cv" else "validation")
    fw = pd.DataFrame(foldwise)
    if cfg.design == "cv":
        for m in models:
            v = fw.loc[fw["model"] == m, "harrell_c"].astype(float)
            perf.loc[len(perf)] = {"model": m, "set": "cross-validated", "metric": "harrell_c_foldwise_mean",
                                   "estimate": float(v.mean()), "ci_low": float(v.quantile(0.025)),
                                   "ci_high": float(v.quantile(0.975)), "interval": M.INTERVAL_FOLD_SPREAD,
                                   "n_boot_valid": 0}

    timing["bootstrap_metrics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # ---- risk groups (first repeat) and calibration
    group_stats: dict[str, dict[str, Any]] = {}
    cal_rows = []
    for m in models:
        pred = pd.DataFrame({"time": y_eval["time"], "event": y_eval["event"].astype(int), "risk_group": group[m][0]})
        labels = GROUP_LABELS["median" if cfg.risk_cut != "tertiles" else "tertiles"]
        group_stats[m] = _group_tests(pred, labels)
        for hi, h in enumerate(horizons):
            s_h = surv[m][0][:, ng + hi]
            tab = M.calibration_table(y_eval["time"], y_eval["event"], s_h, h, cfg.calibration_groups)
            slope = M.calibration_slope(y_eval["time"], y_eval["event"], s_h)
            tab.insert(0, "horizon", h)
            tab.insert(0, "model", m)
            tab["slope"], tab["slope_ci_low"], tab["slope_ci_high"] = slope
            cal_rows.append(tab)
    calibration = pd.concat(cal_rows, ignore_index=True) if cal_rows else pd.DataFrame()

    timing["risk_groups_calibration"] = time.perf_counter() - t0
    # ---- per-patient predictions
    set_name = "test"
    rows = []
    for m in models:
        for r in range(n_rep):
            d = pd.DataFrame({"patient_id": ids[eval_idx], "model": m, "set": set_name, "repeat": r + 1,
                              "fold": fold_of[r] + 1, "time": y_eval["time"], "event": y_eval["event"].astype(int),
                              "risk_score": risk[m][r], "risk_group": group[m][r]})
            for hi, h in enumerate(horizons):
                d[f"surv_{h:g}"] = surv[m][r][:, ng + hi]
            rows.append(d)
    predictions_all = pd.concat(rows, ignore_index=True)

    fin_rows = []
    for m, rec in final.items():
        d = pd.DataFrame({"patient_id": ids[dev_idx], "model": m, "set": "development",
                          "time": y["time"][dev_idx], "event": y["event"][dev_idx].astype(int),
                          "risk_score": rec.train_risk, "risk_group": assign_groups(rec.train_risk, rec.cutoffs)})
        S = _surv_at(rec.pipe, data.X.iloc[dev_idx], np.asarray(horizons, float))
        for hi, h in enumerate(horizons):
            d[f"surv_{h:g}"] = S[:, hi]
        fin_rows.append(d)

    # primary predictions.tsv: held-out (repeat 1) + (split design) development apparent
    prim = predictions_all[(predictions_all["model"] == PRIMARY) & (predictions_all["repeat"] == 1)]
    prim = prim.drop(columns=["model", "repeat"])
    if cfg.design == "split":
        dev = fin_rows[list(final).index(PRIMARY)].drop(columns=["model"]).assign(set="train")
        prim = pd.concat([dev, prim], ignore_index=True)
    predictions = prim.reset_index(drop=True)

    # ---- external cohorts: final models unchanged
    for name, (efeat, eclin) in (external or {}).items():
        edata, ecounts, eqc = prepare(efeat, eclin, data.radiomic, cfg, volume=data.volume)
        qc += [dict(r, stage=f"modelling:external:{name}") for r in eqc]
        ey = edata.y
        egrid = M.ibs_grid(ey["time"], max(horizons))
        esets = {}
        for m, rec in final.items():
            if m == "volume" and edata.volume is None:
                continue  # the QC row of prepare() says why
            s = rec.pipe.predict(edata.X)
            S = _surv_at(rec.pipe, edata.X, np.concatenate([egrid, np.asarray(horizons, float)]))
            esets[m] = [(s, S[:, :len(egrid)] if len(egrid) else None)]
            d = pd.DataFrame({"patient_id": edata.X.index, "model": m, "set": f"external:{name}",
                              "time": ey["time"], "event": ey["event"].astype(int), "risk_score": s,
                              "risk_group": assign_groups(s, rec.cutoffs)})
            for hi, h in enumerate(horizons):
                d[f"surv_{h:g}"] = S[:, len(egrid) + hi]
            fin_rows.append(d)
        ep = M.bootstrap_metrics(y[dev_idx], ey, esets, egrid, horizons, tau, cfg.bootstrap,
                                 M.derive_seed(cfg.seed, SEED_BOOTSTRAP),
                                 reference="volume" if "volume" in esets else None)
        ep.insert(1, "set", f"external:{name}")
        perf = pd.concat([perf, ep], ignore_index=True)
        counts[f"n_external_{name}"] = ecounts["n_used"]
    final_predictions = pd.concat(fin_rows, ignore_index=True)

    # apparent (optimistic) development performance of the final models
    for m, rec in final.items():
        yd = y[dev_idx]
        perf.loc[len(perf)] = {"model": m, "set": "development (apparent)", "metric": "harrell_c",
                               "estimate": M.harrell_c(yd["time"], yd["event"], rec.train_risk),
                               "ci_low": np.nan, "ci_high": np.nan, "interval": "", "n_boot_valid": 0}

    # ---- final model description and coefficients
    coef_rows, desc_models = [], {}
    for m, rec in final.items():
        lt = linear_terms(rec.pipe)
        feats = selected_features(rec.pipe)
        entry: dict[str, Any] = {
            "model_inputs": feats, "learner": models[m][1], "blocks": models[m][0],
            "hyperparameters": {k: (v if not isinstance(v, list) else v) for k, v in rec.params.items()},
            "inner_cv_c": None if not math.isfinite(rec.inner_c) else rec.inner_c,
            "risk_cut": cfg.risk_cut, "cutoffs": rec.cutoffs,
        }
        if lt is not None:
            entry["coefficients"] = dict(zip(lt["feature"], lt["coef"].astype(float), strict=True))
            entry["train_mean"] = dict(zip(lt["feature"], lt["train_mean"].astype(float), strict=True))
            entry["train_sd"] = dict(zip(lt["feature"], lt["train_sd"].astype(float), strict=True))
            entry["input_transform"] = dict(zip(lt["feature"], lt["transform"], strict=True))
            coef_rows.append(lt.assign(model=m))
        else:
            coef_rows.append(pd.DataFrame({"feature": feats, "model": m}))
        ct = rec.pipe.named_steps["features"]
        if "rad" in dict((n, t) for n, t, _ in ct.transformers_):
            radp = dict((n, t) for n, t, _ in ct.transformers_)["rad"]
            entry["radiomic_candidates"] = list(radp.named_steps["filter"].features_in_)
            entry["radiomic_steps"] = [
                {"step": "candidates", "n_features": len(radp.named_steps["filter"].features_in_)},
                {"step": "finite_nonconstant", "n_features": len(radp.named_steps["filter"].features_out_)},
                {"step": "redundancy_reduced", "n_features": len(radp.named_steps["reduce"].features_out_)},
                {"step": "univariate_screen", "n_features": len(radp.named_steps["select"].features_out_)},
                {"step": "in_model", "n_features": int(sum(1 for f in feats if f in data.radiomic))},
            ]
            entry["dropped_in_training"] = {"missing": radp.named_steps["filter"].dropped_missing_,
                                            "zero_variance": radp.named_steps["filter"].dropped_constant_}
        if "clin" in models[m][0]:
            entry["covariates"] = [s.to_dict() for s in cfg.covariate_specs()]
        desc_models[m] = entry
    coefficients = pd.concat(coef_rows, ignore_index=True)
    cols = ["model", "feature"] + [c for c in coefficients.columns if c not in ("model", "feature")]
    coefficients = coefficients[cols]
    selection = pd.DataFrame(desc_models[PRIMARY].get("radiomic_steps", []))

    sf = pd.DataFrame(sel_rows, columns=["model", "feature"])
    n_fits = len(folds)
    selection_frequency = (sf.groupby(["model", "feature"]).size().rename("times_selected").reset_index()
                           if len(sf) else pd.DataFrame(columns=["model", "feature", "times_selected"]))
    selection_frequency["fraction_of_fits"] = selection_frequency["times_selected"] / n_fits
    selection_frequency = selection_frequency.sort_values(["model", "times_selected", "feature"],
                                                          ascending=[True, False, True]).reset_index(drop=True)

    # ---- metrics.json
    def est(model: str, metric: str, what: str = "estimate") -> float | None:
        row = perf[(perf["model"] == model) & (perf["metric"] == metric) & (perf["set"] != "development (apparent)")
                   & (~perf["set"].str.startswith("external"))]
        if row.empty:
            return None
        v = float(row[what].iloc[0])
        return v if math.isfinite(v) else None

    metrics: dict[str, Any] = dict(counts)
    metrics.update({
        "design": cfg.design, "design_description": design_desc, "learner": cfg.learner,
        "primary_model": PRIMARY, "models": list(models),
        "n_test": int(len(eval_idx)), "events_test": int(y_eval["event"].sum()),
        "n_train": int(len(dev_idx)), "events_train": int(y["event"][dev_idx].sum()),
        "horizons": horizons, "tau": tau, "n_bootstrap": int(cfg.bootstrap),
        "n_candidate_features": int(len(data.radiomic)),
        "n_model_features": int(len(desc_models[PRIMARY]["model_inputs"])),
        "c_index_test": est(PRIMARY, "harrell_c"),
        "c_index_test_ci_low": est(PRIMARY, "harrell_c", "ci_low"),
        "c_index_test_ci_high": est(PRIMARY, "harrell_c", "ci_high"),
        "c_index_volume_test": est("volume", "harrell_c"),
        "c_index_train": M.harrell_c(y["time"][dev_idx], y["event"][dev_idx], final[PRIMARY].train_risk),
        "risk_cut": cfg.risk_cut,
        "volume_feature": data.volume,
        "baselines_not_built": {
            **({} if data.volume is not None else {"volume": data.volume_note}),
            **({} if cfg.covariate_specs() else {
                "clinical": "no modelling.clinical_covariates configured (clinical and combined models need them)"}),
        },
    })
    for i, c in enumerate(final[PRIMARY].cutoffs, start=1):
        metrics[f"cutoff_{i}"] = float(c)
    for k, v in group_stats[PRIMARY].items():
        metrics[f"{k}_test"] = v
    summary: dict[str, Any] = {}
    for m in models:
        s = {}
        for _, row in perf[(perf["model"] == m)].iterrows():
            key = row["metric"] if row["set"] in ("cross-validated", "validation") else f"{row['set']}:{row['metric']}"
            s[key] = M.as_plain({"estimate": row["estimate"], "ci_low": row["ci_low"], "ci_high": row["ci_high"]})
        s["risk_groups"] = M.as_plain(group_stats[m])
        summary[m] = s
    metrics["by_model"] = summary
    log.info("modelling time per phase (s): %s", {k: round(v, 2) for k, v in timing.items()})

    description = {
        "format": "radsurv.final_models/1",
        "features": desc_models[PRIMARY]["model_inputs"],
        "design": design_desc,
        "n_development": int(len(dev_idx)), "events_development": int(y["event"][dev_idx].sum()),
        "horizons": horizons, "config": cfg.to_dict(), "models": desc_models,
    }
    final_models = {m: {"pipeline": rec.pipe, "cutoffs": rec.cutoffs, "horizons": horizons,
                        "model_inputs": desc_models[m]["model_inputs"]} for m, rec in final.items()}
    return StudyResult(metrics=metrics, performance=perf, predictions=predictions,
                       predictions_all=predictions_all, final_predictions=final_predictions,
                       calibration=calibration, tuning=pd.DataFrame(tuning_rows),
                       selection_frequency=selection_frequency, coefficients=coefficients,
                       selection=selection, final_models=final_models, final_description=description, qc=qc,
                       timing=timing)
