"""One categorical endpoint of a study, end to end: the design of the config (repeated nested
CV or a development/validation split), the final models fit on every development patient,
and external cohorts scored by them unchanged.

:func:`run_endpoint` wraps :func:`.design.run_classification_cv` /
:func:`.design.run_classification_split` (where every data-dependent step is learnt inside
the training patients of each fit) with what a study needs around them: the split of the
``split`` design, the final models, external cohorts, the QC rows of every patient left
out, the baselines that could not be built (named, never silently skipped) and the summary
written to ``metrics.json``. The workflow's entry point
:func:`radsurv.workflow.classification.fit_classifier` reads and writes the files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import train_test_split

from radsurv.ingest.clinical import CovariateSpec
from radsurv.modelling.classification.design import (
    ClassificationResult,
    _models,  # the same model set as the cross-validation builds (final models must equal it)
    run_classification_cv,
    run_classification_split,
    summarise,
    validate_labels,
)
from radsurv.modelling.classification.endpoints import label_text
from radsurv.modelling.classification.models import RadiomicsClassifier
from radsurv.modelling.classification.settings import ClassificationSettings
from radsurv.modelling.config import SEED_FINAL_FIT, SEED_SPLIT, derive_seed, parallel_map, validation_rows
from radsurv.qc import qc_row

log = logging.getLogger(__name__)

__all__ = ["STAGE", "SplitSettings", "EndpointStudy", "split_patients", "run_endpoint"]

#: Stage of the QC rows of a categorical endpoint (the rule's name).
STAGE = "fit_classifier"


@dataclass(frozen=True)
class SplitSettings:
    """The ``split`` design (the survival study's keys): ``test_fraction`` of the patients at
    random, stratified by class, or the patients whose ``split_by`` column is in
    ``validation_values`` / on or after ``split_date``."""

    test_fraction: float = 0.35
    split_by: str | None = None
    validation_values: tuple[str, ...] = ()
    split_date: str | None = None


@dataclass
class EndpointStudy:
    """Outputs of :func:`run_endpoint`.

    Attributes:
        result: the library's result (predictions, model comparison, chosen configurations).
        predictions: the held-out predictions (``set`` = ``test``) and the external cohorts'
            (``set`` = the cohort's name), ``patient`` renamed ``patient_id``.
        final_models: model name -> estimator fit on every development patient.
        metrics: the endpoint's summary (``metrics.json``).
        qc: QC rows (stage :data:`STAGE`).
    """

    result: ClassificationResult
    predictions: pd.DataFrame
    final_models: dict[str, BaseEstimator]
    metrics: dict[str, Any]
    qc: list[dict[str, str]] = field(default_factory=list)


def _original_classes(text: pd.Series, spec: Mapping[str, Any], endpoint: str) -> list[str]:
    """The class names in label order (binary: ``[negative, positive]``), as
    :func:`validate_labels` codes them."""
    levels = sorted(set(text.dropna()))
    if spec.get("classes") is not None:
        levels = [str(c).strip() for c in spec["classes"] if str(c).strip() in set(text.dropna())]
    if endpoint != "binary":
        return sorted(levels)
    pos = str(spec["positive_class"]).strip() if spec.get("positive_class") is not None else levels[-1]
    return [next(c for c in levels if c != pos), pos]


def split_patients(ids: Sequence[str], y: np.ndarray, clinical: pd.DataFrame, split: SplitSettings,
                   seed: int) -> tuple[list[str], list[str], str]:
    """Development and validation patients of the ``split`` design, and how they were split.

    Raises:
        ValueError: a ``split_by`` column absent or not dates, or an empty cohort.
    """
    ids = list(ids)
    if not split.split_by:
        dev, val = train_test_split(ids, test_size=split.test_fraction, shuffle=True, stratify=y,
                                    random_state=derive_seed(seed, SEED_SPLIT))
        return (sorted(dev), sorted(val),
                f"random {1 - split.test_fraction:.0%}/{split.test_fraction:.0%} (stratified by class)")
    if split.split_by not in clinical.columns:
        raise ValueError(f"modelling.split_by: column {split.split_by!r} is not in the clinical table")
    is_val, how = validation_rows(clinical.loc[ids, split.split_by], split.split_by, split.validation_values,
                                  split.split_date)
    return ([p for p, v in zip(ids, is_val, strict=True) if not v],
            [p for p, v in zip(ids, is_val, strict=True) if v], how)


def _frame(features: pd.DataFrame, ids: Sequence[str], clinical: pd.DataFrame,
           specs: Sequence[CovariateSpec]) -> pd.DataFrame:
    """Rows ``ids`` of the features plus the covariate columns (text), as the library's fits see them."""
    X = features.loc[list(ids)].copy()
    for s in specs:
        X[s.name] = clinical.reindex(list(ids))[s.name].to_numpy()
    return X


def _missing_models(volume_feature: str | None, volume_note: str, specs: Sequence[CovariateSpec],
                    name: str, qc: list[dict[str, str]]) -> dict[str, str]:
    """Baselines the inputs do not allow, with the reason; one QC warning row each."""
    missing: dict[str, str] = {}
    if volume_feature is None:
        missing["volume"] = volume_note or "no tumour-volume column (modelling.volume_feature)"
    if not specs:
        why = "no clinical covariates are configured (modelling.clinical_covariates)"
        missing["clinical"] = missing["clinical+radiomics"] = why
    for m, why in missing.items():
        qc.append(qc_row("", "", STAGE, "warning", f"endpoint {name}: the {m} model is not fit: {why}"))
    return missing


def _label_qc(table: pd.DataFrame, name: str, qc: list[dict[str, str]]) -> None:
    """The library's left-out patients (patient, column, value, issue) as QC rows."""
    for r in table.to_dict("records"):
        value = f" (value '{r['value']}')" if str(r.get("value", "")) not in ("", "nan") else ""
        where = f" [{r['cohort']} cohort]" if isinstance(r.get("cohort"), str) else ""
        qc.append(qc_row(str(r["patient"]), "", STAGE, "excluded",
                         f"endpoint {name}, column {r['column']}{value}{where}: {r['issue']}"))


def _fit_final(settings: ClassificationSettings, X: pd.DataFrame, y: np.ndarray, rad_cols: list[str],
               volume_feature: str | None, specs: Sequence[CovariateSpec],
               names: Sequence[str], reseed: bool, n_jobs: int = 1) -> dict[str, BaseEstimator]:
    """Every model refit on all development patients (the models external cohorts receive).

    ``reseed``: the cross-validation design's final fit gets its own seed; the split design's
    keeps the library's, so that its final models are exactly the validated ones. ``n_jobs``:
    worker processes over the models (each fit is seeded, so the models are the same for any
    ``n_jobs``)."""
    built = _models(settings, volume_feature, [s.to_dict() for s in specs], rad_cols, settings.seed)
    ests = []
    for n in names:
        est = clone(built[n])
        if reseed and isinstance(est, RadiomicsClassifier):
            est.set_params(seed=derive_seed(settings.seed, SEED_FINAL_FIT))
        ests.append(est)
    return dict(zip(names, parallel_map(_fit, [(est, X, y) for est in ests], n_jobs), strict=True))


def _fit(est: BaseEstimator, X: pd.DataFrame, y: np.ndarray) -> BaseEstimator:
    return est.fit(X, y)


def _encode(text: pd.Series, classes: list[str], endpoint: str, name: str, column: str, cohort: str,
            qc: list[dict[str, str]]) -> pd.Series:
    """External labels coded like the development cohort's; missing or unknown values are left
    out with a QC row each (never coerced)."""
    keep = {}
    for pid, v in text.items():
        t = label_text(v)
        if t is None or t not in classes:
            why = "missing endpoint value" if t is None else f"value '{t}' is not one of the classes {classes}"
            qc.append(qc_row(str(pid), "", STAGE, "excluded",
                             f"endpoint {name}, column {column} [external cohort {cohort}]: {why}: left out"))
            continue
        keep[pid] = int(t == classes[1]) if endpoint == "binary" else t
    return pd.Series(keep, dtype=object if endpoint != "binary" else int)


def _score_external(final: Mapping[str, BaseEstimator], rad_cols: list[str], specs: Sequence[CovariateSpec],
                    external: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]], spec: Mapping[str, Any],
                    classes: list[str], lab_classes: list[Any], settings: ClassificationSettings, name: str,
                    qc: list[dict[str, str]]) -> tuple[list[pd.DataFrame], dict[str, Any]]:
    """Each external cohort scored by the final models, unchanged: prediction rows (``set`` =
    cohort name) and, per cohort, its size and model comparison (when both classes occur)."""
    rows, summary = [], {}
    for cohort, (feats, clin) in external.items():
        absent = [c for c in rad_cols if c not in feats.columns]
        if absent:
            qc.append(qc_row("", "", STAGE, "warning", f"endpoint {name}: external cohort {cohort} lacks "
                             f"{len(absent)} feature column(s) of the models (e.g. {absent[:3]}); not scored"))
            continue
        y = _encode(clin[spec["column"]], classes, settings.endpoint, name, spec["column"], cohort, qc)
        ids = [p for p in y.index if p in feats.index]
        if not ids:
            qc.append(qc_row("", "", STAGE, "warning", f"endpoint {name}: external cohort {cohort} has no patient "
                             "with both features and a valid label; not scored"))
            continue
        X = _frame(feats, ids, clin, specs)
        recs = []
        for m, est in final.items():
            P = est.predict_proba(X)
            for i, pid in enumerate(ids):
                recs.append({"patient": pid, "repeat": 0, "fold": 0, "model": m, "label": y.loc[pid],
                             "threshold": est.threshold_, **{f"p_{c}": float(P[i, j]) for j, c in
                                                             enumerate(lab_classes)}})
        pred = pd.DataFrame(recs)
        rows.append(pred.assign(set=cohort))
        entry: dict[str, Any] = {"n": len(ids), "n_per_class": _per_class(y.loc[ids], classes, settings.endpoint)}
        if y.loc[ids].nunique() == len(lab_classes):
            res = ClassificationResult(pred, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), lab_classes)
            entry["performance"] = summarise(res, n_boot=settings.n_boot, seed=settings.seed).to_dict("records")
        else:
            qc.append(qc_row("", "", STAGE, "warning", f"endpoint {name}: external cohort {cohort} does not hold "
                             "every class; its predictions are written but not summarised"))
        summary[cohort] = entry
    return rows, summary


def _per_class(labels: pd.Series, classes: list[str], endpoint: str) -> dict[str, int]:
    """Patients per original class name."""
    coded = labels.map(lambda v: classes[int(v)]) if endpoint == "binary" else labels.astype(str)
    return {c: int((coded == c).sum()) for c in classes}


def run_endpoint(features: pd.DataFrame, clinical: pd.DataFrame, spec: Mapping[str, Any],
                 settings: ClassificationSettings, *, name: str, design: str = "cv",
                 split: SplitSettings | None = None, volume_feature: str | None = None, volume_note: str = "",
                 clinical_specs: Sequence[CovariateSpec] = (),
                 external: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
                 n_jobs: int = 1) -> EndpointStudy:
    """Study one binary or multiclass endpoint.

    Args:
        features: radiomic candidate features (and the volume column), one row per patient,
            index = patient id. Every column is a candidate of the radiomics models: the
            caller has left out identifiers, the endpoint and every clinical column.
        clinical: the clinical table indexed by patient id (text cells): the endpoint's
            column, the covariates and the ``split_by`` column.
        spec: ``{endpoint, column, positive_class?, classes?}`` of the endpoint.
        settings: its :class:`ClassificationSettings` (``settings.endpoint`` = ``spec['endpoint']``).
        name: the endpoint's name (QC rows, ``metrics.json``).
        design: ``cv`` (repeated nested CV of every patient) or ``split`` (``split``).
        volume_feature: the volume baseline's column (``None``: not built, ``volume_note`` says why).
        clinical_specs: the clinical covariates (clinical and clinical+radiomics models).
        external: external cohorts, name -> (features, clinical table indexed by patient id).
        n_jobs: worker processes for the independent fits (outer folds, the models of the split
            design and the final models); every fit has its own seed, so the study's results are
            the same for any ``n_jobs``.

    Raises:
        ValueError: the endpoint cannot be studied (fewer than two classes, a class with fewer
            than ``settings.min_per_class`` patients, an empty split cohort ...).
    """
    qc: list[dict[str, str]] = []
    column = spec["column"]
    ids_all = [p for p in clinical.index if p in features.index]  # the caller reports the others
    labels = clinical.loc[ids_all, column]
    specs = list(clinical_specs)
    missing = _missing_models(volume_feature, volume_note, specs, name, qc)
    rad_cols = list(features.columns)
    spec_dicts = [s.to_dict() for s in specs]
    common = dict(settings=settings, volume_feature=volume_feature, clinical=clinical if specs else None,
                  clinical_specs=spec_dicts, classes=spec.get("classes"), positive=spec.get("positive_class"),
                  endpoint_name=column, n_jobs=n_jobs)
    how = f"{settings.cv_folds}-fold x {settings.cv_repeats} repeated nested cross-validation (stratified)"
    if design == "split":
        y_all, left_out = validate_labels(labels, settings.endpoint, spec.get("classes"),
                                          spec.get("positive_class"), 1, column)
        _label_qc(left_out, name, qc)
        dev, val, how = split_patients(list(y_all.index), y_all.to_numpy(), clinical, split or SplitSettings(),
                                       settings.seed)
        res = run_classification_split(features.loc[dev], labels.loc[dev], features.loc[val], labels.loc[val],
                                       **common)
    else:
        res = run_classification_cv(features.loc[ids_all], labels, **common)
        dev = ids_all
    _label_qc(res.qc, name, qc)
    y_dev, _ = validate_labels(labels.loc[dev], settings.endpoint, spec.get("classes"), spec.get("positive_class"),
                               settings.min_per_class if design == "cv" else 1, column)
    text = labels.map(label_text)
    classes = _original_classes(text.loc[y_dev.index], spec, settings.endpoint)
    names = list(dict.fromkeys(res.predictions["model"]))
    final = _fit_final(settings, _frame(features, list(y_dev.index), clinical, specs), y_dev.to_numpy(), rad_cols,
                       volume_feature, specs, names, reseed=design != "split", n_jobs=n_jobs)
    ext_rows, ext_summary = _score_external(final, rad_cols, specs, external or {}, spec, classes, res.classes,
                                            settings, name, qc)
    pred = pd.concat([res.predictions.assign(set="test"), *ext_rows], ignore_index=True)
    pred = pred.rename(columns={"patient": "patient_id"})
    used = res.predictions.drop_duplicates("patient").set_index("patient")["label"]
    metrics = {
        "name": name, "endpoint": settings.endpoint, "column": column, "classes": classes,
        "positive_class": classes[1] if settings.endpoint == "binary" else None,
        "n": int(len(used)), "n_per_class": _per_class(used, classes, settings.endpoint),
        "design": design, "design_description": how, "cv_folds": settings.cv_folds,
        "cv_repeats": settings.cv_repeats, "inner_folds": settings.inner_folds, "n_boot": settings.n_boot,
        "seed": settings.seed, "n_features": len(rad_cols), "volume_feature": volume_feature,
        "models": names, "missing_models": missing, "n_development": int(len(y_dev)),
        "external": ext_summary,
    }
    log.info("endpoint %s: %d patients %s, %s", name, len(used), metrics["n_per_class"], how)
    # wall time goes to the log (and the rule's benchmark file), never into a result: outputs are deterministic
    log.info("endpoint %s: seconds per model %s", name, {k: round(v, 2) for k, v in res.seconds.items()})
    return EndpointStudy(res, pred, final, metrics, qc)
