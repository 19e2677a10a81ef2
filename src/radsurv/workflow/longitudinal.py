"""Entry points of the delta-radiomics rules (issue #18, ``workflow/rules/longitudinal.smk``).

Each function is one rule: it reads the rule's files, calls the library
(:mod:`radsurv.longitudinal`, :mod:`radsurv.synthetic.longitudinal`, :mod:`radsurv.report.longitudinal`)
and writes the outputs. ``longitudinal`` is the config's validated ``longitudinal`` block and
``seed`` the config's seed (:func:`radsurv.longitudinal.settings.longitudinal_settings`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radsurv.workflow._io import write_tsv

log = logging.getLogger(__name__)


def longitudinal_demo_cohort(*, images: str, contours: str, clinical: str, truth: str, patients: int, retest: int,
                             size: Sequence[int], seed: int) -> None:
    """Generate the longitudinal demo cohort beside ``images`` (field of view fixed, ``size`` voxels)."""
    from radsurv.synthetic.longitudinal import LongGeometry, write_longitudinal_cohort

    del contours, clinical, truth  # written by the generator beside the image table (names fixed there)
    base = LongGeometry()
    spacing = tuple(float(s) * n / m for s, n, m in zip(base.spacing, base.size, size, strict=True))
    paths = write_longitudinal_cohort(Path(images).parent, patients, retest, seed,
                                      LongGeometry(tuple(int(v) for v in size), spacing))  # type: ignore[arg-type]
    log.info("longitudinal demo cohort: %d patients, tables %s", patients, sorted(p.name for p in paths.values()))


def longitudinal_timepoints(*, images: str, assigned: str, qc: str, longitudinal: Mapping[str, Any],
                            seed: int) -> None:
    """Every scan of the scan table to its time point, a retest, or a QC row."""
    import pandas as pd

    from radsurv.longitudinal.settings import longitudinal_settings
    from radsurv.longitudinal.timepoints import assign_timepoints

    s = longitudinal_settings(longitudinal, seed)
    sheet = pd.read_csv(images, sep="\t", dtype={"patient_id": str, "scan_id": str})
    table, rows = assign_timepoints(sheet, s.timepoints)
    write_tsv(table, assigned)
    write_tsv(rows, qc)
    log.info("%d scans: %d assigned, %d QC rows", len(sheet), len(table), len(rows))


def longitudinal_scan_features(*, images: str, contours: str, assigned: str, features: str, propagation: str,
                               qc: str, scan: str, longitudinal: Mapping[str, Any], seed: int) -> None:
    """One assigned scan: its ROIs' features (own contour, else the propagated planning contour)."""
    import pandas as pd

    from radsurv.longitudinal.cohort import scan_inputs, scan_row
    from radsurv.longitudinal.settings import longitudinal_settings
    from radsurv.qc import qc_frame

    s = longitudinal_settings(longitudinal, seed)
    table = pd.read_csv(assigned, sep="\t", dtype={"patient_id": str, "scan_id": str})
    row, prop, rows = scan_row(scan_inputs(images, contours), table, scan, s.rois, s.pyradiomics_params(),
                               s.propagation, s.validate_propagation)
    write_tsv(pd.DataFrame([row]), features)
    write_tsv(pd.DataFrame(prop, columns=PROPAGATION_COLUMNS), propagation)  # no wall time: byte-identical reruns
    write_tsv(qc_frame(rows), qc)


#: Columns of the propagation quality table (one row per propagated ROI and scan).
PROPAGATION_COLUMNS = ["patient_id", "scan_id", "timepoint", "roi", "used", "dice", "jacobian_min", "jacobian_max",
                       "jacobian_folding_fraction", "rigid_metric", "rigid_rotation_deg", "rigid_bounded"]


def _concat(paths: Sequence[str], columns: Sequence[str] | None = None) -> Any:
    import pandas as pd

    parts = [pd.read_csv(p, sep="\t", dtype={"patient_id": str, "scan_id": str}) for p in paths]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns or []))


def longitudinal_delta_table(*, scan_features: Sequence[str], scan_propagation: Sequence[str],
                             scan_qc: Sequence[str], timepoint_qc: str, features: str, propagation: str, rc: str,
                             delta: str, selection: str, qc: str, longitudinal: Mapping[str, Any],
                             seed: int) -> None:
    """Assemble the per-scan tables; repeatability coefficients, gated deltas and the feature selection."""
    import pandas as pd

    from radsurv.longitudinal.cohort import delta_tables
    from radsurv.longitudinal.settings import longitudinal_settings
    from radsurv.qc import QC_COLUMNS

    s = longitudinal_settings(longitudinal, seed)
    feats = _concat(scan_features).sort_values(["patient_id", "timepoint_index", "role", "scan_id"])
    t = delta_tables(feats, s.delta)
    write_tsv(feats, features)
    write_tsv(_concat(scan_propagation, PROPAGATION_COLUMNS).sort_values(["patient_id", "scan_id", "roi"]),
              propagation)
    write_tsv(t.rc, rc)
    write_tsv(t.delta, delta)
    write_tsv(t.selection, selection)
    write_tsv(pd.concat([_concat([timepoint_qc, *scan_qc], QC_COLUMNS), t.qc], ignore_index=True), qc)
    log.info("%d feature rows; %d of %d features kept for modelling", len(feats), int(t.selection["kept"].sum()),
             len(t.selection))


def longitudinal_study(*, features: str, delta: str, rc: str, selection: str, assigned: str, clinical: str,
                       delta_qc: str, landmark: str, performance: str, predictions: str, qc: str,
                       longitudinal: Mapping[str, Any], seed: int) -> None:
    """Landmark outcome and the comparison baseline / delta / baseline + delta / relative volume change."""
    import pandas as pd

    from radsurv.longitudinal.cohort import DeltaTables, delta_models
    from radsurv.longitudinal.settings import longitudinal_settings

    s = longitudinal_settings(longitudinal, seed)
    ids = {"patient_id": str, "scan_id": str}
    f = pd.read_csv(features, sep="\t", dtype=ids)
    tables = DeltaTables(pd.read_csv(rc, sep="\t"), pd.read_csv(delta, sep="\t", dtype=ids),
                         pd.read_csv(selection, sep="\t"), pd.DataFrame())
    clin = pd.read_csv(clinical, sep="\t", dtype={"patient_id": str})
    lm, perf, preds, qc_lm = delta_models(f, tables, pd.read_csv(assigned, sep="\t", dtype=ids), clin, s.landmark,
                                          s.study, s.tumour, s.time_column, s.event_column, s.endpoint,
                                          s.label_column)
    write_tsv(lm, landmark)
    write_tsv(perf, performance)
    write_tsv(preds, predictions)
    write_tsv(pd.concat([pd.read_csv(delta_qc, sep="\t", dtype=str), qc_lm], ignore_index=True), qc)
    log.info("landmark %s (%s endpoint): %d patients in the models, %d excluded", s.landmark, s.endpoint, len(lm),
             len(qc_lm))


def longitudinal_figures(*, features: str, delta: str, predictions: str, landmark: str, trajectories_png: str,
                         waterfall_png: str, longitudinal: Mapping[str, Any], seed: int) -> None:
    """Per-ROI trajectories by risk group and the waterfall of tumour volume change at the landmark,
    coloured by the outcome after it (``landmark``: the landmark table)."""
    import pandas as pd

    from radsurv.longitudinal.settings import longitudinal_settings
    from radsurv.report.longitudinal import plot_trajectories, plot_waterfall

    s = longitudinal_settings(longitudinal, seed)
    ids = {"patient_id": str, "scan_id": str}
    f = pd.read_csv(features, sep="\t", dtype=ids)
    preds = pd.read_csv(predictions, sep="\t", dtype=ids)
    plot_trajectories(f, preds, [r.name for r in s.rois], s.timepoints.names, trajectories_png)
    plot_waterfall(pd.read_csv(delta, sep="\t", dtype=ids), s.tumour, s.landmark,
                   pd.read_csv(landmark, sep="\t", dtype=ids), waterfall_png)
