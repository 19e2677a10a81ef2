"""Entry point of the modelling rule: the radiomics model and its baselines, validated."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radsurv.qc import qc_row, write_qc
from radsurv.workflow._io import json_safe

if TYPE_CHECKING:
    import pandas as pd

    from radsurv.modelling.config import StudyConfig
    from radsurv.modelling.study import StudyResult

log = logging.getLogger(__name__)

#: The files :func:`fit_models` writes (keyword -> file name), as rule ``fit_models`` names them
#: in ``results/model/``; :func:`model_files` gives them in another folder (tests, notebooks).
MODEL_OUTPUTS = {
    "predictions": "predictions.tsv", "metrics": "metrics.json", "coefficients": "coefficients.tsv",
    "signature": "signature.json", "selection": "selection.tsv", "performance": "performance.tsv",
    "predictions_all": "predictions_all.tsv", "final_predictions": "final_predictions.tsv",
    "calibration": "calibration.tsv", "tuning": "tuning.tsv", "selection_frequency": "selection_frequency.tsv",
    "final_models": "final_models.joblib", "published": "published_signatures.tsv", "qc": "qc.tsv",
}

#: Columns of ``published_signatures.tsv`` when no published signature is configured.
PUBLISHED_COLUMNS = ["signature", "model", "metric", "estimate", "ci_low", "ci_high", "interval", "n_boot_valid",
                     "n", "events", "n_not_scorable"]


def model_files(out_dir: str | Path) -> dict[str, Path]:
    """The output keywords of :func:`fit_models` with their files in ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {k: out / v for k, v in MODEL_OUTPUTS.items()}


def fit_models(*, features: str | Path, clinical: str | Path | list[str], modelling: Mapping[str, Any], seed: int,
               columns: Mapping[str, Any], robust: str | Path | None = None, threads: int = 1,
               harmonisation_batches: str | Path | None = None, harmonisation_settings: str | Path | None = None,
               **files: str | Path) -> None:
    """Validate the radiomics model and its baselines (:func:`radsurv.modelling.study.run_study`).

    Two starts, one config: from the pipeline's own ``features.tsv`` (one row per scan;
    the ``robust`` feature list gives the candidates) and standardised ``clinical.tsv``; or,
    when ``modelling.features_table`` is set, from the user's feature table (one row per
    patient, id column ``modelling.features_id_column``) and the raw clinical table read
    with ``cohort.columns`` (``robust`` is then ``None``).

    ``harmonisation_batches`` / ``harmonisation_settings``: the files of rule
    ``harmonisation_batches`` when ``harmonisation.enabled`` (multi-centre studies): ComBat is
    then the first step of the radiomics branch of every fit
    (:func:`radsurv.modelling.study.run_study`); absent: no harmonisation.

    ``files``: the outputs (the keys of :data:`MODEL_OUTPUTS`) and, as the rule names them
    so that Snakemake tracks them, the external cohorts' tables and published signatures
    (``external_*``, ``signature_*``; read through ``modelling``).
    """
    import joblib

    from radsurv.modelling.config import StudyConfig
    from radsurv.modelling.study import run_study

    out = {k: Path(files[k]) for k in MODEL_OUTPUTS}
    sc = StudyConfig.from_dict(dict(modelling), seed=seed)
    qc: list[dict[str, str]] = []
    X, clin, candidates = _study_inputs(features, clinical, robust, sc, columns, qc)
    external = _external_cohorts(sc, columns, qc)
    log.info("modelling: %d patients with features, %d candidate features, design %s, learner %s",
             len(X), len(candidates), sc.design, sc.learner)
    harm = None
    if harmonisation_batches is not None and harmonisation_settings is not None:
        from radsurv.harmonisation.settings import read_harmonisation

        harm = read_harmonisation(harmonisation_batches, harmonisation_settings)
        log.info("harmonisation: ComBat inside every fit, batches from %s", harmonisation_batches)
    res = run_study(X, clin, candidates, sc, external=external, n_jobs=threads, harmonisation=harm)
    qc += res.qc
    _write_study(res, out)
    joblib.dump(res.final_models, out["final_models"])
    _published_signatures(sc, X, clin, res, qc).to_csv(out["published"], sep="\t", index=False)
    write_qc(qc, out["qc"])
    m = res.metrics
    log.info("held-out Harrell C %s (volume %s) on %d patients", m.get("c_index_test"), m.get("c_index_volume_test"),
             m.get("n_test"))


def _study_inputs(features: str | Path, clinical: str | Path | list[str], robust: str | Path | None,
                  sc: StudyConfig, columns: Mapping[str, Any],
                  qc: list[dict[str, str]]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """``(features by patient, clinical table, candidate features)`` of either start; QC rows
    of reading a user's tables are appended to ``qc``."""
    import pandas as pd

    from radsurv.features.table import candidate_columns, modelling_matrix, read_feature_table, read_features
    from radsurv.ingest.clinical import load_clinical

    if robust is None:
        X = read_feature_table(features, sc.features_id_column, sc.features_header_rows, sc.features_id_pattern,
                               qc=qc)
        clin, cqc = load_clinical(clinical, columns, image_ids=sorted(X.index), image_source="feature table")
        qc += cqc
        candidates = candidate_columns(X, sc.feature_pattern)
    else:
        X = modelling_matrix(read_features(features))
        clin = pd.read_csv(clinical, sep="\t", dtype=str, keep_default_na=False)
        clin["time"] = clin["time"].astype(float)
        clin["event"] = clin["event"].astype(int)
        robust_list = [ln.strip() for ln in Path(robust).read_text().splitlines() if ln.strip()]
        candidates = candidate_columns(X, sc.feature_pattern, robust_list)
    if not candidates:
        raise ValueError("no radiomic candidate feature (check the robust list / modelling.feature_pattern)")
    return X, clin, candidates


def _external_cohorts(sc: StudyConfig, columns: Mapping[str, Any],
                      qc: list[dict[str, str]]) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Each external validation cohort's ``(features, clinical table)``; their QC rows are
    appended to ``qc`` with the stage ``modelling:external:<name>``."""
    from radsurv.features.table import read_feature_table
    from radsurv.ingest.clinical import load_clinical

    external = {}
    for ext in sc.external_cohorts:
        eqc: list[dict[str, str]] = []
        ex = read_feature_table(ext["features_table"], sc.features_id_column, sc.features_header_rows,
                                sc.features_id_pattern, qc=eqc)
        ec, ecq = load_clinical(ext["clinical_table"], columns, image_ids=sorted(ex.index),
                                image_source="feature table")
        eqc += ecq
        qc += [dict(r, stage=f"modelling:external:{ext['name']}") for r in eqc]
        external[str(ext["name"])] = (ex, ec)
    return external


def _write_study(res: StudyResult, out: Mapping[str, Path]) -> None:
    """The study's tables and JSON files (not the models and published signatures)."""
    res.predictions.to_csv(out["predictions"], sep="\t", index=False)
    res.predictions_all.to_csv(out["predictions_all"], sep="\t", index=False)
    res.final_predictions.to_csv(out["final_predictions"], sep="\t", index=False)
    res.performance.to_csv(out["performance"], sep="\t", index=False)
    res.calibration.to_csv(out["calibration"], sep="\t", index=False)
    res.tuning.to_csv(out["tuning"], sep="\t", index=False)
    res.selection_frequency.to_csv(out["selection_frequency"], sep="\t", index=False)
    res.coefficients.to_csv(out["coefficients"], sep="\t", index=False)
    res.selection.to_csv(out["selection"], sep="\t", index=False)
    out["metrics"].write_text(json.dumps(json_safe(res.metrics), indent=2, sort_keys=True, allow_nan=False))
    out["signature"].write_text(
        json.dumps(json_safe(res.final_description), indent=2, sort_keys=True, allow_nan=False))


def _published_signatures(sc: StudyConfig, X: pd.DataFrame, clin: pd.DataFrame, res: StudyResult,
                          qc: list[dict[str, str]]) -> pd.DataFrame:
    """Each configured published signature validated on this cohort (one that cannot be
    scored is left out with a warning and a QC row)."""
    import pandas as pd

    from radsurv.modelling.signatures import validate_signature

    pub = []
    Xv = X.loc[sorted(set(X.index) & set(clin["patient_id"].astype(str)))]
    for path in sc.published_signatures:
        try:
            pub.append(validate_signature(path, Xv, clin, res.metrics["horizons"], res.metrics["tau"],
                                          sc.bootstrap, sc.seed, res.metrics.get("volume_feature")))
        except ValueError as err:  # e.g. a feature the extraction did not compute
            log.warning("published signature %s not validated: %s", path, err)
            qc.append(qc_row("", "", "modelling", "warning", f"published signature {Path(path).name}: {err}"))
    return pd.concat(pub, ignore_index=True) if pub else pd.DataFrame(columns=PUBLISHED_COLUMNS)
