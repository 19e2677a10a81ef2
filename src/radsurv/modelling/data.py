"""The modelling data: features joined to the clinical table, exclusions, the volume column.

:func:`prepare` turns a feature table and a clinical table into :class:`StudyData`
(patients x model columns, survival outcome), with the patient counts and QC rows of
every exclusion (complete-case rule, invalid tumour volume); :func:`model_blocks` lists
the models the data allow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radsurv.ingest.clinical import CovariateSpec, complete_case_ids, missing_counts
from radsurv.modelling import metrics as M
from radsurv.modelling.config import StudyConfig
from radsurv.qc import qc_row

if TYPE_CHECKING:
    from radsurv.harmonisation.combat import ComBatHarmoniser
    from radsurv.harmonisation.settings import HarmonisationInput

log = logging.getLogger(__name__)

__all__ = ["StudyData", "VOLUME_SUFFIXES", "resolve_volume_column", "prepare", "model_blocks"]


@dataclass
class StudyData:
    """Patients x columns (radiomic features + clinical covariates) and outcomes."""

    X: pd.DataFrame  # index patient_id
    y: np.ndarray  # sksurv structured, aligned with X
    radiomic: list[str]
    clinical: pd.DataFrame  # patient_id index, covariates as text + split column
    volume: str | None = None  # column of the volume baseline; None: baseline not built
    volume_note: str = ""  # why the volume baseline is missing, or which column was chosen
    harmoniser: ComBatHarmoniser | None = None  # unfitted; first step of the radiomics branch when set


#: Column names taken for tumour volume when ``modelling.volume_feature`` is not in the table,
#: in order of preference (each also with any prefix, e.g. ``CT_original_shape_MeshVolume``):
#: pyradiomics' names, then the IBSI-tagged ones of the pictologics engine (``original_morph_volume``).
VOLUME_SUFFIXES = ("shape_MeshVolume", "shape_VoxelVolume", "_morph_volume", "_morph_vol_approx")


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
                  "the feature table and the table has no tumour-volume column (*shape_MeshVolume, "
                  "*shape_VoxelVolume, *morph_volume or *morph_vol_approx); set modelling.volume_feature to the column "
                  "holding the tumour volume")


@dataclass
class _Cohort:
    """The patients still in the study while :func:`prepare` applies its exclusions."""

    feats: pd.DataFrame  # feature table, index patient_id as text
    clin: pd.DataFrame  # clinical rows of ``common``, index patient_id
    common: list[str]  # patients in both tables, not (yet) excluded
    counts: dict[str, Any]
    qc: list[dict[str, str]]
    harm_labels: pd.Series | None = None  # batch label per patient (harmonisation only)
    harm_protect: pd.DataFrame | None = None  # protected covariates per patient (harmonisation only)


def _checked_tables(features: pd.DataFrame, clinical: pd.DataFrame, candidates: Sequence[str],
                    cfg: StudyConfig, specs: Sequence[CovariateSpec]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copies of both tables with text patient ids; ``ValueError`` on duplicate ids, missing
    candidate features or configured clinical columns absent from the clinical table."""
    feats = features.copy()
    feats.index = feats.index.astype(str)
    if feats.index.duplicated().any():
        dup = feats.index[feats.index.duplicated()][:5].tolist()
        raise ValueError(f"duplicate patient ids in the feature table: {dup}")
    missing = [c for c in candidates if c not in feats.columns]
    if missing:
        raise ValueError(f"{len(missing)} candidate feature(s) not in the feature table: {missing[:10]}")
    clin = clinical.copy()
    clin["patient_id"] = clin["patient_id"].astype(str)
    if clin["patient_id"].duplicated().any():
        raise ValueError("duplicate patient ids in the clinical table")
    need = [s.name for s in specs] + ([cfg.split_by] if cfg.design == "split" and cfg.split_by else [])
    absent = [c for c in need if c not in clin.columns]
    if absent:
        raise ValueError(f"clinical column(s) {absent} are configured for modelling but not in the clinical "
                         "table; list them in cohort.columns.covariates")
    return feats, clin


def _joined(feats: pd.DataFrame, clin: pd.DataFrame) -> _Cohort:
    """Patients present in both tables (sorted), with the counts of those in only one."""
    common = sorted(set(clin["patient_id"]) & set(feats.index))
    counts: dict[str, Any] = {
        "n_clinical": int(len(clin)), "n_feature_rows": int(len(feats)),
        "n_clinical_only": int(len(set(clin["patient_id"]) - set(common))),
        "n_features_only": int(len(set(feats.index) - set(common))),
    }
    if not common:
        raise ValueError("no patient_id is present in both the clinical and the feature table")
    return _Cohort(feats, clin.set_index("patient_id").loc[common], common, counts, [])


def _apply_covariate_rule(co: _Cohort, cfg: StudyConfig, specs: Sequence[CovariateSpec]) -> None:
    """Missing-covariate counts; ``complete_case`` drops incomplete patients (QC row each),
    otherwise every covariate is parsed now so bad values stop the run with a clear message."""
    co.counts["missing_covariates"] = missing_counts(co.clin.reset_index(), specs) if specs else {}
    if specs and cfg.missing_covariates == "complete_case":
        keep, co.qc = complete_case_ids(co.clin.reset_index(), specs)
        co.counts["n_dropped_incomplete_covariates"] = len(co.common) - len(keep)
        co.common = keep
        co.clin = co.clin.loc[co.common]
    else:
        co.counts["n_dropped_incomplete_covariates"] = 0
        for s in specs:
            s.parse(co.clin[s.name].tolist())


def _volume_column(feats: pd.DataFrame, cfg: StudyConfig, volume: str | None | bool) -> tuple[str | None, str]:
    """The volume column asked for by ``volume`` (see :func:`prepare`) and a note if there is none."""
    if volume is True:
        return resolve_volume_column(list(feats.columns), cfg.volume_feature)
    if volume:
        if str(volume) in feats.columns:
            return str(volume), ""
        return None, (f"volume-only baseline not applied: the table has no column {volume!r} "
                      "(modelling.volume_feature of the development cohort)")
    return None, ""


def _apply_volume_rule(co: _Cohort, vol_col: str | None, vol_note: str) -> tuple[str | None, str]:
    """Leave out patients whose volume is missing or <= 0 (QC row each), or drop the volume
    baseline if that would be more than half of them; returns the final column and note."""
    n_bad_volume = 0
    if vol_col is not None:
        v = pd.to_numeric(co.feats.loc[co.common, vol_col], errors="coerce")
        bad = [pid for pid, val in zip(co.common, v.to_numpy(float), strict=True)
               if not (np.isfinite(val) and val > 0)]
        if len(bad) * 2 > len(co.common):
            vol_note = (f"volume-only baseline not built: modelling.volume_feature column {vol_col!r} is missing or "
                        f"<= 0 for {len(bad)} of {len(co.common)} patients; set modelling.volume_feature to the "
                        "column holding the tumour volume")
            vol_col = None
        elif bad:
            n_bad_volume = len(bad)
            for pid in bad:
                raw = co.feats.loc[pid, vol_col]
                co.qc.append(qc_row(pid, "", "modelling", "excluded",
                                    f"tumour volume ({vol_col}) is {'missing' if pd.isna(raw) or raw == '' else raw}"
                                    " (an empty or unreadable contour); left out of every model so that all "
                                    "models compare on the same patients"))
            bad_set = set(bad)
            co.common = [c for c in co.common if c not in bad_set]
            co.clin = co.clin.loc[co.common]
    co.counts["n_dropped_invalid_volume"] = n_bad_volume
    co.counts["volume_feature"] = vol_col
    if vol_note:
        co.qc.append(qc_row("", "", "modelling", "warning", vol_note))
        log.warning("%s", vol_note)
    return vol_col, vol_note


def _model_matrix(co: _Cohort, candidates: Sequence[str], vol_col: str | None,
                  specs: Sequence[CovariateSpec]) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric candidate (+ volume) columns as one float block, covariates as text; outcome."""
    cols = list(dict.fromkeys(candidates))
    if vol_col is not None and vol_col not in cols:
        cols.append(vol_col)  # the volume baseline's input (not a radiomics candidate)
    num = co.feats.loc[co.common, cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    X = pd.DataFrame(num, index=pd.Index(co.common, name="patient_id"), columns=cols)  # one float block: fast
    for s in specs:
        X[s.name] = co.clin[s.name].astype(object).to_numpy()
    y = M.surv_array(co.clin["time"].astype(float).to_numpy(), co.clin["event"].astype(int).to_numpy())
    return X, y


def prepare(features: pd.DataFrame, clinical: pd.DataFrame, candidates: Sequence[str], cfg: StudyConfig,
            volume: str | None | bool = True, harmonisation: HarmonisationInput | None = None,
            ) -> tuple[StudyData, dict[str, Any], list[dict[str, str]]]:
    """Join features and clinical data, apply the complete-case rule; counts and QC rows.

    ``volume``: ``True`` finds the volume column (:func:`resolve_volume_column`); a column
    name uses that one (external cohorts: the development cohort's); ``None``/``False``: none.
    Patients whose volume is missing or <= 0 (an empty contour) are left out of every model,
    so all models compare on the same patients, one QC row each; if that would leave out more
    than half of the cohort the volume column is taken to be wrong and the baseline is not
    built instead (QC row naming ``modelling.volume_feature``).

    ``harmonisation`` (multi-centre studies): the batch label of each patient and the
    protected covariates become extra columns of ``X``
    (:data:`radsurv.harmonisation.settings.BATCH_COLUMN`), and ``StudyData.harmoniser`` the
    unfitted ComBat step of the radiomics branch; patients without a batch or a protected
    covariate, and batches too small to estimate, get QC rows.
    """
    specs = cfg.covariate_specs()
    feats, clin = _checked_tables(features, clinical, candidates, cfg, specs)
    co = _joined(feats, clin)
    _apply_covariate_rule(co, cfg, specs)
    vol_col, vol_note = _apply_volume_rule(co, *_volume_column(co.feats, cfg, volume))
    harmoniser = (_apply_harmonisation_rule(co, harmonisation, candidates, vol_col) if harmonisation is not None
                  else None)
    X, y = _model_matrix(co, candidates, vol_col, specs)
    if harmonisation is not None:
        X = _with_harmonisation_columns(X, co, harmonisation)
    co.counts["n_used"] = int(len(co.common))
    co.counts["events"] = int(y["event"].sum())
    return (StudyData(X, y, list(dict.fromkeys(candidates)), co.clin, vol_col, vol_note, harmoniser), co.counts,
            co.qc)


def _is_numeric(values: pd.Series) -> bool:
    v = values.astype(str).str.strip()
    return bool(len(v)) and bool(pd.to_numeric(v, errors="coerce").notna().all())


def _apply_harmonisation_rule(co: _Cohort, h: HarmonisationInput, candidates: Sequence[str],
                              vol_col: str | None = None) -> ComBatHarmoniser:
    """Batch labels and protected covariates of the cohort; QC rows for patients without a batch
    (``refuse``: left out of every model; ``passthrough``: kept, features uncorrected), without
    a protected covariate (left out) and for batches too small to estimate; the unfitted
    harmoniser of the radiomics branch. ``vol_col``: the tumour volume column, whose log is
    protected with ``harmonisation.protect_volume``."""
    from radsurv.harmonisation.batches import batch_counts, batch_qc_rows

    st = h.settings
    labels = h.batches.copy()
    labels.index = labels.index.astype(str)
    labels = labels.reindex(co.common)
    labels = labels.where(labels.notna() & (labels.astype(str).str.strip() != ""), None)
    drop: set[str] = set()
    for pid in labels.index[labels.isna()]:
        if st.unseen_batch == "refuse":
            drop.add(pid)
            co.qc.append(qc_row(pid, "", "harmonisation", "excluded",
                                "batch unknown (harmonisation.batch not recorded for this patient) and "
                                "harmonisation.unseen_batch is refuse: left out of every model"))
        else:
            co.qc.append(qc_row(pid, "", "harmonisation", "warning",
                                "batch unknown (harmonisation.batch not recorded for this patient): its features "
                                "enter the models uncorrected (harmonisation.unseen_batch is passthrough)"))
    prot = h.protect.copy() if h.protect is not None else co.clin.copy()  # default: the clinical table
    prot.index = prot.index.astype(str)
    prot = prot.reindex(co.common)
    if st.protect_volume:
        if vol_col is None:
            raise ValueError("harmonisation.protect_volume needs the tumour volume: set modelling.volume_feature to "
                             "the column holding it")
        from radsurv.harmonisation.confounds import log_volume
        from radsurv.harmonisation.settings import VOLUME_COVARIATE

        prot[VOLUME_COVARIATE] = log_volume(co.feats.loc[co.common, vol_col])
    missing_cols = [c for c in st.protect if c not in prot.columns]
    if missing_cols:
        raise ValueError(f"harmonisation.protect: column(s) {missing_cols} are not in the clinical table; list "
                         "them in cohort.columns.covariates")
    for c in st.protect:
        gone = prot[c].isna() | (prot[c].astype(str).str.strip() == "")
        for pid in prot.index[gone.to_numpy()]:
            if pid not in drop:
                drop.add(pid)
                co.qc.append(qc_row(pid, "", "harmonisation", "excluded",
                                    f"protected covariate {c!r} (harmonisation.protect) is missing: ComBat needs it "
                                    "for every patient; left out of every model"))
    if drop:
        co.common = [c for c in co.common if c not in drop]
        co.clin = co.clin.loc[co.common]
    labels = labels.reindex(co.common)
    co.qc += [dict(r, stage="harmonisation") for r in batch_qc_rows(labels, st.min_batch_size)]
    co.counts["n_dropped_harmonisation"] = len(drop)
    co.counts["harmonisation_batches"] = batch_counts(labels, st.min_batch_size).to_dict(orient="records")
    co.harm_labels = labels
    co.harm_protect = prot.reindex(co.common)
    numeric = [c for c in st.protected if _is_numeric(co.harm_protect[c])]
    categorical = [c for c in st.protected if c not in numeric]
    from radsurv.harmonisation.settings import protect_column

    return st.harmoniser(list(dict.fromkeys(candidates)), [protect_column(c) for c in numeric],
                         [protect_column(c) for c in categorical])


def _with_harmonisation_columns(X: pd.DataFrame, co: _Cohort, h: HarmonisationInput) -> pd.DataFrame:
    """``X`` plus the batch column and the protected covariates (numbers as floats, else text)."""
    from radsurv.harmonisation.settings import BATCH_COLUMN, protect_column

    assert co.harm_labels is not None and co.harm_protect is not None
    extra = {BATCH_COLUMN: co.harm_labels.reindex(X.index).astype(object).to_numpy()}
    for c in h.settings.protected:
        v = co.harm_protect[c].reindex(X.index)
        extra[protect_column(c)] = (pd.to_numeric(v.astype(str).str.strip()).to_numpy(dtype=float)
                                    if _is_numeric(v) else v.astype(str).to_numpy(dtype=object))
    return X.assign(**extra)


def model_blocks(cfg: StudyConfig, data: StudyData) -> dict[str, tuple[list[str], str]]:
    """Model name -> (blocks, learner), for the models the data allow."""
    specs = cfg.covariate_specs()
    out: dict[str, tuple[list[str], str]] = {"radiomics": (["rad"], cfg.learner)}
    if data.volume is not None:  # else prepare() has written the QC row and log line saying why
        out["volume"] = (["vol"], "cox")
    if specs:
        out["clinical"] = (["clin"], "cox")
        out["combined"] = (["rad", "clin"], cfg.learner)
    return out
