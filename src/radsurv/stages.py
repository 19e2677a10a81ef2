"""One function per workflow rule: file in, file out, failures into the QC table.

The rule adapters in ``scripts/`` unpack the ``snakemake`` object and call
exactly one function here. Per-scan stages never raise for a bad case: they
write a ``status.json`` (``ok: false`` with the stage and reason) and the next
stage passes that status on, so the cohort completes and the QC table names
every case that dropped out, where and why.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from radsurv import features as feat
from radsurv.errors import CaseError
from radsurv.qc import merge_qc, qc_row, read_status, write_qc, write_status

log = logging.getLogger(__name__)


def _guard(stage: str, scan_id: str, fn: Callable[[], dict[str, Any]]) -> tuple[bool, str, dict[str, Any]]:
    """Run one case's work; a CaseError or unexpected error becomes (False, reason)."""
    try:
        return True, "", fn()
    except CaseError as err:
        log.warning("%s excluded at %s: %s", scan_id, err.stage, err.reason)
        return False, err.reason, {"stage": err.stage}
    except Exception as err:  # noqa: BLE001 - one bad case must not stop the cohort
        log.error("%s: unexpected error at %s\n%s", scan_id, stage, traceback.format_exc())
        return False, f"unexpected error during {stage}: {type(err).__name__}: {err}", {"stage": stage}


# --------------------------------------------------------------------------- demo
def demo_cohort(out_dir: str | Path, patients: int, retest: int, seed: int) -> None:
    """Generate the synthetic demo cohort (DICOM + clinical table) into ``out_dir``."""
    from radsurv.demo import generate_demo_cohort

    summary = generate_demo_cohort(Path(out_dir), n_patients=patients, n_retest=retest, seed=seed)
    log.info("demo cohort written: %s", {k: v for k, v in summary.items() if not isinstance(v, (list, dict))})


# ---------------------------------------------------------------------- ingestion
def discovery(dicom_dir: str | Path, scans_tsv: str | Path, manifest_dir: str | Path, qc_tsv: str | Path) -> None:
    """Find every (image series, contour) pair under ``dicom_dir``."""
    from radsurv.dicomio import discover, write_discovery

    disc = discover(Path(dicom_dir))
    Path(manifest_dir).mkdir(parents=True, exist_ok=True)
    write_discovery(disc, Path(scans_tsv), Path(manifest_dir), Path(qc_tsv))
    log.info("discovered %d scans, %d QC findings", len(disc.scans), len(disc.qc))


def conversion(manifest: str | Path, out_dir: str | Path, roi_pattern: str, roi_policy: str) -> None:
    """DICOM series + contour -> ``out_dir/{image,mask}.nii.gz`` and ``status.json``."""
    from radsurv.dicomio import convert_scan, read_manifest

    scan = read_manifest(Path(manifest))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ok, reason, info = _guard("conversion", scan.scan_id, lambda: convert_scan(
        scan, roi_pattern, out / "image.nii.gz", out / "mask.nii.gz", roi_policy=roi_policy))
    meta = {"scan_id": scan.scan_id, "patient_id": scan.patient_id, "session": scan.session}
    if ok:
        (out / "provenance.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    write_status(out / "status.json", ok, info.get("stage", "conversion") if not ok else "conversion", reason, **meta)


def preprocessing(in_dir: str | Path, out_dir: str | Path, settings: Mapping[str, Any]) -> None:
    """Resample a converted scan onto the site grid (see :mod:`radsurv.preprocess`)."""
    from radsurv.preprocess import PreprocessSettings, preprocess_files

    src, out = Path(in_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    status = read_status(src / "status.json")
    meta = {k: status[k] for k in ("scan_id", "patient_id", "session")}
    if not status["ok"]:
        write_status(out / "status.json", False, status["stage"], status["reason"], **meta)
        return
    ps = PreprocessSettings.from_config(dict(settings))
    ok, reason, info = _guard("preprocessing", meta["scan_id"], lambda: preprocess_files(
        src / "image.nii.gz", src / "mask.nii.gz", out / "image.nii.gz", out / "mask.nii.gz", ps))
    write_status(out / "status.json", ok, "preprocessing" if ok else info["stage"], reason, **meta,
                 **({"summary": info} if ok else {}))


def extraction(in_dir: str | Path, out_json: str | Path, extraction_cfg: Mapping[str, Any]) -> None:
    """pyradiomics features of one preprocessed scan -> a per-scan JSON."""
    src = Path(in_dir)
    status = read_status(src / "status.json")
    meta = {k: status[k] for k in ("scan_id", "patient_id", "session")}
    if not status["ok"]:
        rec = dict(meta, ok=False, reason=status["reason"])
        feat.write_scan_features(out_json, **rec)
        _set_stage(out_json, status["stage"])
        return
    params = feat.pyradiomics_params(extraction_cfg)
    result: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        f, d = feat.extract(src / "image.nii.gz", src / "mask.nii.gz", params)
        result.update(features=f, diagnostics=d)
        return {}

    ok, reason, info = _guard("extraction", meta["scan_id"], run)
    feat.write_scan_features(out_json, ok=ok, reason=reason, **meta, **result)
    if not ok:
        _set_stage(out_json, info["stage"])


def _set_stage(path: str | Path, stage: str) -> None:
    rec = json.loads(Path(path).read_text())
    rec["stage"] = stage
    Path(path).write_text(json.dumps(rec, sort_keys=True, default=str))


def assembly(scan_files: Sequence[str | Path], features_tsv: str | Path, diagnostics_tsv: str | Path,
             qc_tsv: str | Path) -> None:
    """The cohort's feature matrix (one row per scan) and diagnostics table."""
    fdf, ddf, qc = feat.assemble(scan_files)
    fdf.to_csv(features_tsv, sep="\t")
    ddf.to_csv(diagnostics_tsv, sep="\t")
    write_qc(qc, qc_tsv)
    log.info("feature matrix: %d scans x %d features; %d scans excluded",
             len(fdf), len(feat.feature_columns(fdf)), len(qc))


def read_features(path: str | Path) -> pd.DataFrame:
    """Read a matrix written by :func:`assembly` (indexed by scan_id)."""
    return pd.read_csv(path, sep="\t", index_col="scan_id", dtype={"patient_id": str})


# --------------------------------------------------------------------- robustness
def robustness(features_tsv: str | Path, scans_tsv: str | Path, settings: Mapping[str, Any],
               icc_tsv: str | Path, robust_txt: str | Path, plot_png: str | Path,
               summary_json: str | Path) -> None:
    """Test-retest ICC per feature and the robust-feature list."""
    from radsurv.plots import plot_icc_by_class
    from radsurv.robustness import RobustnessSettings, counts_by_class, retest_pairs, robustness_table

    rs = RobustnessSettings.from_config(dict(settings))
    fdf = read_features(features_tsv)
    scans = pd.read_csv(scans_tsv, sep="\t", dtype={"patient_id": str})
    pairs = retest_pairs(scans, rs.retest_max_days)
    table, assessed = robustness_table(fdf, pairs, rs)
    table.to_csv(icc_tsv, sep="\t", index=False)
    robust = table.loc[table["robust"], "feature"].tolist()
    Path(robust_txt).write_text("".join(f"{f}\n" for f in robust))
    plot_icc_by_class(table, plot_png, rs.threshold, rs.use_lower_bound)
    counts = counts_by_class(table)
    summary = {
        "assessed": assessed,
        "pairs_found": int(len(pairs)),
        "pairs_used": int(table["n"].iloc[0]) if len(table) else 0,
        "form": rs.icc_form,
        "threshold": rs.threshold,
        "use_lower_bound": rs.use_lower_bound,
        "n_features": int(len(table)),
        "n_robust": int(len(robust)),
        "by_class": counts.to_dict(orient="records"),
    }
    Path(summary_json).write_text(json.dumps(summary, indent=2))


# ----------------------------------------------------------------------- clinical
def clinical(table: str | Path, columns: Mapping[str, Any], scans_tsv: str | Path,
             out_tsv: str | Path, qc_tsv: str | Path) -> None:
    """Standardised clinical table (patient_id, time, event, covariates) + QC."""
    from radsurv.clinical import load_clinical

    scans = pd.read_csv(scans_tsv, sep="\t", dtype={"patient_id": str})
    df, qc = load_clinical(table, columns, image_ids=sorted(scans["patient_id"].unique()))
    df.to_csv(out_tsv, sep="\t", index=False)
    write_qc(qc, qc_tsv)


# ---------------------------------------------------------------------- modelling
def modelling_matrix(fdf: pd.DataFrame) -> pd.DataFrame:
    """One row per patient for modelling: each patient's first analysable scan."""
    first = fdf.sort_values(["patient_id", "session"]).groupby("patient_id", sort=True).head(1)
    return first.set_index("patient_id").drop(columns=["session"])


def modelling(features_tsv: str | Path, robust_txt: str | Path, clinical_tsv: str | Path,
              cfg: Mapping[str, Any], seed: int, predictions_tsv: str | Path, metrics_json: str | Path,
              coefficients_tsv: str | Path, signature_json: str | Path, selection_tsv: str | Path) -> None:
    """Fit the Cox signature on the training split; score held-out patients unchanged."""
    from radsurv.modelling import ModelConfig, run_modelling

    fdf = read_features(features_tsv)
    X = modelling_matrix(fdf)
    candidates = [ln.strip() for ln in Path(robust_txt).read_text().splitlines() if ln.strip()]
    clin = pd.read_csv(clinical_tsv, sep="\t", dtype={"patient_id": str})
    fields = {k: cfg[k] for k in ModelConfig.__dataclass_fields__ if k in cfg and k != "seed"}
    mc = ModelConfig(seed=seed, **fields)
    res = run_modelling(X, clin[["patient_id", "time", "event"]], candidates, mc)
    res.predictions.to_csv(predictions_tsv, sep="\t", index=False)
    Path(metrics_json).write_text(json.dumps(_json_safe(res.metrics), indent=2, sort_keys=True, allow_nan=False))
    res.coefficients.to_csv(coefficients_tsv, sep="\t", index=False)
    Path(signature_json).write_text(res.signature.to_json())
    sel = res.selection_log if isinstance(res.selection_log, pd.DataFrame) else pd.DataFrame(
        [{"step": k, "n_features": v} for k, v in dict(res.selection_log).items()])
    sel.to_csv(selection_tsv, sep="\t", index=False)


def _json_safe(value: Any) -> Any:
    """Plain JSON: NaN/inf become null (``json`` would write the invalid token NaN)."""
    import math

    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def km_figure(predictions_tsv: str | Path, out_png: str | Path, subset: str, time_unit: str) -> None:
    """Kaplan-Meier curves of the risk groups of ``subset`` (train or test)."""
    from radsurv.kmplot import plot_km

    pred = pd.read_csv(predictions_tsv, sep="\t", dtype={"patient_id": str})
    title = {"test": "Held-out patients", "train": "Training patients"}.get(subset, subset)
    plot_km(pred, Path(out_png), subset=subset, title=f"{title}: radiomic risk groups", time_unit=time_unit)


# ----------------------------------------------------------------------------- QC
def qc_table(parts: Sequence[str | Path], out_tsv: str | Path) -> None:
    """All stages' QC rows in one table."""
    frame = merge_qc(parts, out_tsv)
    log.info("QC table: %d rows (%d excluded)", len(frame), int((frame["status"] == "excluded").sum()))


__all__ = [
    "assembly", "clinical", "conversion", "demo_cohort", "discovery", "extraction", "km_figure",
    "modelling", "preprocessing", "qc_table", "qc_row", "robustness",
]
