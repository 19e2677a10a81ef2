"""Entry points of the biology rules (issue #17): the figures of each categorical endpoint and
the radiogenomics screen."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radsurv.qc import qc_row, write_qc

log = logging.getLogger(__name__)

STAGE = "radiogenomics_screen"


def classification_figures(*, predictions: str | Path, metrics: str | Path, roc: str | Path,
                           calibration: str | Path, decision_curve: str | Path, confusion: str | Path) -> None:
    """ROC curves, calibration plot, decision curve and confusion matrix of one categorical
    endpoint from rule ``fit_classifier``'s ``predictions.tsv`` and ``metrics.json``
    (:func:`radsurv.report.classification.draw_classification_figures`)."""
    from radsurv.report.classification import draw_classification_figures

    draw_classification_figures(predictions, metrics, {"roc": roc, "calibration": calibration,
                                                       "decision_curve": decision_curve, "confusion": confusion})


def _screen_features(features: str | Path, robust: str | Path | None, modelling: Mapping[str, Any],
                     qc: list[dict[str, str]]) -> tuple[Any, str | None]:
    """``(features by patient: the robust ones plus tumour volume, volume column)`` of either
    start: the pipeline's ``features.tsv`` (each patient's first scan) and robust list, or the
    user's ``modelling.features_table`` (``robust`` is then ``None``)."""
    from radsurv.features.table import candidate_columns, modelling_matrix, read_feature_table, read_features
    from radsurv.modelling.data import resolve_volume_column

    pattern = modelling.get("feature_pattern")
    if robust is None:
        X = read_feature_table(features, modelling["features_id_column"], modelling.get("features_header_rows", 1),
                               modelling.get("features_id_pattern"), qc=qc)
        keep = candidate_columns(X, pattern)
    else:
        X = modelling_matrix(read_features(features))
        allowed = [ln.strip() for ln in Path(robust).read_text().splitlines() if ln.strip()]
        keep = candidate_columns(X, pattern, allowed)
    vol, note = resolve_volume_column(list(X.columns), str(modelling.get("volume_feature", "")))
    if note:
        qc.append(qc_row("", "", STAGE, "warning", note))
    cols = keep + ([vol] if vol and vol not in keep else [])
    X.index = X.index.astype(str)
    return X[cols], vol


def _biology_table(clinical: str | Path | Sequence[str | Path], id_column: str, columns: Sequence[str],
                   qc: list[dict[str, str]]) -> Any:
    """The biology ``columns`` of the raw clinical table(s), indexed by patient id (text, empty
    cells missing); a column the table lacks becomes a QC row."""
    from radsurv.ingest.clinical import read_clinical_tables

    raw, name = read_clinical_tables(clinical if isinstance(clinical, (str, Path)) else list(clinical), id_column)
    present = [c for c in columns if c in raw.columns]
    for c in columns:
        if c not in raw.columns:
            qc.append(qc_row("", "", STAGE, "warning", f"biology column {c!r} is not a column of {name}: not screened"))
    bio = raw.set_index(raw[id_column].astype(str).str.strip())[present]
    return bio.replace("", None)


def radiogenomics_screen(*, features: str | Path, clinical: str | Path | list[str], table: str | Path,
                         figure: str | Path, qc: str | Path, biology: Mapping[str, str],
                         modelling: Mapping[str, Any], columns: Mapping[str, Any],
                         robust: str | Path | None = None) -> None:
    """Association of every robust feature with every biology column
    (:func:`radsurv.modelling.classification.radiogenomics.screen_columns`: Mann-Whitney /
    Kruskal-Wallis / Spearman, Benjamini-Hochberg FDR per column, volume-adjusted).

    ``biology``: the clinical columns to screen (each categorical endpoint's column, then
    ``modelling.biology_columns``: :func:`radsurv.workflow.rules.biology_columns`) with their
    declared type (an endpoint's: binary / categorical) or ``""`` (inferred from the values). A
    column that cannot be screened is a QC row (``qc``), never a failed run. Writes ``table``
    (TSV) and ``figure`` (PNG).
    """
    from radsurv.modelling.classification.radiogenomics import plot_radiogenomics, screen_columns
    from radsurv.workflow._io import write_tsv

    rows: list[dict[str, str]] = []
    X, vol = _screen_features(features, robust, modelling, rows)
    bio = _biology_table(clinical, columns["id"], list(biology), rows)
    n_common = len(set(bio.index) & set(X.index))
    log.info("radiogenomics: %d features (volume %s), %d biology column(s), %d patients with both",
             X.shape[1], vol, bio.shape[1], n_common)
    types = {c: t for c, t in biology.items() if t}
    result, skipped = screen_columns(X, bio, vol, adjust_volume=vol is not None, types=types)
    if vol is None:
        rows.append(qc_row("", "", STAGE, "warning", "no tumour-volume column: the screen is NOT volume-adjusted"))
    for col, reason in skipped.items():
        rows.append(qc_row("", "", STAGE, "warning", f"biology column {col!r} not screened: {reason}"))
    write_tsv(result, table)
    plot_radiogenomics(result, figure)
    write_qc(rows, qc)
