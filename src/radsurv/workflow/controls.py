"""Entry points of the negative-control rules (``harmonisation.negative_controls``; READII).

* :func:`control_scan_features` (rule ``control_scan_features``): the control image of one
  patient's first scan (:func:`radsurv.features.scan.control_scan`) and its features, by the
  same preprocessing and extraction as the real scan.
* :func:`control_study` (rule ``control_study``): the survival study re-run unchanged (same
  candidates, design, seed and, when on, in-fold harmonisation) on the control features; its
  performance table and metrics, for the report's comparison with the real model and the
  volume-only model.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radsurv.qc import write_qc
from radsurv.workflow._io import write_json

log = logging.getLogger(__name__)

#: Purpose key of the control images' seeds (:func:`radsurv.modelling.config.derive_seed`).
SEED_CONTROL = 19


def control_seed(seed: int, control: str, scan: str) -> int:
    """The seed of one scan's control image (from the study seed, the control and the scan id)."""
    from radsurv.modelling.config import derive_seed

    return derive_seed(seed, SEED_CONTROL, zlib.crc32(control.encode()), zlib.crc32(scan.encode()))


def control_scan_features(*, converted: str | Path, manifest: str | Path, control_converted: str | Path,
                          control_preprocessed: str | Path, features: str | Path, control: str, scan: str,
                          seed: int, preprocessing: Mapping[str, Any], extraction: Mapping[str, Any],
                          roi_pattern: str, roi_policy: str) -> None:
    """One scan's negative-control image and its feature JSON (``moved_roi``: on the whole scan,
    converted again from ``manifest``)."""
    from radsurv.features.scan import control_scan

    control_scan(converted, control, control_seed(seed, control, scan), control_converted, control_preprocessed,
                 features, dict(preprocessing), dict(extraction), manifest=manifest, roi_pattern=roi_pattern,
                 roi_policy=roi_policy)


def control_study(*, scans: Sequence[str | Path], robust: str | Path, clinical: str | Path,
                  modelling: Mapping[str, Any], seed: int, columns: Mapping[str, Any], control: str,
                  table: str | Path, performance: str | Path, metrics: str | Path, qc: str | Path,
                  harmonisation_batches: str | Path | None = None,
                  harmonisation_settings: str | Path | None = None) -> None:
    """The survival study on the control features (``table``: their feature matrix)."""
    from radsurv.features.matrix import assemble
    from radsurv.modelling.config import StudyConfig
    from radsurv.modelling.study import run_study
    from radsurv.workflow.modelling import _study_inputs

    fdf, _, rows = assemble(list(scans))
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    fdf.to_csv(table, sep="\t")
    sc = StudyConfig.from_dict(dict(modelling), seed=seed)
    X, clin, candidates = _study_inputs(table, clinical, robust, sc, columns, rows)
    harm = None
    if harmonisation_batches is not None and harmonisation_settings is not None:
        from radsurv.harmonisation.settings import read_harmonisation

        harm = read_harmonisation(harmonisation_batches, harmonisation_settings)
    res = run_study(X, clin, candidates, sc, harmonisation=harm)
    rows += [dict(r, stage=f"control:{control}:{r.get('stage', '')}") for r in res.qc]
    res.performance.to_csv(performance, sep="\t", index=False)
    m = res.metrics
    write_json({"control": control, **{k: m.get(k) for k in (
        "c_index_test", "c_index_test_ci_low", "c_index_test_ci_high", "c_index_volume_test", "n_test",
        "events_test", "n_candidate_features")},
        # C minus the volume-only C on the same patients and folds, paired bootstrap CI (as in by_model)
        "delta_harrell_c_vs_volume": m.get("by_model", {}).get("radiomics", {}).get("delta_harrell_c_vs_volume")},
        metrics, indent=2, sort_keys=True)
    write_qc(rows, qc)
    log.info("negative control %s: held-out C %s (volume %s)", control, m.get("c_index_test"),
             m.get("c_index_volume_test"))
