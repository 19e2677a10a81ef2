"""Entry points of the multi-centre rules: each patient's batch, and the batch diagnostics.

* :func:`harmonisation_batches` (rule ``harmonisation_batches``): the batch label of every
  modelling patient from a clinical column and/or the acquisition facts of its first scan
  (:mod:`radsurv.harmonisation.batches`), the patients (and events) per batch, QC rows for
  patients without a batch and batches too small to estimate, and the settings as used
  (read by ``fit_models``, which puts ComBat inside every fit).
* :func:`harmonisation_diagnostics` (rule ``harmonisation_diagnostics``): cross-validated
  site-prediction AUC from the robust candidate features before and after in-fold ComBat,
  per-feature Kruskal-Wallis batch test with Benjamini-Hochberg FDR before and after
  (after: cross-fitted, each patient harmonised by ComBat fit on the other folds), and a
  PCA figure coloured by batch before and after (:mod:`radsurv.harmonisation.diagnostics`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radsurv.qc import qc_row, write_qc
from radsurv.workflow._io import write_json, write_tsv

if TYPE_CHECKING:
    import pandas as pd

    from radsurv.harmonisation.settings import HarmonisationSettings

log = logging.getLogger(__name__)

#: Settings of the diagnostics (not config keys: a report's numbers, not modelling choices).
DIAG_FOLDS = 5
DIAG_REPEATS = 5
DIAG_BOOT = 1000


def _cohort(features: str | Path, clinical: str | Path | list[str], robust: str | Path | None,
            modelling: Mapping[str, Any], seed: int, columns: Mapping[str, Any],
            qc: list[dict[str, str]]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    from radsurv.modelling.config import StudyConfig
    from radsurv.workflow.modelling import _study_inputs

    sc = StudyConfig.from_dict(dict(modelling), seed=seed)
    return _study_inputs(features, clinical, robust, sc, columns, qc)


def harmonisation_batches(*, features: str | Path, clinical: str | Path | list[str],
                          harmonisation: Mapping[str, Any], modelling: Mapping[str, Any], seed: int,
                          columns: Mapping[str, Any], batches: str | Path, counts: str | Path,
                          settings: str | Path, qc: str | Path, robust: str | Path | None = None,
                          converted: Sequence[str] | str | None = None) -> None:
    """Each modelling patient's batch (``batches``: ``patient_id, batch``), patients and events
    per batch (``counts``), the settings as used (``settings``, JSON) and QC rows (``qc``).

    ``converted``: the scans' ``converted`` folders (their ``provenance.json``), needed when
    ``harmonisation.batch.acquisition`` names acquisition facts (pipeline start only: a
    user's feature table has no scans).
    """
    import pandas as pd

    from radsurv.features.table import read_features
    from radsurv.harmonisation.batches import batch_counts, batch_labels, converted_acquisition_facts
    from radsurv.harmonisation.settings import HarmonisationSettings

    st = HarmonisationSettings.from_config(harmonisation)
    rows: list[dict[str, str]] = []
    X, clin, _ = _cohort(features, clinical, robust, modelling, seed, columns, rows)
    facts = None
    if st.acquisition:
        if robust is None:
            raise ValueError("harmonisation.batch.acquisition needs the pipeline's own scans; with "
                             "modelling.features_table use harmonisation.batch.column (e.g. the centre)")
        scans = read_features(features).reset_index()[["scan_id", "patient_id", "session"]]
        facts = converted_acquisition_facts(converted, scans)
    patients = sorted(set(X.index.astype(str)) & set(clin["patient_id"].astype(str)))
    labels, lqc = batch_labels(patients, clin, st.batch_column, "patient_id", facts, st.acquisition)
    rows += lqc
    ev = clin.assign(patient_id=clin["patient_id"].astype(str)).set_index("patient_id")["event"].reindex(patients)
    tab = batch_counts(labels, st.min_batch_size, event=ev.astype(float))
    for b in tab.loc[~tab["estimable"] & (tab["batch"] != "(unknown)"), "batch"]:
        rows.append(qc_row("", "", "harmonisation", "warning",
                           f"batch '{b}' has fewer than {st.min_batch_size} patients: ComBat cannot estimate it "
                           f"(harmonisation.min_batch_size); its patients follow harmonisation.unseen_batch "
                           f"({st.unseen_batch})"))
    out = pd.DataFrame({"patient_id": labels.index, "batch": labels.to_numpy()})
    write_tsv(out, batches)
    write_tsv(tab, counts)
    write_json({"config": dict(harmonisation), "description": st.describe()}, settings, indent=2, sort_keys=True)
    write_qc(rows, qc)
    log.info("harmonisation: %d patients in %d batches (%d unknown)", len(labels), labels.nunique(),
             int(labels.isna().sum()))


def _finite_columns(X: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    import numpy as np

    out = []
    for c in cols:
        v = X[c].to_numpy(dtype=float)
        if np.isfinite(v).all() and np.nanstd(v) > 0:
            out.append(c)
    return out


def diagnostics_tables(X: pd.DataFrame, labels: pd.Series, st: HarmonisationSettings, seed: int,
                       pca_path: str | Path | None = None, n_splits: int = DIAG_FOLDS,
                       n_repeats: int = DIAG_REPEATS, n_boot: int = DIAG_BOOT,
                       protect: pd.DataFrame | None = None) -> dict[str, Any]:
    """Site AUC before/after in-fold ComBat, Kruskal-Wallis before/after (cross-fitted) and
    the PCA figure, for features ``X`` (patients x candidate features) and batch ``labels``.

    Patients without a batch label are left out (their number is returned); features that
    are missing for a patient or constant are left out of the diagnostics. Features the
    harmoniser does not correct (shape, with ``exclude_shape``) are left out of the before/after
    comparison and get their own row (their site AUC measures case mix, which ComBat must keep).
    """
    import pandas as pd

    from radsurv.harmonisation.diagnostics import (
        cross_fitted_harmonisation,
        kruskal_batch_test,
        pca_figure,
        site_prediction_auc,
    )
    from radsurv.harmonisation.settings import protect_column

    lab = labels.reindex(X.index.astype(str))
    keep = lab.notna().to_numpy()
    Xk = X.loc[keep].apply(pd.to_numeric, errors="coerce").astype(float)
    lab = lab[keep].astype(str)
    cols = _finite_columns(Xk, list(Xk.columns))
    Xk = Xk[cols]
    num, cat = [], []
    cov = None
    if protect is not None and st.protected:
        p = protect.reindex(Xk.index)
        cov = pd.DataFrame(index=Xk.index)
        for c in st.protected:
            v = pd.to_numeric(p[c], errors="coerce")
            if v.notna().all():
                cov[protect_column(c)] = v.to_numpy(float)
                num.append(protect_column(c))
            else:
                cov[protect_column(c)] = p[c].astype(str).to_numpy()
                cat.append(protect_column(c))
    h = st.harmoniser(cols, num, cat)
    skipped = [c for c in cols if c in set(h.skip_features)]  # shape features (exclude_shape): not harmonised
    rows_extra = []
    if skipped and len(skipped) < len(cols):
        only = site_prediction_auc(Xk[skipped], lab, harmonise=False, n_splits=n_splits, n_repeats=n_repeats,
                                   n_boot=n_boot, seed=seed)
        rows_extra.append({"data": "shape features only (not harmonised: case mix)", **_auc_row(only)})
        cols = [c for c in cols if c not in set(skipped)]
        Xk = Xk[cols]
        h = st.harmoniser(cols, num, cat)
    before = site_prediction_auc(Xk, lab, harmonise=False, n_splits=n_splits, n_repeats=n_repeats, n_boot=n_boot,
                                 seed=seed)
    after = site_prediction_auc(Xk, lab, harmonise=True, harmoniser=h, covariates=cov, n_splits=n_splits,
                                n_repeats=n_repeats, n_boot=n_boot, seed=seed)
    crossfit = cross_fitted_harmonisation(Xk, lab, h, covariates=cov, n_splits=n_splits, seed=seed)
    kw_before = kruskal_batch_test(Xk, lab).assign(data="before")
    kw_after = kruskal_batch_test(crossfit, lab).assign(data="after in-fold ComBat (cross-fitted)")
    if pca_path is not None:
        pca_figure(Xk, crossfit, lab, pca_path, title="Robust candidate features by batch")
    site = pd.DataFrame([{"data": "before", **_auc_row(before)},
                         {"data": "after in-fold ComBat", **_auc_row(after)}, *rows_extra])
    return {"site_auc": site, "kruskal": pd.concat([kw_before, kw_after], ignore_index=True),
            "n_patients": int(len(Xk)), "n_unlabelled": int((~keep).sum()), "n_features": len(cols),
            "not_harmonised": skipped,
            "n_significant_before": int(kw_before["significant"].sum()),
            "n_significant_after": int(kw_after["significant"].sum()),
            "before": before.as_dict(), "after": after.as_dict()}


def _auc_row(a: Any) -> dict[str, Any]:
    return {"metric": a.metric, "estimate": a.estimate, "ci_low": a.ci_low, "ci_high": a.ci_high,
            "n_patients": a.n_patients, "n_batches": len(a.batches), "ci_method": a.ci_method}


def _volume(X: pd.DataFrame, modelling: Mapping[str, Any]) -> pd.Series:
    """Tumour volume per patient (``modelling.volume_feature``; NaN where not a number), for
    ``protect_volume``."""
    import pandas as pd

    from radsurv.modelling.data import resolve_volume_column

    col, note = resolve_volume_column(list(X.columns), modelling.get("volume_feature"))
    if col is None:
        raise ValueError(f"harmonisation.protect_volume needs the tumour volume: {note}")
    return pd.to_numeric(X[col], errors="coerce")


def harmonisation_diagnostics(*, features: str | Path, clinical: str | Path | list[str], batches: str | Path,
                              settings: str | Path, modelling: Mapping[str, Any], seed: int,
                              columns: Mapping[str, Any], site_auc: str | Path, kruskal: str | Path,
                              pca: str | Path, summary: str | Path, robust: str | Path | None = None) -> None:
    """The batch diagnostics of the robust candidate features (see the module docstring):
    ``site_auc`` (TSV), ``kruskal`` (TSV, both states), ``pca`` (PNG), ``summary`` (JSON)."""
    from radsurv.harmonisation.settings import VOLUME_COVARIATE, read_harmonisation
    from radsurv.modelling.config import derive_seed

    h = read_harmonisation(batches, settings)
    qc: list[dict[str, str]] = []
    X, clin, candidates = _cohort(features, clinical, robust, modelling, seed, columns, qc)
    X.index = X.index.astype(str)
    protect = clin.assign(patient_id=clin["patient_id"].astype(str)).set_index("patient_id")
    if h.settings.protect_volume:
        from radsurv.harmonisation.confounds import log_volume

        volume = _volume(X, modelling)
        positive = volume > 0
        if not positive.all():  # as in the study: such patients are left out of every model
            log.warning("harmonisation diagnostics: %d patient(s) without a positive tumour volume left out "
                        "(harmonisation.protect_volume)", int((~positive).sum()))
            X = X.loc[positive]
        protect = protect.reindex(X.index)
        protect[VOLUME_COVARIATE] = log_volume(volume[positive])
    res = diagnostics_tables(X[candidates], h.batches, h.settings, derive_seed(seed, 19), pca, protect=protect)
    write_tsv(res.pop("site_auc"), site_auc)
    write_tsv(res.pop("kruskal"), kruskal)
    write_json({**res, "policy": h.settings.policy_text(), "settings": h.settings.describe()}, summary, indent=2,
               sort_keys=True)
    log.info("site-prediction AUC before %.3f, after in-fold ComBat %.3f", res["before"]["estimate"],
             res["after"]["estimate"])
