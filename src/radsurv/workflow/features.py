"""Entry points of the feature rules: one scan's features, the cohort's feature matrix,
the volume correlation."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radsurv.qc import write_qc

log = logging.getLogger(__name__)


def extract_scan_features(*, converted: str | Path, preprocessed: str | Path, features: str | Path,
                          stage_costs: str | Path, manifest: str | Path | None = None,
                          batch: str | Path | None = None, scan: str | None = None, roi_pattern: str = "",
                          roi_policy: str = "", preprocessing: Mapping[str, Any] | None = None,
                          extraction: Mapping[str, Any] | None = None, threads: int | None = None) -> None:
    """One scan from DICOM to its feature JSON: conversion, IBSI preprocessing, features
    (:func:`radsurv.features.scan.run_scan`; a failing stage is recorded, not raised).

    With ``batch`` (engines with a costly start-up: rule ``extract_scan_batch`` extracted the
    scan together with others) the scan's files are taken from that batch folder instead
    (:func:`radsurv.features.scan.take_from_batch`).
    """
    from radsurv.features.scan import run_scan, take_from_batch

    if batch is not None:
        if scan is None:
            raise TypeError("extract_scan_features: a scan taken from a batch needs its scan id")
        take_from_batch(batch, scan, converted, preprocessed, features, stage_costs)
        log.info("scan %s was extracted in batch %s; its log section is in that batch's log", scan,
                 Path(batch).name)
        return
    if manifest is None:
        raise TypeError("extract_scan_features needs the scan's manifest, or the batch that extracted it")
    run_scan(manifest, converted, preprocessed, features, stage_costs, roi_pattern, roi_policy,
             dict(preprocessing or {}), dict(extraction or {}), threads)


def extract_scan_batch(*, manifests: Sequence[str | Path], batch: str | Path, roi_pattern: str, roi_policy: str,
                       preprocessing: Mapping[str, Any], extraction: Mapping[str, Any],
                       threads: int | None = None) -> None:
    """A batch of scans in one process, each from DICOM to its features, into the batch folder
    (:func:`radsurv.features.scan.run_scan_batch`; used when the engine's start-up is costly)."""
    from radsurv.features.scan import run_scan_batch

    run_scan_batch(list(manifests), batch, roi_pattern, roi_policy, dict(preprocessing), dict(extraction), threads)


def assemble_features(*, scans: Sequence[str | Path], features: str | Path, diagnostics: str | Path,
                      qc: str | Path) -> None:
    """The cohort's feature matrix (one row per scan) and diagnostics table from the per-scan JSONs."""
    from radsurv.features.matrix import assemble
    from radsurv.features.names import feature_columns

    fdf, ddf, rows = assemble(list(scans))
    fdf.to_csv(features, sep="\t")
    ddf.to_csv(diagnostics, sep="\t")
    write_qc(rows, qc)
    log.info("feature matrix: %d scans x %d features; %d scans excluded",
             len(fdf), len(feature_columns(fdf)), len(rows))


def volume_correlation(*, features: str | Path, table: str | Path, volume_feature: str, threshold: float) -> None:
    """Spearman correlation of every feature with tumour volume; flags volume surrogates.

    ``volume_feature`` (``modelling.volume_feature``) not being a column, the table's one tumour-volume
    column is taken as the modelling stage takes it (:func:`radsurv.modelling.data.resolve_volume_column`:
    e.g. ``original_morph_volume`` of the pictologics engine), with a warning; none or several: an error.
    """
    from radsurv.features.matrix import volume_correlation as correlate_with_volume
    from radsurv.features.names import feature_columns
    from radsurv.features.table import modelling_matrix, read_features
    from radsurv.modelling.data import resolve_volume_column

    matrix = modelling_matrix(read_features(features))
    column, note = resolve_volume_column(feature_columns(matrix), volume_feature)
    if column is None:
        raise ValueError(note)
    if note:
        log.warning("%s", note.replace("the volume-only baseline uses", "the volume correlation uses"))
    volume_feature = column
    out = correlate_with_volume(matrix, volume_feature, float(threshold))
    out.to_csv(table, sep="\t", index=False)
    log.info("%d of %d features are volume surrogates (|Spearman| >= %g with %s)",
             int(out["volume_surrogate"].sum()), len(out), threshold, volume_feature)
