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
from typing import TYPE_CHECKING, Any

from radsurv.errors import CaseError
from radsurv.privacy import scrub_uids
from radsurv.qc import merge_qc, qc_row, read_status, write_qc, write_status

if TYPE_CHECKING:  # annotations only: pandas costs a per-scan job 0.4 s to import
    import pandas as pd

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
        # the library's message may quote DICOM UIDs (a CaseError's reason already has pseudonyms)
        return False, scrub_uids(f"unexpected error during {stage}: {type(err).__name__}: {err}"), {"stage": stage}


# --------------------------------------------------------------------------- demo
def demo_cohort(out_dir: str | Path, patients: int, retest: int, seed: int) -> None:
    """Generate the synthetic demo cohort (DICOM + clinical table) into ``out_dir``."""
    from radsurv.synthetic.demo import generate_demo_cohort

    summary = generate_demo_cohort(Path(out_dir), n_patients=patients, n_retest=retest, seed=seed)
    log.info("demo cohort written: %s", {k: v for k, v in summary.items() if not isinstance(v, (list, dict))})


# ---------------------------------------------------------------------- ingestion
def discovery(dicom_dir: str | Path, scans_tsv: str | Path, manifest_dir: str | Path, qc_tsv: str | Path,
              retest_max_days: int = 30, threads: int = 1) -> None:
    """Find every (image series, contour) pair under ``dicom_dir``; label repeat scans.

    ``retest_max_days`` (``robustness.retest_max_days``) decides whether a
    patient's second scan is labelled ``retest`` or ``follow-up`` in scans.tsv.
    ``threads``: processes reading the file headers (same result for any number).
    """
    from radsurv.ingest.dicomio import discover, write_discovery
    from radsurv.privacy import register_input_root

    register_input_root(dicom_dir)  # a path under it in any message or log becomes a file pseudonym
    disc = discover(Path(dicom_dir), retest_max_days=int(retest_max_days), workers=int(threads))
    Path(manifest_dir).mkdir(parents=True, exist_ok=True)
    write_discovery(disc, Path(scans_tsv), Path(manifest_dir), Path(qc_tsv))
    log.info("discovered %d scans, %d QC findings", len(disc.scans), len(disc.qc))


def sheet_discovery(image_sheet: str | Path, scans_tsv: str | Path, manifest_dir: str | Path,
                    qc_tsv: str | Path, retest_max_days: int = 30) -> None:
    """Scans of a pre-converted cohort (an image sheet of NIfTI/NRRD image + mask pairs).

    Writes the same scans.tsv, manifests and discovery QC as :func:`discovery`.
    """
    from radsurv.ingest.dicomio import write_discovery
    from radsurv.ingest.sheet import discover_sheet
    from radsurv.privacy import register_input_root

    register_input_root(Path(image_sheet).parent)
    disc = discover_sheet(Path(image_sheet), retest_max_days=int(retest_max_days))
    Path(manifest_dir).mkdir(parents=True, exist_ok=True)
    write_discovery(disc, Path(scans_tsv), Path(manifest_dir), Path(qc_tsv))
    log.info("image sheet: %d scans, %d QC findings", len(disc.scans), len(disc.qc))


def conversion(manifest: str | Path, out_dir: str | Path, roi_pattern: str, roi_policy: str,
               preprocessing: Mapping[str, Any] | None = None) -> None:
    """DICOM series + contour -> ``out_dir/{image,mask}.nrrd`` and ``status.json``.

    With the study's ``preprocessing`` settings, CT and PET are stored as the ROI's
    neighbourhood only (:func:`radsurv.features.preprocess.conversion_margin_mm`); without, whole.
    """
    from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE, conversion_margin_mm
    from radsurv.ingest.dicomio import convert_scan, read_manifest
    from radsurv.privacy import register_input_root

    scan = read_manifest(Path(manifest))
    if scan.cohort_root:
        register_input_root(scan.cohort_root)  # library errors quoting an input path: pseudonym
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    margin = conversion_margin_mm(scan.modality, preprocessing) if preprocessing is not None else None
    ok, reason, info = _guard("conversion", scan.scan_id, lambda: convert_scan(
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
    ok, reason, info = _guard("preprocessing", meta["scan_id"], lambda: preprocess_files(
        src / CONVERTED_IMAGE_FILE, src / CONVERTED_MASK_FILE, out / IMAGE_FILE, out / MORPH_MASK_FILE, ps,
        out / INTENSITY_MASK_FILE, region))
    write_status(out / "status.json", ok, "preprocessing" if ok else info["stage"], reason, **meta,
                 **({"summary": info} if ok else {}))


def extraction(in_dir: str | Path, out_json: str | Path, extraction_cfg: Mapping[str, Any],
               preprocessing_cfg: Mapping[str, Any] | None = None) -> None:
    """pyradiomics features of one preprocessed scan -> a per-scan JSON.

    Shape features come from the morphological mask, all others from the
    intensity mask (when preprocessing wrote one); fixed-size bins count from
    ``preprocessing_cfg['resegment_range'][0]`` (IBSI).
    """
    from radsurv.features import extract as feat
    from radsurv.features.preprocess import IMAGE_FILE, INTENSITY_MASK_FILE, MORPH_MASK_FILE

    src = Path(in_dir)
    status = read_status(src / "status.json")
    meta = {k: status[k] for k in ("scan_id", "patient_id", "session")}
    if not status["ok"]:
        rec = dict(meta, ok=False, reason=status["reason"])
        feat.write_scan_features(out_json, **rec)
        _set_stage(out_json, status["stage"])
        return
    params = feat.pyradiomics_params(extraction_cfg, preprocessing_cfg)
    intensity = src / INTENSITY_MASK_FILE
    result: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        f, d = feat.extract(src / IMAGE_FILE, src / MORPH_MASK_FILE, params,
                            intensity if intensity.is_file() else None)
        result.update(features=f, diagnostics=d)
        return {}

    ok, reason, info = _guard("extraction", meta["scan_id"], run)
    feat.write_scan_features(out_json, ok=ok, reason=reason, **meta, **result)
    if not ok:
        _set_stage(out_json, info["stage"])


#: Columns of a scan job's per-stage cost file (the names of Snakemake's benchmark files).
STAGE_COST_COLUMNS = ("stage", "s", "cpu_time", "max_rss")


def scan(manifest: str | Path, converted_dir: str | Path, preprocessed_dir: str | Path, out_json: str | Path,
         stage_costs: str | Path | None, roi_pattern: str, roi_policy: str,
         preprocessing_cfg: Mapping[str, Any], extraction_cfg: Mapping[str, Any],
         threads: int | None = None) -> None:
    """One scan from DICOM to its feature JSON, in one job (the workflow's ``scan`` rule):
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


def _timed(stage: str, fn: Callable[[], None]) -> dict[str, Any]:
    """Run ``fn``; its wall and CPU seconds and this process's peak RSS (MB) afterwards."""
    import resource
    import time

    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    return {"stage": stage, "s": time.perf_counter() - t0, "cpu_time": time.process_time() - c0,
            "max_rss": peak_kb / 1024.0}


def volume_correlation(features_tsv: str | Path, out_tsv: str | Path, volume_feature: str,
                       threshold: float = 0.9) -> None:
    """Spearman correlation of every feature with tumour volume; flags volume surrogates."""
    from radsurv.features import extract as feat
    fdf = read_features(features_tsv)
    table = feat.volume_correlation(modelling_matrix(fdf), volume_feature, threshold)
    table.to_csv(out_tsv, sep="\t", index=False)
    log.info("%d of %d features are volume surrogates (|Spearman| >= %g with %s)",
             int(table["volume_surrogate"].sum()), len(table), threshold, volume_feature)


def _set_stage(path: str | Path, stage: str) -> None:
    rec = json.loads(Path(path).read_text())
    rec["stage"] = stage
    Path(path).write_text(json.dumps(rec, sort_keys=True, default=str))


def assembly(scan_files: Sequence[str | Path], features_tsv: str | Path, diagnostics_tsv: str | Path,
             qc_tsv: str | Path) -> None:
    """The cohort's feature matrix (one row per scan) and diagnostics table."""
    from radsurv.features import extract as feat
    fdf, ddf, qc = feat.assemble(scan_files)
    fdf.to_csv(features_tsv, sep="\t")
    ddf.to_csv(diagnostics_tsv, sep="\t")
    write_qc(qc, qc_tsv)
    log.info("feature matrix: %d scans x %d features; %d scans excluded",
             len(fdf), len(feat.feature_columns(fdf)), len(qc))


def read_features(path: str | Path) -> pd.DataFrame:
    """Read a matrix written by :func:`assembly` (indexed by scan_id)."""
    import pandas as pd
    return pd.read_csv(path, sep="\t", index_col="scan_id", dtype={"patient_id": str})


# --------------------------------------------------------------------- robustness
def _write_tsv(frame: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)


def robustness_perturb(converted_dir: str | Path, out_json: str | Path, seed: int,
                       perturbation: Mapping[str, Any], preprocessing: Mapping[str, Any],
                       extraction: Mapping[str, Any]) -> None:
    """Features of N perturbed versions of one converted scan -> a per-scan JSON.

    Runs the pipeline's own preprocessing and extraction on each version
    (:func:`radsurv.robustness.perturbation.perturbed_features`). A scan that failed upstream,
    or fails here, is recorded with ``ok: false`` and its reason.
    """
    from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE
    from radsurv.robustness.perturbation import PerturbationSettings, perturbed_features, write_json

    src = Path(converted_dir)
    status = read_status(src / "status.json")
    meta = {k: status[k] for k in ("scan_id", "patient_id", "session")}
    if not status["ok"]:
        write_json(out_json, {**meta, "ok": False, "reason": status["reason"], "perturbations": []})
        return
    ps = PerturbationSettings.from_config(perturbation)
    ok, reason, info = _guard("perturbation", meta["scan_id"], lambda: perturbed_features(
        src / CONVERTED_IMAGE_FILE, src / CONVERTED_MASK_FILE, meta["scan_id"], seed, ps, preprocessing, extraction,
        patient_id=meta["patient_id"], session=meta["session"]))
    write_json(out_json, {**meta, "ok": ok, "reason": reason,
                          "perturbations": info.get("perturbations", []) if ok else [],
                          "noise_sd_hu": info.get("noise_sd_hu") if ok else None})


def robustness_discretise(preprocessed_dir: str | Path, out_json: str | Path, extraction: Mapping[str, Any],
                          preprocessing: Mapping[str, Any], discretisation: Mapping[str, Any]) -> None:
    """Features of one preprocessed scan under every discretisation setting -> JSON."""
    from radsurv.robustness.perturbation import write_json
    from radsurv.robustness.selection import DiscretisationSettings, discretised_features

    src = Path(preprocessed_dir)
    status = read_status(src / "status.json")
    meta = {k: status[k] for k in ("scan_id", "patient_id", "session")}
    if not status["ok"]:
        write_json(out_json, {**meta, "ok": False, "reason": status["reason"], "settings": []})
        return
    ds = DiscretisationSettings.from_config(dict(discretisation))
    result: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        result["settings"] = discretised_features(src, dict(extraction), dict(preprocessing), ds)
        return {}

    ok, reason, _ = _guard("discretisation", meta["scan_id"], run)
    write_json(out_json, {**meta, "ok": ok, "reason": reason, "settings": result.get("settings", [])})


def robustness_test_retest(features_tsv: str | Path, scans_tsv: str | Path, settings: Mapping[str, Any],
                           table_tsv: str | Path, bland_altman_png: str | Path,
                           summary_json: str | Path) -> None:
    """Test-retest ICC per feature over the retest pairs (outcome never read)."""
    import pandas as pd

    from radsurv.report.plots import plot_bland_altman
    from radsurv.robustness.selection import RobustnessSettings, retest_pairs, robustness_table

    rs = RobustnessSettings.from_config(dict(settings))
    fdf = read_features(features_tsv)
    scans = pd.read_csv(scans_tsv, sep="\t", dtype={"patient_id": str})
    pairs = retest_pairs(scans, rs.retest_max_days)
    table, assessed = robustness_table(fdf, pairs, rs)
    _write_tsv(table, table_tsv)
    ok = pairs[pairs["test_scan"].isin(fdf.index) & pairs["retest_scan"].isin(fdf.index)]
    long = pd.concat([
        fdf.loc[ok["test_scan"]].assign(replicate="test"),
        fdf.loc[ok["retest_scan"]].assign(replicate="retest"),
    ]).reset_index()
    plot_bland_altman(long, table if assessed else table.iloc[0:0], bland_altman_png,
                      replicate="replicate", title="Test-retest")
    Path(summary_json).write_text(json.dumps(_json_safe({
        "analysis": "test-retest", "assessed": assessed, "pairs_found": int(len(pairs)),
        "n": int(len(ok)), "k": 2, "form": rs.icc_form, "n_features": int(len(table)),
        "n_robust": int(table["robust"].sum()) if assessed else None}), indent=2))


def robustness_perturbation(scan_files: Sequence[str | Path], settings: Mapping[str, Any],
                            table_tsv: str | Path, long_tsv: str | Path, bland_altman_png: str | Path,
                            summary_json: str | Path) -> None:
    """ICC over the perturbed versions of each patient's first scan (Zwanenburg et al. 2019)."""
    import pandas as pd

    from radsurv.report.plots import plot_bland_altman
    from radsurv.robustness.perturbation import PerturbationSettings
    from radsurv.robustness.selection import RobustnessSettings, perturbation_long, perturbation_table

    rs = RobustnessSettings.from_config(dict(settings))
    ps = PerturbationSettings.from_config(dict(settings).get("perturbation"))
    records = [json.loads(Path(f).read_text()) for f in scan_files]
    long, excluded = perturbation_long(records)
    table, assessed = perturbation_table(long, rs, form=ps.icc_form)
    _write_tsv(table, table_tsv)
    _write_tsv(long, long_tsv)
    plot_bland_altman(long, table if assessed else table.iloc[0:0], bland_altman_png,
                      replicate="perturbation", title="Perturbation")
    noise = [r.get("noise_sd_hu") for r in records if r.get("ok")]
    for e in excluded:
        log.warning("perturbation robustness: %s left out: %s", e["scan_id"], e["reason"])
    Path(summary_json).write_text(json.dumps(_json_safe({
        "analysis": "perturbation", "assessed": assessed, "n": int(long["patient_id"].nunique()),
        "k": ps.n, "form": ps.icc_form, "n_features": int(len(table)),
        "n_robust": int(table["robust"].sum()) if assessed else None,
        "excluded": excluded, "settings": {k: getattr(ps, k) for k in ps.__dataclass_fields__},
        "noise_sd_hu_median": float(pd.Series(noise, dtype=float).median()) if noise else None}), indent=2))


def robustness_discretisation(scan_files: Sequence[str | Path], settings: Mapping[str, Any],
                              table_tsv: str | Path, plot_png: str | Path, summary_json: str | Path) -> None:
    """Which features keep the patients' ranking across discretisation settings (reported only)."""
    from radsurv.report.plots import plot_icc_by_class
    from radsurv.robustness.selection import (
        RobustnessSettings,
        counts_by_class,
        discretisation_long,
        discretisation_table,
    )

    rs = RobustnessSettings.from_config(dict(settings))
    records = [json.loads(Path(f).read_text()) for f in scan_files]
    long, excluded = discretisation_long(records)
    table, assessed = discretisation_table(long, rs)
    _write_tsv(table, table_tsv)
    plot_icc_by_class({"discretisation": table} if assessed else {}, plot_png, rs.threshold,
                      rs.use_lower_bound, ylabel="ICC(3,1) of patient ranks across discretisations",
                      title="Does the feature keep the patients' ranking across discretisations?")
    Path(summary_json).write_text(json.dumps(_json_safe({
        "analysis": "discretisation", "assessed": assessed,
        "n": int(long["patient_id"].nunique()) if len(long) else 0,
        "settings": list(dict.fromkeys(long["setting"])) if len(long) else [],
        "n_features": int(len(table)), "n_keep_ranking": int(table["robust"].sum()) if assessed else None,
        "by_class": counts_by_class(table).to_dict(orient="records") if assessed else [],
        "excluded": excluded}), indent=2))


def robustness(features_tsv: str | Path, settings: Mapping[str, Any], tables: Mapping[str, str | Path],
               summaries: Mapping[str, str | Path], icc_tsv: str | Path, robust_txt: str | Path,
               selection_tsv: str | Path, plot_png: str | Path, summary_json: str | Path) -> None:
    """The robust-feature list modelling uses, from the ICC analyses that ran.

    ``tables`` / ``summaries`` map ``test-retest`` / ``perturbation`` /
    ``discretisation`` to the files of the analysis rules. ``icc_tsv`` is all
    ICC analyses in one long table (column ``analysis``); ``selection_tsv`` the
    per-feature decision.
    """
    import pandas as pd

    from radsurv.features import extract as feat
    from radsurv.report.plots import plot_icc_by_class
    from radsurv.robustness.selection import RobustnessSettings, agreement, combine, counts_by_class

    rs = RobustnessSettings.from_config(dict(settings))
    fdf = read_features(features_tsv)
    cols = feat.feature_columns(fdf)
    sums = {k: json.loads(Path(v).read_text()) for k, v in summaries.items()}
    loaded = {k: (pd.read_csv(v, sep="\t"), bool(sums[k]["assessed"])) for k, v in tables.items()
              if k in ("test-retest", "perturbation")}
    selection, description = combine(loaded, rs, cols)
    _write_tsv(selection, selection_tsv)
    icc_long_table = pd.concat([t.assign(analysis=k) for k, (t, _) in loaded.items()], ignore_index=True)
    front = ["feature", "feature_class", "image_type", "analysis"]
    _write_tsv(icc_long_table[front + [c for c in icc_long_table.columns if c not in front]], icc_tsv)
    robust = selection.loc[selection["robust"], "feature"].tolist()
    Path(robust_txt).write_text("".join(f"{f}\n" for f in robust))
    plot_icc_by_class({k: t for k, (t, a) in loaded.items() if a}, plot_png, rs.threshold, rs.use_lower_bound)
    primary = "test-retest" if loaded.get("test-retest", (None, False))[1] else (
        "perturbation" if loaded.get("perturbation", (None, False))[1] else None)
    psum = sums.get(primary, {}) if primary else {}
    analyses = {}
    for k, (t, a) in loaded.items():
        analyses[k] = {**sums[k], "by_class": counts_by_class(t).to_dict(orient="records") if a else []}
    if "discretisation" in sums:
        analyses["discretisation"] = sums["discretisation"]
    summary = {
        # Keys read by the report (kept from the test-retest-only version).
        "assessed": primary is not None,
        "pairs_found": int(sums.get("test-retest", {}).get("pairs_found", 0)),
        "pairs_used": int(sums.get("test-retest", {}).get("n", 0)),
        "form": psum.get("form", rs.icc_form),
        "threshold": rs.threshold,
        "use_lower_bound": rs.use_lower_bound,
        "n_features": int(len(selection)),
        "n_robust": int(len(robust)),
        "by_class": counts_by_class(selection).to_dict(orient="records"),
        # What was done.
        "method": rs.method,
        "combine": rs.combine if rs.method == "both" else None,
        "description": description,
        "analyses": analyses,
        "agreement_test_retest_vs_perturbation": agreement(selection),
    }
    Path(summary_json).write_text(json.dumps(_json_safe(summary), indent=2))
    log.info("%s %d of %d features robust.", description, len(robust), len(selection))


# ----------------------------------------------------------------------- clinical
def clinical(table: str | Path, columns: Mapping[str, Any], scans_tsv: str | Path,
             out_tsv: str | Path, qc_tsv: str | Path) -> None:
    """Standardised clinical table (patient_id, time, event, covariates) + QC."""
    import pandas as pd

    from radsurv.ingest.clinical import load_clinical

    scans = pd.read_csv(scans_tsv, sep="\t", dtype={"patient_id": str})
    df, qc = load_clinical(table, columns, image_ids=sorted(scans["patient_id"].unique()))
    df.to_csv(out_tsv, sep="\t", index=False)
    write_qc(qc, qc_tsv)


# ---------------------------------------------------------------------- modelling
def modelling_matrix(fdf: pd.DataFrame) -> pd.DataFrame:
    """One row per patient for modelling: each patient's first analysable scan."""
    first = fdf.sort_values(["patient_id", "session"]).groupby("patient_id", sort=True).head(1)
    return first.set_index("patient_id").drop(columns=["session"])


#: Files written by :func:`modelling` into the model folder (rule ``model``).
MODEL_OUTPUTS = {
    "predictions": "predictions.tsv", "metrics": "metrics.json", "coefficients": "coefficients.tsv",
    "signature": "signature.json", "selection": "selection.tsv", "performance": "performance.tsv",
    "predictions_all": "predictions_all.tsv", "final_predictions": "final_predictions.tsv",
    "calibration": "calibration.tsv", "tuning": "tuning.tsv", "selection_frequency": "selection_frequency.tsv",
    "final_models": "final_models.joblib", "published": "published_signatures.tsv", "qc": "qc.tsv",
}


def model_inputs(config: Mapping[str, Any]) -> dict[str, str]:
    """Input files of rule ``model``: the pipeline's features + robust list + clinical
    table, or (with ``modelling.features_table``) the user's feature table and raw
    clinical table; plus external cohorts' tables and published signatures."""
    m = config["modelling"]
    if m.get("features_table"):
        files = {"features": m["features_table"], "clinical": config["cohort"]["clinical_table"]}
    else:
        files = {"features": "results/features/features.tsv", "robust": "results/robustness/robust_features.txt",
                 "clinical": "results/clinical/clinical.tsv"}
    for i, ext in enumerate(m.get("external_cohorts", []) or []):
        files[f"external_features_{i}"] = ext["features_table"]
        files[f"external_clinical_{i}"] = ext["clinical_table"]
    files.update({f"signature_{i}": p for i, p in enumerate(m.get("published_signatures", []) or [])})
    return files


#: Column names that are a leftover row index, never a feature (pandas ``to_csv`` writes an
#: unnamed first column; R writes ``X`` or ``""``).
_INDEX_NAME = r"^(Unnamed: \d+(_level_\d+)?|index|X|)$"


def _numeric_or_text(col: pd.Series) -> pd.Series:
    """Numbers when every non-empty cell is one, else the text unchanged."""
    import pandas as pd

    txt = col.astype(str).str.strip()
    empty = txt.isin(["", "nan", "NaN", "NA", "N/A"])
    num = pd.to_numeric(txt.where(~empty, None), errors="coerce")
    return num.astype(float) if not (num.isna() & ~empty).any() else col


def _header_diagnosis(df: pd.DataFrame, id_column: str, max_rows: int = 10) -> tuple[int, int | None]:
    """``(leading rows that look like header rows, row holding id_column or None)``: rows at the top
    in which (almost) no cell is a number, while rows below are numbers."""
    import pandas as pd

    n_extra, id_row = 0, None
    for i in range(min(max_rows, len(df))):
        cells = df.iloc[i].astype(str).str.strip()
        filled = cells[(cells != "") & (cells.str.lower() != "nan")]
        numeric = pd.to_numeric(filled, errors="coerce").notna().sum()
        if len(filled) and numeric >= 0.5 * len(filled):  # a data row: an id (text) beside numbers
            return n_extra, id_row
        n_extra += 1
        if id_row is None and (cells == id_column).any():
            id_row = i
    return 0, None  # no row of numbers below: these are data rows, not extra headings


def _numbers_below_text(df: pd.DataFrame, max_rows: int = 10) -> int:
    """Rows at the top that hold text where most columns hold numbers below them (extra
    header rows read as data); 0 if none. Columns of text throughout (e.g. pyradiomics'
    diagnostics) and numeric columns do not count either way."""
    from collections import Counter

    import numpy as np
    import pandas as pd

    starts: list[int] = []
    n_cols = 0
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col):
            n_cols += 1
            continue
        txt = col.astype(str).str.strip()
        ok = (pd.to_numeric(txt, errors="coerce").notna() | txt.isin(["", "nan", "NaN", "NA"])).to_numpy()
        bad = np.where(~ok)[0]
        if len(bad) and int(bad.max()) < min(max_rows, len(ok) - 1):  # numbers below a few text cells
            n_cols += 1
            starts.append(int(bad.max()) + 1)
        elif not len(bad):
            n_cols += 1
    if not starts:
        return 0
    k, n = Counter(starts).most_common(1)[0]
    return k if n * 2 > n_cols else 0


def read_feature_table(path: str | Path, id_column: str, header_rows: int = 1,
                       id_pattern: str | None = None, qc: list[dict[str, str]] | None = None) -> pd.DataFrame:
    """A user's own feature table (CSV/TSV, one row per patient) indexed by patient id.

    Args:
        id_column: the patient id column (``modelling.features_id_column``).
        header_rows: rows of column headings at the top (``modelling.features_header_rows``);
            with several, a column's name is its last non-empty heading (a table with a
            class row, a feature-name row and an id row names its columns by feature and id).
        id_pattern: regular expression (``modelling.features_id_pattern``) whose first group
            is the patient id within the id column's value, e.g. ``^(LUNG1-[0-9]+)`` for
            ``LUNG1-001_000000_GTV-1_mask``. Rows it does not match are left out (log line and,
            if ``qc`` is given, one QC row appended to it); none matching is an error.

    A leftover row-index column (``Unnamed: 0``, ``index``, or whole numbers 0..n-1 / 1..n in
    row order) is dropped with a log line: it is never a feature.

    Raises:
        ValueError: naming the actual problem: extra header rows (with the value of
            ``modelling.features_header_rows`` to set), a missing id column (with the table's
            columns), a pattern matching no id, duplicate ids.
    """
    import re

    import pandas as pd
    path = Path(path)
    sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","
    header_rows = int(header_rows)
    if header_rows < 1:
        raise ValueError("modelling.features_header_rows must be 1 or more")
    if header_rows == 1:
        df = pd.read_csv(path, sep=sep, dtype={id_column: str}, low_memory=False)
    else:
        raw = pd.read_csv(path, sep=sep, header=list(range(header_rows)), dtype=str, keep_default_na=False)
        names = []
        for levels in raw.columns:
            parts = [str(v).strip() for v in levels if not re.fullmatch(r"Unnamed: \d+_level_\d+", str(v))]
            parts = [v for v in parts if v]
            names.append(parts[-1] if parts else "")
        raw.columns = names
        df = pd.DataFrame({i: (raw.iloc[:, i] if names[i] == id_column else _numeric_or_text(raw.iloc[:, i]))
                           for i in range(raw.shape[1])})
        df.columns = names
    if id_column not in df.columns:
        n_extra, id_row = _header_diagnosis(df, id_column)
        if n_extra and (id_row is not None or header_rows == 1):
            where = f"; {id_column!r} is in header row {header_rows + id_row + 1}" if id_row is not None else ""
            raise ValueError(
                f"the feature table {path.name} has {header_rows + n_extra} header rows, not {header_rows}: "
                f"its first {n_extra} row(s) below the column names are not numbers{where}. "
                f"Set modelling.features_header_rows: {header_rows + n_extra} (a column is then named by its last "
                "non-empty heading).")
        raise ValueError(f"the feature table {path.name} has no patient id column {id_column!r}; its first "
                         f"columns are {[str(c) for c in df.columns[:8]]}. Set modelling.features_id_column to the "
                         "column holding the patient ids.")
    if header_rows == 1:
        n_extra = _numbers_below_text(df.drop(columns=[id_column]))
        if n_extra:
            raise ValueError(
                f"the feature table {path.name}: its first {n_extra} row(s) below the column names are not "
                f"numbers (more header rows?). Set modelling.features_header_rows: {1 + n_extra}, or remove them.")
    dup_names = sorted({str(c) for c in df.columns[df.columns.duplicated()]} - {""})
    if dup_names:
        raise ValueError(f"the feature table {path.name} has duplicate column names {dup_names[:5]}")
    ids = df[id_column].astype(str).str.strip()
    if id_pattern:
        rx = re.compile(id_pattern)
        found = ids.map(lambda v: (m.group(1) if m.groups() else m.group(0)) if (m := rx.search(v)) else None)
        bad = ids[found.isna()].tolist()
        if len(bad) == len(ids):
            raise ValueError(f"modelling.features_id_pattern {id_pattern!r} matches none of the ids of {path.name} "
                             f"(e.g. {ids.tolist()[:3]})")
        if bad:
            msg = (f"{len(bad)} row(s) of the feature table {path.name} do not match modelling.features_id_pattern "
                   f"and are not used (e.g. {', '.join(bad[:5])})")
            log.warning("%s", msg)
            if qc is not None:
                qc.append(qc_row("", "", "modelling", "warning", msg))
        ok = found.notna().to_numpy()
        log.info("feature table %s: patient ids taken from column %s by modelling.features_id_pattern "
                 "(e.g. %s -> %s)", path.name, id_column, ids[ok].iloc[0], found[ok].iloc[0])
        df = df.loc[ok].copy()
        ids = found[ok].astype(str)
    df[id_column] = ids
    if df[id_column].duplicated().any():
        d = df.loc[df[id_column].duplicated(), id_column][:5].tolist()
        raise ValueError(f"duplicate patient ids in {path.name}: {d}"
                         + (" (after modelling.features_id_pattern)" if id_pattern else ""))
    df = df.set_index(id_column)
    n = len(df)
    drop = []
    for c in df.columns:
        col = df[c]
        if re.fullmatch(_INDEX_NAME, str(c)):
            drop.append(c)
        elif pd.api.types.is_integer_dtype(col) and n > 2 and (
                (col.to_numpy() == range(n)).all() or (col.to_numpy() == range(1, n + 1)).all()):
            drop.append(c)
    if drop:
        log.info("feature table %s: column(s) %s dropped: a leftover row index (row numbers), not a feature",
                 path.name, [str(c) for c in drop])
        df = df.drop(columns=drop)
    return df


def candidate_columns(X: pd.DataFrame, pattern: str | None, allowed: Sequence[str] | None = None) -> list[str]:
    """Radiomic candidate columns: numeric, not ``diagnostics_*``, matching ``pattern``
    (regular expression, searched) and, if given, in ``allowed`` (the robust list)."""
    import re

    import pandas as pd

    rx = re.compile(pattern) if pattern else None
    out = []
    for c in X.columns:
        if str(c).startswith("diagnostics_") or c in ("patient_id", "scan_id", "session"):
            continue
        if allowed is not None and c not in allowed:
            continue
        if rx is not None and not rx.search(str(c)):
            continue
        if pd.api.types.is_numeric_dtype(X[c]):
            out.append(c)
    return out


def modelling(features: str | Path, clinical: str | Path, robust_txt: str | Path | None, cfg: Mapping[str, Any],
              seed: int, columns: Mapping[str, Any], out_dir: str | Path, threads: int = 1) -> None:
    """Validate the radiomics model and its baselines (:func:`radsurv.modelling.study.run_study`).

    Two starts, one config: from the pipeline's own ``features.tsv`` (one row per scan;
    the robust-feature list gives the candidates) and standardised ``clinical.tsv``; or,
    when ``modelling.features_table`` is set, from the user's feature table (one row per
    patient, id column ``modelling.features_id_column``) and the raw clinical table read
    with ``cohort.columns`` (``robust_txt`` is then ``None``).
    """
    import joblib
    import pandas as pd

    from radsurv.ingest.clinical import load_clinical
    from radsurv.modelling.signatures import validate_signature
    from radsurv.modelling.config import StudyConfig
    from radsurv.modelling.study import run_study

    sc = StudyConfig.from_dict(dict(cfg), seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    qc: list[dict[str, str]] = []
    if robust_txt is None:
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
        robust = [ln.strip() for ln in Path(robust_txt).read_text().splitlines() if ln.strip()]
        candidates = candidate_columns(X, sc.feature_pattern, robust)
    if not candidates:
        raise ValueError("no radiomic candidate feature (check the robust list / modelling.feature_pattern)")
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
    log.info("modelling: %d patients with features, %d candidate features, design %s, learner %s",
             len(X), len(candidates), sc.design, sc.learner)
    res = run_study(X, clin, candidates, sc, external=external, n_jobs=threads)
    qc += res.qc

    res.predictions.to_csv(out / MODEL_OUTPUTS["predictions"], sep="\t", index=False)
    res.predictions_all.to_csv(out / MODEL_OUTPUTS["predictions_all"], sep="\t", index=False)
    res.final_predictions.to_csv(out / MODEL_OUTPUTS["final_predictions"], sep="\t", index=False)
    res.performance.to_csv(out / MODEL_OUTPUTS["performance"], sep="\t", index=False)
    res.calibration.to_csv(out / MODEL_OUTPUTS["calibration"], sep="\t", index=False)
    res.tuning.to_csv(out / MODEL_OUTPUTS["tuning"], sep="\t", index=False)
    res.selection_frequency.to_csv(out / MODEL_OUTPUTS["selection_frequency"], sep="\t", index=False)
    res.coefficients.to_csv(out / MODEL_OUTPUTS["coefficients"], sep="\t", index=False)
    res.selection.to_csv(out / MODEL_OUTPUTS["selection"], sep="\t", index=False)
    (out / MODEL_OUTPUTS["metrics"]).write_text(
        json.dumps(_json_safe(res.metrics), indent=2, sort_keys=True, allow_nan=False))
    (out / MODEL_OUTPUTS["signature"]).write_text(
        json.dumps(_json_safe(res.final_description), indent=2, sort_keys=True, allow_nan=False))
    joblib.dump(res.final_models, out / MODEL_OUTPUTS["final_models"])

    pub = []
    Xv = X.loc[sorted(set(X.index) & set(clin["patient_id"].astype(str)))]
    for path in sc.published_signatures:
        try:
            pub.append(validate_signature(path, Xv, clin, res.metrics["horizons"], res.metrics["tau"],
                                          sc.bootstrap, sc.seed, res.metrics.get("volume_feature")))
        except ValueError as err:  # e.g. a feature the extraction did not compute
            log.warning("published signature %s not validated: %s", path, err)
            qc.append(qc_row("", "", "modelling", "warning", f"published signature {Path(path).name}: {err}"))
    cols = ["signature", "model", "metric", "estimate", "ci_low", "ci_high", "interval", "n_boot_valid", "n",
            "events", "n_not_scorable"]
    (pd.concat(pub, ignore_index=True) if pub else pd.DataFrame(columns=cols)).to_csv(
        out / MODEL_OUTPUTS["published"], sep="\t", index=False)
    write_qc(qc, out / MODEL_OUTPUTS["qc"])
    m = res.metrics
    log.info("held-out Harrell C %s (volume %s) on %d patients", m.get("c_index_test"), m.get("c_index_volume_test"),
             m.get("n_test"))


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


def km_figure(predictions_tsv: str | Path, final_tsv: str | Path, out_png: str | Path, subset: str,
              time_unit: str, model: str = "radiomics") -> None:
    """Kaplan-Meier curves of the risk groups of ``subset``.

    ``test``: held-out patients (cross-validated risk groups, or the validation
    cohort); ``train``: the development patients scored by the final model (apparent,
    optimistic; in the split design the same rows of ``predictions.tsv``).
    """
    import pandas as pd

    from radsurv.report.km import plot_km

    pred = pd.read_csv(predictions_tsv, sep="\t", dtype={"patient_id": str})
    if subset == "train" and not (pred["set"] == "train").any():
        fin = pd.read_csv(final_tsv, sep="\t", dtype={"patient_id": str})
        pred = fin[(fin["model"] == model) & (fin["set"] == "development")].assign(set="train")
        title = "Radiomic risk groups, development cohort: final model (apparent, optimistic)"
    else:
        title = "Radiomic risk groups: " + {"test": "held-out patients", "train": "training patients"}.get(subset, subset)
    if subset == "test" and "fold" in pred.columns and pred["fold"].nunique() > 1:
        # predictions.tsv holds repeat 1 only; the report's C-index averages every repeat
        title = ("Radiomic risk groups, cross-validated: out-of-fold groups of CV repeat 1 only "
                 "(the report's C-index is the mean over all repeats)")
    plot_km(pred, Path(out_png), subset=subset, title=title, time_unit=time_unit)


# ----------------------------------------------------------------------------- QC
def qc_table(parts: Sequence[str | Path], out_tsv: str | Path) -> None:
    """All stages' QC rows in one table."""
    frame = merge_qc(parts, out_tsv)
    log.info("QC table: %d rows (%d excluded)", len(frame), int((frame["status"] == "excluded").sum()))


__all__ = [
    "assembly", "clinical", "conversion", "demo_cohort", "discovery", "extraction", "km_figure",
    "modelling", "preprocessing", "qc_table", "qc_row", "robustness", "sheet_discovery", "robustness_discretisation",
    "robustness_discretise", "robustness_perturb", "robustness_perturbation", "robustness_test_retest",
    "volume_correlation",
]
