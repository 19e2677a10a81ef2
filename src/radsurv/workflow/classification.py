"""Entry point of rule ``fit_classifier``: one binary or multiclass endpoint of the run (issue #17).

Reads the features and the clinical table as :func:`radsurv.workflow.modelling.fit_models`
does (the pipeline's ``features.tsv`` with the robust list, or ``modelling.features_table``),
keeps every identifier, clinical and endpoint column out of the candidate features, runs
:func:`radsurv.modelling.classification.study.run_endpoint` and writes the endpoint's files
in ``results/endpoints/<endpoint>/``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radsurv.qc import qc_row, write_qc
from radsurv.workflow._io import json_safe

if TYPE_CHECKING:
    import pandas as pd

    from radsurv.modelling.config import StudyConfig

log = logging.getLogger(__name__)

#: The files :func:`fit_classifier` writes (keyword -> file name) in ``results/endpoints/<endpoint>/``.
CLASSIFIER_OUTPUTS = {"predictions": "predictions.tsv", "performance": "performance.tsv",
                      "metrics": "metrics.json", "choices": "choices.tsv", "final_models": "final_models.joblib",
                      "qc": "qc.tsv"}

STAGE = "fit_classifier"


def classifier_files(out_dir: str | Path) -> dict[str, Path]:
    """The output keywords of :func:`fit_classifier` with their files in ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {k: out / v for k, v in CLASSIFIER_OUTPUTS.items()}


def fit_classifier(*, features: str | Path, clinical: str | Path | list[str], modelling: Mapping[str, Any],
                   seed: int, columns: Mapping[str, Any], endpoint: str, spec: Mapping[str, Any],
                   robust: str | Path | None = None, threads: int = 1, **files: str | Path) -> None:
    """Validate the models of one categorical endpoint (``endpoint``: its name, ``spec``: ``{endpoint,
    column, positive_class?, classes?}`` from :func:`radsurv.workflow.rules.classification_endpoints`).

    Two starts, as for the survival models: the pipeline's ``features.tsv`` (each patient's first
    scan; candidates from the ``robust`` list) or, when ``robust`` is ``None``, the user's
    ``modelling.features_table``. ``clinical`` is the clinical table as the user wrote it, read
    with ``cohort.columns`` and the endpoint's column, without survival checks (a patient with
    no follow-up still has a tumour biology). Design, covariates, volume column and external
    cohorts come from ``modelling`` (the survival study's keys); the learner grids from
    ``modelling.classification``. ``files``: the outputs (keys of :data:`CLASSIFIER_OUTPUTS`)
    and the external cohorts' tables (named so that Snakemake tracks them).
    ``threads``: the rule's threads, the worker processes of the independent fits (outer folds,
    final models); the results are the same for any number.

    An endpoint that cannot be studied (fewer than two classes, a class too small for the folds,
    no candidate feature) is not an error of the run: it becomes an ``excluded`` QC row naming the
    endpoint and the reason, with empty result tables and ``metrics.json`` saying why.
    """
    import joblib

    from radsurv.modelling.classification.endpoints import endpoint_settings
    from radsurv.modelling.classification.study import SplitSettings, run_endpoint

    out = {k: Path(files[k]) for k in CLASSIFIER_OUTPUTS}
    sc = study_config(modelling, seed)
    settings = endpoint_settings(modelling, seed, str(spec["endpoint"]))
    qc: list[dict[str, str]] = []
    protected = protected_columns(modelling, columns, clinical, features)
    X, clin, vol, vol_note = _inputs(features, clinical, robust, sc, columns, spec, protected, endpoint, qc)
    external = _external(sc, columns, spec, list(X.columns), endpoint, qc)
    log.info("endpoint %s (%s, column %s): %d patients with features, %d candidate features, design %s",
             endpoint, spec["endpoint"], spec["column"], len(X), X.shape[1], sc.design)
    split = SplitSettings(sc.test_fraction, sc.split_by, sc.validation_values, sc.split_date)
    try:
        st = run_endpoint(X, clin, spec, settings, name=endpoint, design=sc.design, split=split,
                          volume_feature=vol, volume_note=vol_note, clinical_specs=sc.covariate_specs(),
                          external=external, n_jobs=threads)
    except ValueError as err:  # this endpoint cannot be studied: a QC row, the rest of the run goes on
        reason = f"endpoint {endpoint} (column {spec['column']!r}) not studied: {err}"
        log.error("%s", reason)
        qc.append(qc_row("", "", STAGE, "excluded", reason))
        _write_not_studied(out, endpoint, spec, sc.design, reason, qc)
        return
    qc += st.qc
    st.predictions.to_csv(out["predictions"], sep="\t", index=False)
    st.result.metrics.to_csv(out["performance"], sep="\t", index=False)
    st.result.choices.to_csv(out["choices"], sep="\t", index=False)
    out["metrics"].write_text(json.dumps(json_safe(st.metrics), indent=2, sort_keys=True, allow_nan=False))
    joblib.dump({"models": st.final_models, "classes": st.metrics["classes"], "features": list(X.columns),
                 "volume_feature": vol, "endpoint": dict(spec)}, out["final_models"])
    write_qc(qc, out["qc"])
    perf = st.result.metrics.set_index("model")
    key = "auc" if "auc" in perf.columns else "macro_auc" if "macro_auc" in perf.columns else None
    if key:
        log.info("endpoint %s: held-out %s %s", endpoint, key, perf[key].round(3).to_dict())


def _write_not_studied(out: Mapping[str, Path], endpoint: str, spec: Mapping[str, Any], design: str, reason: str,
                       qc: list[dict[str, str]]) -> None:
    """The outputs of an endpoint that could not be studied: the contract's files with no rows, and
    ``metrics.json`` naming the reason (the report and figures say so)."""
    import joblib
    import pandas as pd

    pd.DataFrame(columns=["patient_id", "repeat", "fold", "model", "label", "threshold", "set"]).to_csv(
        out["predictions"], sep="\t", index=False)
    pd.DataFrame(columns=["model"]).to_csv(out["performance"], sep="\t", index=False)
    pd.DataFrame(columns=["repeat", "fold", "model", "chosen"]).to_csv(out["choices"], sep="\t", index=False)
    metrics = {"endpoint": spec["endpoint"], "column": spec["column"], "name": endpoint, "design": design,
               "classes": [], "models": [], "not_studied": reason}
    out["metrics"].write_text(json.dumps(metrics, indent=2, sort_keys=True))
    joblib.dump({"models": {}, "endpoint": dict(spec), "not_studied": reason}, out["final_models"])
    write_qc(qc, out["qc"])


def study_config(modelling: Mapping[str, Any], seed: int) -> StudyConfig:
    """The survival study's view of the ``modelling`` block (design, split, covariates, tables);
    the classification learner grids (``modelling.classification``) are read separately."""
    from radsurv.modelling.config import StudyConfig

    return StudyConfig.from_dict({k: v for k, v in modelling.items() if k != "classification"}, seed=seed)


def endpoint_columns(modelling: Mapping[str, Any]) -> list[str]:
    """The clinical columns of every categorical endpoint of the run."""
    from radsurv.workflow.rules import classification_endpoints

    return [str(s["column"]) for s in classification_endpoints({"modelling": modelling}).values()]


def protected_columns(modelling: Mapping[str, Any], columns: Mapping[str, Any], clinical: str | Path | Sequence[str],
                      features: str | Path | None = None) -> set[str]:
    """Columns that are never candidate features (the leakage guard): the ids, the survival
    columns, the covariates, the split column, every endpoint's column and, when the clinical
    table is not the feature table itself, every column of the clinical table."""
    from radsurv.ingest.clinical import read_clinical_tables

    names = {str(columns.get(k)) for k in ("id", "time", "event") if columns.get(k)}
    names |= {str(c) for c in columns.get("covariates") or []}
    names |= {str(c) for c in modelling.get("clinical_covariates") or {}}
    names |= set(endpoint_columns(modelling))
    names |= {str(modelling[k]) for k in ("split_by", "features_id_column") if modelling.get(k)}
    paths = [clinical] if isinstance(clinical, (str, Path)) else list(clinical)
    own = features if features is not None else modelling.get("features_table")
    if own is None or all(Path(p).resolve() != Path(own).resolve() for p in paths):
        raw, _ = read_clinical_tables(clinical if isinstance(clinical, (str, Path)) else paths,
                                      str(columns["id"]))
        names |= set(map(str, raw.columns))
    return names


def _inputs(features: str | Path, clinical: str | Path | list[str], robust: str | Path | None, sc: StudyConfig,
            columns: Mapping[str, Any], spec: Mapping[str, Any], protected: set[str], name: str,
            qc: list[dict[str, str]]) -> tuple[pd.DataFrame, pd.DataFrame, str | None, str]:
    """``(numeric candidate features (+ volume) by patient, clinical table by patient, volume column,
    note)`` of either start; reading problems are appended to ``qc``."""
    import pandas as pd

    from radsurv.features.table import candidate_columns, modelling_matrix, read_feature_table, read_features
    from radsurv.ingest.clinical import load_clinical
    from radsurv.modelling.data import resolve_volume_column

    rqc: list[dict[str, str]] = []
    if robust is None:
        X = read_feature_table(features, sc.features_id_column, sc.features_header_rows, sc.features_id_pattern,
                               qc=rqc)
        allowed = None
    else:
        X = modelling_matrix(read_features(features))
        allowed = [ln.strip() for ln in Path(robust).read_text().splitlines() if ln.strip()]
    X.index = X.index.astype(str)
    clin, cqc = load_clinical(clinical, columns, image_ids=sorted(X.index), image_source="feature table",
                              labels=[spec["column"]], survival=False)
    found = candidate_columns(X, sc.feature_pattern, allowed)
    guarded = [c for c in found if c in protected]
    if guarded:
        rqc.append(qc_row("", "", STAGE, "warning", f"{len(guarded)} column(s) of the feature table are identifiers, "
                          f"clinical or endpoint columns and never model inputs: {sorted(guarded)[:10]}"))
    candidates = [c for c in found if c not in protected]
    if not candidates:
        raise ValueError(f"endpoint {name}: no radiomic candidate feature (check the robust list / "
                         "modelling.feature_pattern)")
    vol, note = resolve_volume_column([c for c in X.columns if c not in protected], sc.volume_feature)
    if vol and note:  # another column than the configured one: say which
        rqc.append(qc_row("", "", STAGE, "warning", note))
    cols = candidates + ([vol] if vol and vol not in candidates else [])
    feats = X[cols].apply(pd.to_numeric, errors="coerce").astype(float)
    clin = clin.set_index("patient_id")
    clin = _complete_cases(clin, sc, name, rqc)
    qc += [dict(r, stage=STAGE, reason=f"endpoint {name}: {r['reason']}") for r in rqc + cqc]
    return feats, clin, vol, note


def _complete_cases(clin: pd.DataFrame, sc: StudyConfig, name: str, qc: list[dict[str, str]]) -> pd.DataFrame:
    """``modelling.missing_covariates: complete_case``: patients with a missing covariate left out
    (a QC row each); otherwise the table unchanged (imputation happens inside each fit)."""
    from radsurv.ingest.clinical import complete_case_ids

    specs = sc.covariate_specs()
    if not specs or sc.missing_covariates != "complete_case":
        return clin
    keep, rows = complete_case_ids(clin.reset_index(), specs)
    qc += rows
    return clin.loc[keep]


def _external(sc: StudyConfig, columns: Mapping[str, Any], spec: Mapping[str, Any], feature_columns: list[str],
              name: str, qc: list[dict[str, str]]) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Each external cohort's ``(features, clinical table by patient)`` holding the endpoint column."""
    import pandas as pd

    from radsurv.features.table import read_feature_table
    from radsurv.ingest.clinical import load_clinical

    external = {}
    for ext in sc.external_cohorts:
        eqc: list[dict[str, str]] = []
        ex = read_feature_table(ext["features_table"], sc.features_id_column, sc.features_header_rows,
                                sc.features_id_pattern, qc=eqc)
        ex.index = ex.index.astype(str)
        ec, ecq = load_clinical(ext["clinical_table"], columns, image_ids=sorted(ex.index),
                                image_source="feature table", labels=[spec["column"]], survival=False)
        present = [c for c in feature_columns if c in ex.columns]
        feats = ex[present].apply(pd.to_numeric, errors="coerce").astype(float)
        qc += [dict(r, stage=STAGE, reason=f"endpoint {name}, external cohort {ext['name']}: {r['reason']}")
               for r in eqc + ecq]
        external[str(ext["name"])] = (feats, ec.set_index("patient_id"))
    return external
