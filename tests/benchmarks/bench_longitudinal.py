"""Delta radiomics (issue #18) benchmark and end-to-end check of the library on the generated cohort.

Modes:

* ``timing`` (default): registration (rigid + demons contour propagation) and delta stage time per
  scan on a 512 x 512 x 100 CT pair (the synthetic phantom upsampled; 2 threads), printed.
* ``study``: the whole chain on a generated longitudinal cohort (planning + retest + fx10):
  features with radsurv.features, RC from the retest pairs, gated deltas, landmark at fx10, and
  baseline / delta / baseline + delta / relative volume change compared by cross-validated C-index
  with paired bootstrap CIs of the difference to baseline-only. Prints the tables.
* ``workflow``: the measured numbers of a finished ``snakemake longitudinal`` run (Dice per ROI and
  time point, Jacobian range, C-index comparison, seconds per scan job from the benchmark files).
* ``dice``: propagated masks vs the generator's true contours at every on-treatment time point
  (median and worst Dice, Jacobian range) on a small cohort.

    .venv/bin/python tests/benchmarks/bench_longitudinal.py timing
    .venv/bin/python tests/benchmarks/bench_longitudinal.py study --patients 60
    .venv/bin/python tests/benchmarks/bench_longitudinal.py dice --patients 6 [--margin-mm 30]
    .venv/bin/python tests/benchmarks/bench_longitudinal.py dice --patients 40 --retest 8 --seed 42 \\
        --threads 1 --timepoints fx20 post --jobs 2 --out dice.tsv   # the demo's late time points
    .venv/bin/python tests/benchmarks/bench_longitudinal.py workflow --results results/longitudinal
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radsurv.features.extract import pyradiomics_params
from radsurv.longitudinal.cohort import cohort_features, delta_study
from radsurv.longitudinal.delta import DeltaSettings, delta_table, rc_from_retest
from radsurv.longitudinal.propagation import PropagationSettings, propagate_mask
from radsurv.longitudinal.rois import RoiSpec, rois_from_config
from radsurv.longitudinal.study import StudySettings
from radsurv.longitudinal.timepoints import TimePointSettings
from radsurv.schema import default
from radsurv.synthetic.longitudinal import LongGeometry, render_scan, simulate_longitudinal, write_longitudinal_cohort

WINDOWS = {"planning": {"days": [0, 0]}, "fx5": {"days": [5, 9]}, "fx10": {"days": [12, 16]},
           "fx15": {"days": [19, 23]}, "fx20": {"days": [26, 30]}, "post": {"days": [42, 56]}}
PARAMS = pyradiomics_params({"bin_width": 25, "feature_classes": ["firstorder", "shape", "glcm"]})


def _resample(img: sitk.Image, size: tuple[int, int, int], interp: int) -> sitk.Image:
    sp = [img.GetSpacing()[i] * img.GetSize()[i] / size[i] for i in range(3)]
    ref = sitk.Image(size, img.GetPixelID())
    ref.SetSpacing(sp)
    ref.SetOrigin([img.GetOrigin()[i] - img.GetSpacing()[i] / 2 + sp[i] / 2 for i in range(3)])
    return sitk.Resample(img, ref, sitk.Transform(), interp, -1000.0 if interp != sitk.sitkNearestNeighbor else 0)


def timing(threads: int, rigid_only: bool = True) -> None:
    g = LongGeometry(size=(128, 128, 40), spacing=(1.25, 1.25, 2.5))
    p = simulate_longitudinal(1, 0, seed=7)[0]
    b_img, b_m = render_scan(p, p.scans[0], g)
    t_img, t_m = render_scan(p, p.scans[2], g)
    big = (512, 512, 100)
    b_img, t_img = _resample(b_img, big, sitk.sitkLinear), _resample(t_img, big, sitk.sitkLinear)
    b_mask = _resample(b_m["GTV"], big, sitk.sitkNearestNeighbor)
    t_mask = _resample(t_m["GTV"], big, sitk.sitkNearestNeighbor)
    print(f"CT pair {b_img.GetSize()} voxels, spacing {tuple(round(s, 3) for s in b_img.GetSpacing())} mm, "
          f"GTV {int(sitk.GetArrayViewFromImage(b_mask).sum())} voxels, threads {threads}")
    gtv = next(r for r in rois_from_config(default("longitudinal", "rois")) if r.tumour)
    for deformable in (False, True) if rigid_only else (True,):  # the default config's GTV settings
        s = replace(PropagationSettings(threads=threads, deformable=deformable), **dict(gtv.propagation))
        t0 = time.perf_counter()
        r = propagate_mask(b_img, b_mask, t_img, s, own_mask=t_mask)
        print(f"propagation ({'rigid + demons' if deformable else 'rigid only'}): {time.perf_counter() - t0:.2f} s "
              f"per scan, Dice {r.dice:.3f}, Jacobian [{r.jacobian_min:.2f}, {r.jacobian_max:.2f}]")
    # delta stage: a feature table of 100 patients x 6 time points x 3 ROIs x 300 features
    rng = np.random.default_rng(0)
    cols = [f"roi{k}__f{j}" for k in range(3) for j in range(300)]
    rows = [{"patient_id": f"P{i}", "timepoint": f"t{t}", "timepoint_index": t, "days": 7 * t}
            for i in range(100) for t in range(6)]
    feats = pd.concat([pd.DataFrame(rows), pd.DataFrame(rng.normal(100, 10, (600, len(cols))), columns=cols)], axis=1)
    t0 = time.perf_counter()
    rc = rc_from_retest(feats.iloc[:50][cols], feats.iloc[:50][cols] + rng.normal(0, 1, (50, len(cols))))
    delta_table(feats, rc, DeltaSettings())
    dt = time.perf_counter() - t0
    print(f"delta stage (RC + deltas, 100 patients x 6 time points x 900 features): {dt:.2f} s, "
          f"{dt / 600 * 1000:.1f} ms per scan")


def _dice_patient(args: tuple) -> list[dict]:
    """Every requested propagation of one patient (a worker of :func:`dice_check`)."""
    p, per_roi, timepoints = args
    g = LongGeometry()
    b_img, b_m = render_scan(p, p.scans[0], g)
    rows = []
    for s in p.scans[1:]:
        if s.role != "timepoint" or (timepoints and s.timepoint not in timepoints):
            continue
        img, m = render_scan(p, s, g)
        for roi in ("GTV", "Parotid_L", "Parotid_R"):
            r = propagate_mask(b_img, b_m[roi], img, per_roi[roi], own_mask=m[roi])
            rows.append({"patient": p.patient_id, "scan": s.scan_id, "timepoint": s.timepoint, "roi": roi,
                         "dice": r.dice, "needed": roi not in s.own_contours, "jmin": r.jacobian_min,
                         "jmax": r.jacobian_max, "fold": r.jacobian_folding_fraction,
                         "translation_mm": ",".join(f"{v:.2f}" for v in r.rigid_translation_mm),
                         "rotation_deg": r.rigid_rotation_deg, "bounded": r.rigid_bounded,
                         "true_shift_mm": ",".join(f"{b - a:.2f}" for a, b in zip(p.scans[0].shift_mm, s.shift_mm,
                                                                                    strict=True)),
                         "seconds": r.seconds})
    return rows


def dice_check(n: int, threads: int, retest: int = 0, seed: int = 7, timepoints: tuple[str, ...] = (),
               jobs: int = 1, out: Path | None = None, **settings: float) -> None:
    """``settings``: PropagationSettings overrides (e.g. margin_mm, demons_smoothing_voxels), applied
    over the settings the default config gives each ROI (block defaults + the ROI's own overrides).
    ``retest`` / ``seed``: the cohort (the workflow's demo is 40 patients, 8 retest, seed 42: the
    example config's ``seed``); ``timepoints``: only these (all on-treatment ones when empty);
    ``jobs``: patients in parallel processes; ``out``: every propagation's row as TSV."""
    from concurrent.futures import ProcessPoolExecutor

    specs = {r.name: r for r in rois_from_config(default("longitudinal", "rois"))}
    per_roi = {roi: replace(PropagationSettings(threads=threads),
                            **{**dict(specs[roi.lower()].propagation), **settings})
               for roi in ("GTV", "Parotid_L", "Parotid_R")}
    work = [(p, per_roi, timepoints) for p in simulate_longitudinal(n, retest, seed=seed)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            parts = list(ex.map(_dice_patient, work))
    else:
        parts = [_dice_patient(w) for w in work]
    d = pd.DataFrame([r for part in parts for r in part])
    if out is not None:
        d.to_csv(out, sep="\t", index=False)
    print(d.groupby(["roi", "timepoint"])["dice"].agg(["median", "min", "count"]).round(3).to_string())
    print(d.groupby("roi")["dice"].agg(["median", "min", "count"]).round(3).to_string())
    for what, sub in (("all", d), ("where the contour is missing", d[d["needed"]]),
                      ("up to fx20", d[d["timepoint"] != "post"])):
        if len(sub):
            print(f"Dice {what}: median {sub['dice'].median():.3f}, worst {sub['dice'].min():.3f}, n {len(sub)}")
    print("worst 8:")
    print(d.nsmallest(8, "dice")[["patient", "timepoint", "roi", "dice", "jmin", "translation_mm", "rotation_deg",
                                   "bounded", "true_shift_mm"]].round(3).to_string(index=False))
    print("rigid fits rotating beyond rigid_max_rotation_deg (translation used), per ROI:",
          d.groupby("roi")["bounded"].sum().to_dict())
    print(f"Jacobian determinant: min {d['jmin'].min():.2f}, max {d['jmax'].max():.2f}; "
          f"{d['seconds'].mean():.1f} s per propagation")


def study(n: int, n_retest: int, threads: int, boot: int) -> None:
    tp = TimePointSettings.from_config({"timepoints": {k: WINDOWS[k] for k in ("planning", "fx10")},
                                        "retest_max_days": 3})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_longitudinal_cohort(tmp, n, n_retest, seed=7, only=("planning", "fx10"))
        t1 = time.perf_counter()
        rois = [RoiSpec("gtv", "GTV", tumour=True)]
        cf = cohort_features(tmp, tp, rois, PARAMS, PropagationSettings(threads=threads))
        t2 = time.perf_counter()
        clinical = pd.read_csv(Path(tmp) / "clinical.tsv", sep="\t", dtype={"patient_id": str})
        res = delta_study(cf, clinical, "fx10", DeltaSettings(), StudySettings(bootstrap=boot))
        t3 = time.perf_counter()
    print(f"{n} patients ({n_retest} retest): write {t1 - t0:.0f} s, features {t2 - t1:.0f} s, study {t3 - t2:.0f} s")
    print(f"QC rows: {len(cf.qc)} (time points / ROIs / features), landmark excluded {len(res.qc)}")
    sel = res.selection
    print(f"delta features kept {int(sel['kept'].sum())} of {len(sel)} (RC from {len(res.rc)} features)")
    print(res.performance.round(3).to_string(index=False))


def workflow_results(results: Path) -> None:
    """The measured numbers of a finished ``snakemake longitudinal`` run (``results/longitudinal``):
    propagated-mask Dice against the time points' own contours (the generator's true contours in the
    demo) per ROI, the Jacobian range, and the C-index comparison with paired bootstrap CIs."""
    from radsurv.report.longitudinal import propagation_quality

    prop = pd.read_csv(results / "propagation.tsv", sep="\t")
    print(propagation_quality(prop).round(3).to_string(index=False))
    per_tp = prop.groupby(["roi", "timepoint"])["dice"].agg(["median", "min", "count"])
    print(per_tp.round(3).unstack("roi").to_string())
    d = prop["dice"].dropna()
    print(f"Dice all ROIs: median {d.median():.3f}, worst {d.min():.3f}, n {len(d)}")
    perf = pd.read_csv(results / "performance.tsv", sep="\t")
    print(perf[perf["metric"].isin(["harrell_c", "delta_harrell_c_vs_baseline"])].round(3).to_string(index=False))
    bench = results.parent / "benchmarks" / "longitudinal_scan_features"
    if bench.is_dir():
        secs = [pd.read_csv(f, sep="\t")["s"].iloc[0] for f in sorted(bench.glob("*.tsv"))]
        print(f"longitudinal_scan_features: {np.mean(secs):.1f} s per scan (mean of {len(secs)} jobs)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="timing", choices=["timing", "study", "dice", "workflow"])
    ap.add_argument("--results", type=Path, default=Path("results/longitudinal"), help="workflow: the run's folder")
    ap.add_argument("--margin-mm", type=float, default=None, help="dice: propagation margin_mm")
    ap.add_argument("--demons-smoothing", type=float, default=None, help="dice: demons_smoothing_voxels")
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--retest", type=int, default=None, help="retest patients (study: 12, dice: 0)")
    ap.add_argument("--seed", type=int, default=7, help="dice: the cohort's seed (the demo config's is 42)")
    ap.add_argument("--timepoints", nargs="*", default=[], help="dice: only these time points")
    ap.add_argument("--no-rigid-only", action="store_true", help="timing: skip the rigid-only propagation")
    ap.add_argument("--jobs", type=int, default=1, help="dice: patients in parallel processes")
    ap.add_argument("--out", type=Path, default=None, help="dice: write every propagation's row here (TSV)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=500)
    a = ap.parse_args()
    if a.mode == "timing":
        timing(a.threads, not a.no_rigid_only)
    elif a.mode == "dice":
        over = {k: v for k, v in (("margin_mm", a.margin_mm), ("demons_smoothing_voxels", a.demons_smoothing))
                if v is not None}
        dice_check(a.patients, a.threads, a.retest or 0, a.seed, tuple(a.timepoints), a.jobs, a.out, **over)
    elif a.mode == "workflow":
        workflow_results(a.results)
    else:
        study(a.patients, 12 if a.retest is None else a.retest, a.threads, a.bootstrap)


if __name__ == "__main__":
    main()
