"""Entry points of the feature rules: one scan's features, the cohort's feature matrix,
the volume correlation."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radsurv.qc import write_qc

log = logging.getLogger(__name__)


def extract_scan_features(*, manifest: str | Path, converted: str | Path, preprocessed: str | Path,
                          features: str | Path, stage_costs: str | Path | None, roi_pattern: str,
                          roi_policy: str, preprocessing: Mapping[str, Any], extraction: Mapping[str, Any],
                          threads: int | None = None) -> None:
    """One scan from DICOM to its feature JSON: conversion, IBSI preprocessing, pyradiomics
    (:func:`radsurv.features.scan.run_scan`; a failing stage is recorded, not raised)."""
    from radsurv.features.scan import run_scan

    run_scan(manifest, converted, preprocessed, features, stage_costs, roi_pattern, roi_policy,
             dict(preprocessing), dict(extraction), threads)


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
    """Spearman correlation of every feature with tumour volume; flags volume surrogates."""
    from radsurv.features.matrix import volume_correlation as correlate_with_volume
    from radsurv.features.table import modelling_matrix, read_features

    out = correlate_with_volume(modelling_matrix(read_features(features)), volume_feature, float(threshold))
    out.to_csv(table, sep="\t", index=False)
    log.info("%d of %d features are volume surrogates (|Spearman| >= %g with %s)",
             int(out["volume_surrogate"].sum()), len(out), threshold, volume_feature)
