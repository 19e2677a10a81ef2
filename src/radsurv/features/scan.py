"""The per-scan stages -- conversion, preprocessing, extraction -- with their status files.

Per-scan stages never raise for a bad case: they write a ``status.json`` (``ok: false``
with the stage and reason) and the next stage passes that status on, so the cohort
completes and the QC table names every case that dropped out, where and why. The
workflow's ``extract_scan_features`` rule runs the three in one job
(:func:`radsurv.workflow.features.extract_scan_features`); the robustness rules start
from their folders.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from radsurv.errors import CaseError
from radsurv.privacy import scrub_uids
from radsurv.qc import read_status, write_status

log = logging.getLogger(__name__)


def guard_case(stage: str, scan_id: str, fn: Callable[[], dict[str, Any]]) -> tuple[bool, str, dict[str, Any]]:
    """Run one case's work; a CaseError or unexpected error becomes (False, reason)."""
    try:
        return True, "", fn()
    except CaseError as err:
        log.warning("%s excluded at %s: %s", scan_id, err.stage, err.reason)
        return False, err.reason, {"stage": err.stage}
    except Exception as err:  # noqa: BLE001 - one bad case must not stop the cohort
        log.error("%s: unexpected error at %s\n%s", scan_id, stage, traceback.format_exc())
        # the library's message may quote DICOM UIDs (a CaseError's reason already has pseudonyms)
        return False, scrub_uids(f"unexpected error during {stage}: {type(err).__name__}: {err}"), {"stage": stage}


def conversion(manifest: str | Path, out_dir: str | Path, roi_pattern: str, roi_policy: str,
               preprocessing: Mapping[str, Any] | None = None) -> None:
    """DICOM series + contour -> ``out_dir/{image,mask}.nrrd`` and ``status.json``.

    With the study's ``preprocessing`` settings, CT and PET are stored as the ROI's
    neighbourhood only (:func:`radsurv.features.preprocess.conversion_margin_mm`); without, whole.
    """
    from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE, conversion_margin_mm
    from radsurv.ingest.convert import convert_scan
    from radsurv.ingest.records import read_manifest
    from radsurv.privacy import register_input_root

    scan = read_manifest(Path(manifest))
    if scan.cohort_root:
        register_input_root(scan.cohort_root)  # library errors quoting an input path: pseudonym
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    margin = conversion_margin_mm(scan.modality, preprocessing) if preprocessing is not None else None
    ok, reason, info = guard_case("conversion", scan.scan_id, lambda: convert_scan(
        scan, roi_pattern, out / CONVERTED_IMAGE_FILE, out / CONVERTED_MASK_FILE, roi_policy=roi_policy,
        crop_margin_mm=margin))
    meta = {"scan_id": scan.scan_id, "patient_id": scan.patient_id, "session": scan.session}
    if ok:
        (out / "provenance.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    write_status(out / "status.json", ok, info.get("stage", "conversion") if not ok else "conversion", reason, **meta)


def preprocessing(in_dir: str | Path, out_dir: str | Path, settings: Mapping[str, Any]) -> None:
    """IBSI preprocessing of a converted scan (see :mod:`radsurv.features.preprocess`).

    Writes the image, the morphological mask (``mask.nii.gz``) and the
    re-segmented intensity mask (``mask_intensity.nii.gz``) on the site grid.
    """
    from radsurv.features.preprocess import (
        CONVERTED_IMAGE_FILE,
        CONVERTED_MASK_FILE,
        IMAGE_FILE,
        INTENSITY_MASK_FILE,
        MORPH_MASK_FILE,
        PreprocessSettings,
        preprocess_files,
    )

    src, out = Path(in_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    status = read_status(src / "status.json")
    meta = {k: status[k] for k in ("scan_id", "patient_id", "session")}
    if not status["ok"]:
        write_status(out / "status.json", False, status["stage"], status["reason"], **meta)
        return
    ps = PreprocessSettings.from_config(dict(settings))
    prov = src / "provenance.json"
    region = json.loads(prov.read_text()).get("stored_region") if prov.is_file() else None
    ok, reason, info = guard_case("preprocessing", meta["scan_id"], lambda: preprocess_files(
        src / CONVERTED_IMAGE_FILE, src / CONVERTED_MASK_FILE, out / IMAGE_FILE, out / MORPH_MASK_FILE, ps,
        out / INTENSITY_MASK_FILE, region))
    write_status(out / "status.json", ok, "preprocessing" if ok else info["stage"], reason, **meta,
                 **({"summary": info} if ok else {}))


def extraction(in_dir: str | Path, out_json: str | Path, extraction_cfg: Mapping[str, Any],
               preprocessing_cfg: Mapping[str, Any] | None = None) -> None:
    """Features of one preprocessed scan (engine ``extraction_cfg['engine']``) -> a per-scan JSON.

    Shape features come from the morphological mask, all others from the
    intensity mask (when preprocessing wrote one); fixed-size bins count from
    ``preprocessing_cfg['resegment_range'][0]`` (IBSI).
    """
    from radsurv.features import engines
    from radsurv.features.matrix import write_scan_features
    from radsurv.features.preprocess import IMAGE_FILE, INTENSITY_MASK_FILE, MORPH_MASK_FILE

    src = Path(in_dir)
    status = read_status(src / "status.json")
    meta = {k: status[k] for k in ("scan_id", "patient_id", "session")}
    if not status["ok"]:
        rec = dict(meta, ok=False, reason=status["reason"])
        write_scan_features(out_json, **rec)
        _set_stage(out_json, status["stage"])
        return
    intensity = src / INTENSITY_MASK_FILE
    result: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        f, d = engines.extract(src / IMAGE_FILE, src / MORPH_MASK_FILE, intensity if intensity.is_file() else None,
                               extraction_cfg, preprocessing_cfg)
        result.update(features=f, diagnostics=d)
        return {}

    ok, reason, info = guard_case("extraction", meta["scan_id"], run)
    write_scan_features(out_json, ok=ok, reason=reason, **meta, **result)
    if not ok:
        _set_stage(out_json, info["stage"])


#: Columns of a scan job's per-stage cost file (the names of Snakemake's benchmark files).
STAGE_COST_COLUMNS = ("stage", "s", "cpu_time", "max_rss")


def run_scan(manifest: str | Path, converted_dir: str | Path, preprocessed_dir: str | Path, out_json: str | Path,
         stage_costs: str | Path | None, roi_pattern: str, roi_policy: str,
         preprocessing_cfg: Mapping[str, Any], extraction_cfg: Mapping[str, Any],
         threads: int | None = None) -> None:
    """One scan from DICOM to its feature JSON, in one job (the workflow's ``extract_scan_features`` rule):
    :func:`conversion`, :func:`preprocessing`, :func:`extraction`.

    A failure in any stage is recorded as that stage's and passed on (QC table); the
    converted and preprocessed folders are kept for the robustness rules. One job per
    scan instead of one per stage saves a process start-up, Snakemake's per-job
    bookkeeping and the libraries' imports (README, "Benchmarks").

    ``stage_costs``: a TSV with one row per stage -- wall seconds (``s``), CPU seconds
    of this process (``cpu_time``, all threads) and the process's peak RSS in MB at the
    end of the stage (``max_rss``) -- so that the job's single benchmark file can still
    be split by stage. ``threads``: the rule's threads; SimpleITK (reading, resampling,
    LoG) otherwise uses every core of the machine, which oversubscribes a workstation
    running one job per core and exceeds a SLURM job's ``--cpus-per-task``.
    """
    if threads:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    costs = [
        _timed("conversion", lambda: conversion(manifest, converted_dir, roi_pattern, roi_policy,
                                                preprocessing_cfg)),
        _timed("preprocessing", lambda: preprocessing(converted_dir, preprocessed_dir, preprocessing_cfg)),
        _timed("extraction", lambda: extraction(preprocessed_dir, out_json, extraction_cfg, preprocessing_cfg)),
    ]
    for row in costs:
        log.info("%s: %.2f s wall, %.2f s CPU, peak RSS %.0f MB", row["stage"], row["s"], row["cpu_time"],
                 row["max_rss"])
    if stage_costs is not None:
        out = Path(stage_costs)
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = ["\t".join(STAGE_COST_COLUMNS)]
        lines += ["\t".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in STAGE_COST_COLUMNS)
                  for r in costs]
        out.write_text("\n".join(lines) + "\n")


#: Files of one scan inside a batch folder (rule ``extract_scan_batch``).
BATCH_FILES = {"converted": "converted", "preprocessed": "preprocessed", "features": "features.json",
               "stage_costs": "stage_costs.tsv"}


def run_scan_batch(manifests: Sequence[str | Path], batch_dir: str | Path, roi_pattern: str, roi_policy: str,
                   preprocessing_cfg: Mapping[str, Any], extraction_cfg: Mapping[str, Any],
                   threads: int | None = None) -> None:
    """Several scans in one process, each as :func:`run_scan` does it, into ``batch_dir/<scan id>/``
    (:data:`BATCH_FILES`): the engine's start-up (pictologics: ~20 s of Numba loading) is paid
    once per batch. Each scan keeps its own status (QC row), stage-cost file and log section
    (``== scan <id> ==``); the start-up is logged on its own, not charged to the first scan."""
    import time

    from radsurv.features.engines import start

    out = Path(batch_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    start(extraction_cfg)
    log.info("engine start-up: %.1f s", time.perf_counter() - t0)
    for manifest in manifests:
        scan_id = Path(manifest).stem
        log.info("== scan %s ==", scan_id)
        d = out / scan_id
        run_scan(manifest, d / BATCH_FILES["converted"], d / BATCH_FILES["preprocessed"], d / BATCH_FILES["features"],
                 d / BATCH_FILES["stage_costs"], roi_pattern, roi_policy, preprocessing_cfg, extraction_cfg, threads)


def take_from_batch(batch_dir: str | Path, scan_id: str, converted: str | Path, preprocessed: str | Path,
                    features: str | Path, stage_costs: str | Path) -> None:
    """One scan's files from its batch folder to the per-scan places every later rule reads
    (hard links where the file system allows, else copies: no second copy on disk)."""
    import os
    import shutil

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    src = Path(batch_dir) / scan_id
    if not (src / BATCH_FILES["features"]).is_file():
        raise FileNotFoundError(f"scan {scan_id} is not in batch {Path(batch_dir).name}")
    for key, dst in (("converted", converted), ("preprocessed", preprocessed)):
        shutil.copytree(src / BATCH_FILES[key], dst, copy_function=link, dirs_exist_ok=True)
    for key, dst in (("features", features), ("stage_costs", stage_costs)):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / BATCH_FILES[key], dst)


def _timed(stage: str, fn: Callable[[], None]) -> dict[str, Any]:
    """Run ``fn``; its wall and CPU seconds and this process's peak RSS (MB) afterwards."""
    import resource
    import time

    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    return {"stage": stage, "s": time.perf_counter() - t0, "cpu_time": time.process_time() - c0,
            "max_rss": peak_kb / 1024.0}


def _set_stage(path: str | Path, stage: str) -> None:
    rec = json.loads(Path(path).read_text())
    rec["stage"] = stage
    Path(path).write_text(json.dumps(rec, sort_keys=True, default=str))


def control_scan(converted_dir: str | Path, control: str, seed: int, control_dir: str | Path,
                 preprocessed_dir: str | Path, out_json: str | Path, preprocessing_cfg: Mapping[str, Any],
                 extraction_cfg: Mapping[str, Any], manifest: str | Path | None = None, roi_pattern: str = "",
                 roi_policy: str = "first") -> None:
    """A negative control of one converted scan (:mod:`radsurv.robustness.controls`), then the
    same preprocessing and extraction as the real scan: ``control_dir`` (the control's
    converted folder), ``preprocessed_dir`` and the feature JSON ``out_json``. A scan whose
    conversion failed, or whose control cannot be built, is recorded (stage ``control``), not raised.

    ``moved_roi`` needs room away from the tumour, which the converted CT or PET (stored as the
    ROI's neighbourhood only: :func:`radsurv.features.preprocess.conversion_margin_mm`) lacks, and a
    body mask that encloses the lungs, which a crop cuts open: it converts the whole scan again from
    ``manifest`` (same ROI pattern and policy) into ``control_dir`` and moves the ROI there."""
    import shutil

    from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE
    from radsurv.robustness.controls import control_image_files

    src, out = Path(converted_dir), Path(control_dir)
    out.mkdir(parents=True, exist_ok=True)
    if control == "moved_roi" and read_status(src / "status.json")["ok"]:
        if manifest is None:
            raise ValueError("the moved_roi control needs the scan's manifest (the whole scan)")
        conversion(manifest, out, roi_pattern, roi_policy)  # the whole scan: no preprocessing -> no crop
        src = out
    status = read_status(src / "status.json")
    meta = {k: status[k] for k in ("scan_id", "patient_id", "session")}
    if status["ok"]:
        ok, reason, info = guard_case(f"control:{control}", meta["scan_id"], lambda: control_image_files(
            src / CONVERTED_IMAGE_FILE, src / CONVERTED_MASK_FILE, control, seed, out / CONVERTED_IMAGE_FILE,
            out / CONVERTED_MASK_FILE) or {})
        if ok and src != out and (src / "provenance.json").is_file():
            shutil.copy(src / "provenance.json", out / "provenance.json")
        write_status(out / "status.json", ok, f"control:{control}" if ok else info["stage"], reason, **meta)
    else:
        write_status(out / "status.json", False, status["stage"], status["reason"], **meta)
    preprocessing(out, preprocessed_dir, preprocessing_cfg)
    extraction(preprocessed_dir, out_json, extraction_cfg, preprocessing_cfg)
