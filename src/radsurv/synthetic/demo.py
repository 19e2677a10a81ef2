"""Deterministic synthetic lung-CT cohort with a planted survival signal.

``radsurv-demo --out DIR`` (or :func:`generate_demo_cohort`) writes a small,
fully synthetic cohort that looks like a real DICOM export: CT series, an
RTSTRUCT per scan, a clinical table and, for some patients, a test-retest
pair. Everything derives from one integer seed; the same seed gives
byte-identical files (no wall clock, no random UIDs).

Files written under ``out_dir``
-------------------------------
``dicom/<PatientID>/<study n>/CT/<nnnn>.dcm``
    One CT slice per file (CT Image Storage, Explicit VR Little Endian).
``dicom/<PatientID>/<study n>/RTSTRUCT/0001.dcm``
    RT Structure Set with ROIs ``GTV-1`` (GTV), ``Lung-Left``, ``Lung-Right``
    (ORGAN) and ``Body`` (EXTERNAL); CLOSED_PLANAR polygons computed
    analytically from each structure's cross-section with the slice plane.
``clinical.csv``
    ``patient_id, os_months, os_event, age, stage, hpv_status`` (1 = death;
    ``hpv_status`` ``positive`` / ``negative``, the planted biology label).
``truth.csv``
    The planted per-patient quantities (see below).
``phi_values.json``
    Sorted JSON list of every fake PHI string planted in the DICOM headers.
``README.md``
    This documentation plus the realised cohort summary.

:func:`tps_export` copies such a folder into the layout a treatment-planning system
writes (``<PatientName>_<PatientID>/<StudyInstanceUID>/CT.<SOPInstanceUID>.dcm``,
``RS.<SOPInstanceUID>.dcm``): folders named like patients, files named by UIDs, for
the tests that prove no name, path or UID of an input file reaches an output.

Planted truth (the generative model)
------------------------------------
Patient ``i`` (1-based, PatientID ``RSD-<iii>``) draws all its quantities from
``numpy.random.default_rng([seed, i, stream])``, so a patient does not change
when the cohort size changes (only the cohort-level data-freeze date does).

Anatomy (patient coordinates, DICOM LPS, mm): an elliptical body (fat ring
-90 HU, soft tissue 40 HU with a smooth +/-8 HU structure), two ellipsoidal
lungs (-850 HU with smooth +/-25 HU structure), a vertebral body (cortex
650 HU, marrow 350 HU) and one tumour in the left or right lung.

Tumour: an ellipsoid rotated about the z axis with volume ``V`` where
``log V[ml] ~ N(log 12, 0.8)`` clipped to ``[log 1.4, log 60]`` (equivalent
sphere radius ~7-24 mm). ``z_vol = (log V - log 12) / 0.8``. Its
intensity is ``30 HU + h * T(u)`` where ``T`` is a sum of 10 Gaussian blobs
defined in the tumour's own frame ``u`` (mm relative to the tumour centre,
rotating with it), normalised to mean 0 and SD 1 inside the lesion; so the
texture is the SAME tissue in test and retest. The heterogeneity
``h = 30 HU * exp(0.4 * z_het)`` with ``z_het ~ N(0, 1)`` clipped to
``[-2.5, 2.5]`` is the SD (HU) of the noise-free tumour texture. Blob widths
are 22-35 % of the equivalent radius (at least 2.5 mm): coarse texture.

Image formation: every voxel value is evaluated analytically at the voxel
centre in patient mm; edges get partial volume from an error-function ramp
whose width is the voxel extent projected on the surface normal. Each scan
adds new white Gaussian noise with ``sigma ~ U(10, 35)`` HU, so fine,
noise-dominated texture features are not reproducible whereas volume, shape
and coarse heterogeneity are. Stored values are ``HU + 1024`` (uint16,
RescaleIntercept -1024).

Test-retest (the first ``n_retest`` patients): a second study 1-7 days after
the first, new UIDs and FrameOfReference, new noise, the whole patient
shifted rigidly by a vector of length U(0.5, 2.0) mm in a random direction
(sub-voxel and voxel parts), and the GTV re-contoured with each semi-axis
changed by +/-U(0.5, 1.0) mm. The first study's GTV is the true boundary.

Survival: linear predictor
``lp = 1.0 * z_vol + 0.8 * z_het + 0.2 * z_age`` with ``z_age = (age - 66) / 9``
(``age ~ N(66, 9)`` clipped to [40, 88]); the z-scores use the planted
population parameters, not cohort statistics. Event time is Weibull with
shape ``k = 1.4`` and baseline median 30 months (hazard
``h(t) = lambda k t^(k-1) exp(lp)``, ``lambda = ln 2 / 30^k``). Censoring:
loss to follow-up ``~ Exp(mean 200 months)`` and administrative censoring at
a data-freeze date. Accrual (the baseline StudyDate) is uniform over 36
months from 2020-01-06; the data freeze ``F`` (months after 2020-01-06) is
the cohort-level value on a 0.5-month grid in ``[max accrual + 12, 240]``
whose censored fraction is closest to 35 %, so cohorts of ~20 or more
patients always have 30-40 % censored. ``os_months`` is
``min(T, loss, F - accrual)`` rounded to 0.1 month (minimum 0.1).

Stage (``I``, ``II``, ``IIIA``, ``IIIB``) is ``z_vol + N(0, 0.5)`` cut at
-0.75, 0.25 and 1.0: correlated with volume, with no effect of its own.

Biology (an "HPV-like" binary status for classification and radiogenomics
demonstrations): ``hpv_latent = -z_het + N(0, 0.5)``, drawn from stream 3 of
the patient (so no other quantity changes), and ``hpv_status`` is
``positive`` when ``hpv_latent > 0`` (about half the patients): tied to the
tumour's texture (less heterogeneous tumours are positive), independent of
its volume. It has no effect on survival of its own (it shares ``z_het``).

PHI: the DICOM headers carry recognisable FAKE identifying values
(``PHINAME^ZQX001``, ``PHIADDR 001 Leak Street``, ``PHIACC00101`` ...)
so a de-identification test can prove that none of them leaks downstream.
They are listed in ``phi_values.json``. No real person is described.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from radsurv.synthetic.dicom_writer import (
    CT_IMAGE_STORAGE,
    MONOCHROME_16BIT,
    Contour,
    FileStamp,
    ImageSlice,
    Roi,
    StructureSetRefs,
    write_rtstruct,
    write_series,
)
from radsurv.synthetic.grain import GRAIN_CONTRAST_HU, TEXTURES, check_texture, grain_wavelength_mm
from radsurv.synthetic.render import render_ct, roi_polygons
from radsurv.synthetic.truth import (
    BETA,
    COHORT_START,
    DAYS_PER_MONTH,
    UID_ROOT,
    WEIBULL_MEDIAN_MONTHS,
    WEIBULL_SHAPE,
    DemoCohort,
    Geometry,
    PatientTruth,
    ScanTruth,
    demo_uid,
    ds_str,
    simulate_cohort,
)

# The module docstring is copied into every cohort's README.md (byte-identical cohorts: edit it
# only on purpose). The model it documents lives in radsurv.synthetic.truth (quantities) and
# radsurv.synthetic.render (voxels, polygons); the files are written by radsurv.synthetic.dicom_writer.
__all__ = ["TPS_PREFIX", "generate_demo_cohort", "main", "tps_export"]

log = logging.getLogger(__name__)

#: Every demo file names this implementation and declares Latin-1 text.
STAMP = FileStamp(implementation_class_uid=UID_ROOT + "7.0", implementation_version="RADSURV_DEMO_1",
                  character_set="ISO_IR 100")
#: Display colour and RT ROI interpreted type of each structure, in the order of :func:`roi_polygons`.
ROI_COLOURS = {"GTV-1": [255, 0, 0], "Lung-Left": [0, 128, 255], "Lung-Right": [0, 200, 200], "Body": [0, 255, 0]}
ROI_TYPES = {"GTV-1": "GTV", "Lung-Left": "ORGAN", "Lung-Right": "ORGAN", "Body": "EXTERNAL"}


# ---------------------------------------------------------------------------
# DICOM headers of a scan
# ---------------------------------------------------------------------------
def _phi(index: int, study: int = 1) -> dict[str, str]:
    """The fake PHI values of patient ``index`` (study-level for accession)."""
    n = f"{index:03d}"
    return {
        "PatientName": f"PHINAME^ZQX{n}",
        "PatientAddress": f"PHIADDR {n} Leak Street",
        "OtherPatientIDs": f"PHIOTHERID{index:05d}",
        "InstitutionName": f"PHIINST {n} General Hospital",
        "InstitutionAddress": f"PHIINSTADDR {n} Fake Avenue",
        "ReferringPhysicianName": f"PHIREF^DOC{n}",
        "OperatorsName": f"PHIOPER^TECH{n}",
        "PhysiciansOfRecord": f"PHIREC^PHYS{n}",
        "StationName": f"PHISTN{n}",
        "AccessionNumber": f"PHIACC{index:03d}{study:02d}",
    }


def _patient_study(p: PatientTruth, scan: ScanTruth, seed: int) -> dict[str, Any]:
    """Patient, study and equipment tags of every file of ``scan`` (with the fake PHI)."""
    phi = _phi(p.index, scan.study)
    return {
        "PatientName": phi["PatientName"],
        "PatientID": p.patient_id,
        "PatientBirthDate": p.birth_date,
        "PatientSex": "O",
        "OtherPatientIDs": phi["OtherPatientIDs"],
        "PatientAddress": phi["PatientAddress"],
        "StudyInstanceUID": demo_uid(seed, 1, p.index, scan.study),
        "StudyDate": scan.study_date.strftime("%Y%m%d"),
        "StudyTime": scan.study_time,
        "StudyID": f"{scan.study}",
        "StudyDescription": "CT THORAX" if scan.study == 1 else "CT THORAX RETEST",
        "AccessionNumber": phi["AccessionNumber"],
        "ReferringPhysicianName": phi["ReferringPhysicianName"],
        "PhysiciansOfRecord": phi["PhysiciansOfRecord"],
        "InstitutionName": phi["InstitutionName"],
        "InstitutionAddress": phi["InstitutionAddress"],
        "StationName": phi["StationName"],
        "OperatorsName": phi["OperatorsName"],
        "Manufacturer": "radsurv-demo",
        "ManufacturerModelName": "SynthCT 64",
        "SoftwareVersions": "radsurv-demo 1",
    }


def _ct_header(p: PatientTruth, scan: ScanTruth, geom: Geometry, seed: int) -> dict[str, Any]:
    """The tags shared by every slice of the scan's CT series."""
    d = scan.study_date.strftime("%Y%m%d")
    return {
        **_patient_study(p, scan, seed),
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "Modality": "CT",
        "SeriesInstanceUID": demo_uid(seed, 2, p.index, scan.study),
        "SeriesNumber": 2,
        "SeriesDescription": "THORAX 2.5 mm",
        "SeriesDate": d,
        "SeriesTime": scan.study_time,
        "AcquisitionDate": d,
        "AcquisitionTime": scan.study_time,
        "ContentDate": d,
        "ContentTime": scan.study_time,
        "FrameOfReferenceUID": demo_uid(seed, 4, p.index, scan.study),
        "PositionReferenceIndicator": "",
        "BodyPartExamined": "CHEST",
        "PatientPosition": "HFS",
        "ScanOptions": "HELICAL MODE",
        "KVP": "120",
        "ConvolutionKernel": "STANDARD",
        "SliceThickness": ds_str(geom.slice_thickness),
        "SpacingBetweenSlices": ds_str(geom.slice_thickness),
        "PixelSpacing": [ds_str(geom.dx), ds_str(geom.dx)],
        "ImageOrientationPatient": ["1", "0", "0", "0", "1", "0"],
        "Rows": geom.rows,
        "Columns": geom.cols,
        **MONOCHROME_16BIT,
        "RescaleIntercept": "-1024",
        "RescaleSlope": "1",
        "RescaleType": "HU",
        "WindowCenter": "-600",
        "WindowWidth": "1500",
    }


# ---------------------------------------------------------------------------
# DICOM writing
# ---------------------------------------------------------------------------
def _write_ct(series_dir: Path, p: PatientTruth, scan: ScanTruth, geom: Geometry,
              seed: int, scanners: int = 0, texture: str = "spread") -> list[str]:
    """Render the scan and write its CT series (``0001.dcm`` ...); the SOP instance UIDs, in slice order."""
    hu = render_ct(p, scan, geom, noise=True, seed=seed, texture=texture)
    header = _ct_header(p, scan, geom, seed)
    if scanners:  # multi-centre demo (radsurv.synthetic.multicentre): the patient's centre's scanner
        from radsurv.synthetic.multicentre import apply_scanner, scanner_of

        scanner = scanner_of(seed, p.index, scanners)
        hu = apply_scanner(hu, scanner, geom, seed, p.index, scan.study)
        header.update(scanner.tags())
    stored = np.clip(np.rint(hu + 1024.0), 0, 65535).astype("<u2")
    x0, y0 = geom.x()[0], geom.y()[0]
    zs = geom.z()
    uids = [demo_uid(seed, 5, p.index, scan.study, k + 1) for k in range(len(zs))]
    slices = (ImageSlice(f"{k + 1:04d}.dcm", uids[k], stored[k].tobytes(),
                         {"InstanceNumber": k + 1, "ImagePositionPatient": [ds_str(x0), ds_str(y0), ds_str(z)],
                          "SliceLocation": ds_str(z)})
              for k, z in enumerate(zs))
    write_series(series_dir, CT_IMAGE_STORAGE, header, slices, STAMP)
    return uids


def _rois(p: PatientTruth, scan: ScanTruth, geom: Geometry, ct_uids: list[str]) -> list[Roi]:
    """The scan's structures: each polygon at its slice's z, drawn on that slice's image."""
    zs = geom.z()
    rois = []
    for number, (name, items) in enumerate(roi_polygons(p, scan, geom).items(), start=1):
        contours = [Contour(np.column_stack([xy, np.full(len(xy), zs[k])]), ct_uids[k]) for k, xy in items]
        rois.append(Roi(number, name, contours, ROI_COLOURS[name], ROI_TYPES[name]))
    return rois


def _write_rtstruct(path: Path, p: PatientTruth, scan: ScanTruth, geom: Geometry,
                    seed: int, ct_uids: list[str]) -> None:
    """Write the scan's RTSTRUCT (GTV-1, lungs and body) referring to its CT images ``ct_uids``."""
    d = scan.study_date.strftime("%Y%m%d")
    tags = {
        **_patient_study(p, scan, seed),
        "Modality": "RTSTRUCT",
        "SeriesInstanceUID": demo_uid(seed, 3, p.index, scan.study),
        "SeriesNumber": 3,
        "SeriesDescription": "RTSTRUCT",
        "SeriesDate": d,
        "SeriesTime": scan.study_time,
        "InstanceNumber": 1,
        "StructureSetLabel": "DEMO_GTV",
        "StructureSetName": "DEMO_GTV",
        "StructureSetDate": d,
        "StructureSetTime": scan.study_time,
    }
    refs = StructureSetRefs(frame_uid=demo_uid(seed, 4, p.index, scan.study),
                            study_uid=demo_uid(seed, 1, p.index, scan.study),
                            series_uid=demo_uid(seed, 2, p.index, scan.study), image_uids=ct_uids)
    write_rtstruct(path, demo_uid(seed, 6, p.index, scan.study, 1), tags, refs, _rois(p, scan, geom, ct_uids),
                   fmt=ds_str, stamp=STAMP)


def _write_scan(job: tuple[Any, Any, Geometry, int, Path, int, str]) -> int:
    """Write one scan's CT series and RTSTRUCT; the number of files written."""
    p, scan, geometry, seed, dicom_dir, scanners, texture = job
    log.info("demo: writing %s scan %d", p.patient_id, scan.study)
    base = dicom_dir / p.patient_id / str(scan.study)
    uids = _write_ct(base / "CT", p, scan, geometry, seed, scanners, texture)
    _write_rtstruct(base / "RTSTRUCT" / "0001.dcm", p, scan, geometry, seed, uids)
    return len(uids) + 1


# ---------------------------------------------------------------------------
# cohort writer
# ---------------------------------------------------------------------------
def _readme(c: DemoCohort, n_retest: int, texture: str = "spread") -> str:
    doc = __doc__ or ""
    if texture == "grain":
        from radsurv.synthetic import grain

        title = "Tumour texture of this cohort (texture = grain, radsurv.synthetic.grain)"
        doc += f"\n{title}\n{'-' * len(title)}\n{grain.__doc__ or ''}"
    freeze = COHORT_START + timedelta(days=int(round(c.data_freeze_months * DAYS_PER_MONTH)))
    g = c.geometry
    return (
        "# radsurv synthetic demo cohort\n\n"
        "ALL DATA HERE ARE SYNTHETIC. The identifying DICOM values (names, addresses, "
        "birth dates, accession numbers, institutions, ...) are FAKE markers listed in "
        "`phi_values.json`; they exist so that tests can prove no PHI leaks.\n\n"
        "## This cohort\n\n"
        f"- seed: {c.seed}\n"
        f"- patients: {len(c.patients)}; test-retest pairs: {n_retest}\n"
        f"- grid: {g.rows} x {g.cols} pixels of {g.dx} mm, {g.n_slices} slices of {g.dz} mm\n"
        f"- censored: {int((c.clinical['os_event'] == 0).sum())} of {len(c.clinical)} "
        f"({c.censored_fraction:.1%})\n"
        f"- data freeze: {c.data_freeze_months:.1f} months after {COHORT_START.isoformat()} "
        f"({freeze.isoformat()})\n"
        f"- coefficients (log-hazard per SD): {json.dumps(BETA)}\n"
        f"- Weibull shape {WEIBULL_SHAPE}, baseline median {WEIBULL_MEDIAN_MONTHS} months\n\n"
        "`truth.csv` holds every planted per-patient quantity: volume_ml, heterogeneity_hu, "
        "their z-scores, linear_predictor, latent event/censoring times, tumour geometry, "
        "per scan the noise sigma, rigid shift and contoured GTV volume, and the planted biology "
        "label (hpv_latent, hpv_status).\n\n"
        "## Generative model (from `radsurv.synthetic.demo`)\n\n```text\n" + doc.strip() + "\n```\n"
    )




def _write_tables(out_dir: Path, cohort: DemoCohort, n_retest: int, texture: str = "spread") -> dict[str, Path]:
    """Write ``clinical.csv``, ``truth.csv``, ``phi_values.json`` and ``README.md``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"clinical_csv": out_dir / "clinical.csv", "truth_csv": out_dir / "truth.csv",
             "phi_values": out_dir / "phi_values.json", "readme": out_dir / "README.md"}
    cohort.clinical.to_csv(paths["clinical_csv"], index=False, lineterminator="\n")
    cohort.truth.to_csv(paths["truth_csv"], index=False, lineterminator="\n")
    phi: set[str] = set()
    for p in cohort.patients:
        phi.add(p.birth_date)
        for scan in p.scans:
            phi.update(_phi(p.index, scan.study).values())
    paths["phi_values"].write_text(json.dumps(sorted(phi), indent=1) + "\n", encoding="utf-8")
    paths["readme"].write_text(_readme(cohort, n_retest, texture), encoding="utf-8")
    return paths


def generate_demo_cohort(out_dir: Path, n_patients: int = 40, n_retest: int = 15,
                         seed: int = 42, workers: int = 1, scanners: int = 0, texture: str = "spread",
                         **geometry: Any) -> dict[str, Any]:
    """Write the synthetic cohort under ``out_dir`` and return a summary.

    ``geometry`` keywords are the fields of :class:`~radsurv.synthetic.truth.Geometry` (``rows``,
    ``cols``, ``pixel_spacing``, ``n_slices``, ``slice_thickness``, ``anatomy_scale``). The
    summary holds the written paths, counts and the censored fraction.
    ``workers`` > 1 writes the scans in that many processes (every scan is rendered
    from the seed alone, so the files are the same for any ``workers``).
    ``scanners`` (2 or 3): the multi-centre demo of :mod:`radsurv.synthetic.multicentre` (a
    ``centre`` column in ``clinical.csv``); 0: the single-centre demo, unchanged.
    ``texture``: ``spread`` (default: the heterogeneity score sets the SD of the tumour's texture)
    or ``grain`` (it sets only the spatial scale of a two-phase texture: :mod:`radsurv.synthetic.grain`;
    ``truth.csv`` then has the planted ``grain_mm`` and the texture's SD as ``heterogeneity_hu``).
    """
    out_dir = Path(out_dir)
    check_texture(texture)  # before anything is written
    cohort = simulate_cohort(n_patients, n_retest, seed, **geometry)
    if texture == "grain":
        cohort.truth["heterogeneity_hu"] = GRAIN_CONTRAST_HU
        cohort.truth.insert(cohort.truth.columns.get_loc("z_heterogeneity") + 1, "grain_mm",
                            [round(grain_wavelength_mm(p.z_heterogeneity), 4) for p in cohort.patients])
    if scanners:
        from radsurv.synthetic.multicentre import centre_column

        cohort.clinical["centre"] = centre_column(seed, [p.index for p in cohort.patients], scanners)
    dicom_dir = out_dir / "dicom"
    jobs = [(p, scan, cohort.geometry, seed, dicom_dir, scanners, texture)
            for p in cohort.patients for scan in p.scans]
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            n_files = sum(pool.map(_write_scan, jobs))
    else:
        n_files = sum(map(_write_scan, jobs))
    paths = _write_tables(out_dir, cohort, n_retest, texture)
    return {
        "out_dir": out_dir,
        "dicom_dir": dicom_dir,
        **paths,
        "seed": seed,
        "n_patients": n_patients,
        "n_retest": n_retest,
        "n_scans": sum(len(p.scans) for p in cohort.patients),
        "n_dicom_files": n_files,
        "n_events": int(cohort.clinical["os_event"].sum()),
        "censored_fraction": cohort.censored_fraction,
        "data_freeze_months": cohort.data_freeze_months,
    }


# ---------------------------------------------------------------------------
# a planning-system-style copy
# ---------------------------------------------------------------------------
#: File-name prefixes a treatment-planning system writes per DICOM modality.
TPS_PREFIX = {"CT": "CT", "MR": "MR", "PT": "PT", "RTSTRUCT": "RS", "SEG": "SEG", "RTDOSE": "RD", "RTPLAN": "RP"}


def tps_export(dicom_dir: Path, out_dir: Path, truncate: int = 0, notes: bool = True) -> dict[str, Any]:
    """Copy the DICOM files under ``dicom_dir`` into a planning-system-style export under ``out_dir``.

    Each file goes to ``<PatientName>_<PatientID>/<StudyInstanceUID>/<prefix>.<SOPInstanceUID>.dcm``
    (prefix ``CT``, ``RS``, ... per :data:`TPS_PREFIX`), so that folder names hold the
    patient's name and file names hold UIDs, as in real exports. ``truncate`` > 0 cuts
    the last CT file of the last ``truncate`` patients to half its size (a file-level fault
    whose QC reason must name the file), and ``notes`` adds a non-DICOM
    ``<PatientName>_<PatientID>/<PatientName> notes.txt`` per patient. Returns the
    folder names written and the paths of the truncated files.
    """
    import shutil

    import pydicom

    dicom_dir, out_dir = Path(dicom_dir), Path(out_dir)
    folders: dict[str, str] = {}
    last_ct: dict[str, Path] = {}
    for src in sorted(dicom_dir.rglob("*.dcm")):
        ds = pydicom.dcmread(src, stop_before_pixels=True)
        pid = str(ds.PatientID)
        folder = f"{ds.PatientName}_{pid}"
        folders[pid] = folder
        modality = str(ds.Modality)
        name = f"{TPS_PREFIX.get(modality, modality)}.{ds.SOPInstanceUID}.dcm"
        dst = out_dir / folder / str(ds.StudyInstanceUID) / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        if modality == "CT":
            last_ct[pid] = max(last_ct.get(pid, dst), dst)
    truncated = []
    for pid in sorted(last_ct)[len(last_ct) - truncate:] if truncate > 0 else []:
        data = last_ct[pid].read_bytes()
        last_ct[pid].write_bytes(data[: len(data) // 2])
        truncated.append(last_ct[pid])
    if notes:
        for _pid, folder in sorted(folders.items()):
            (out_dir / folder / f"{folder.split('_')[0]} notes.txt").write_text(f"planning notes of {folder}\n")
    return {"dicom_dir": out_dir, "folders": sorted(folders.values()), "truncated": truncated}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``radsurv-demo --out DIR [--patients N --retest M --seed S]``."""
    ap = argparse.ArgumentParser(prog="radsurv-demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--retest", type=int, default=15)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--texture", choices=TEXTURES, default="spread",
                    help="where the heterogeneity score is planted (radsurv.synthetic.grain)")
    for f in fields(Geometry):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    geom = {f.name: getattr(args, f.name) for f in fields(Geometry)}
    try:
        summary = generate_demo_cohort(args.out, args.patients, args.retest, args.seed,
                                       texture=args.texture, **geom)
    except ValueError as e:
        ap.error(str(e))
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in summary.items()},
                     indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
