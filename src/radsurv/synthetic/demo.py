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
    ``patient_id, os_months, os_event, age, stage`` (1 = death).
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

PHI: the DICOM headers carry recognisable FAKE identifying values
(``PHINAME^ZQX001``, ``PHIADDR 001 Leak Street``, ``PHIACC00101`` ...)
so a de-identification test can prove that none of them leaks downstream.
They are listed in ``phi_values.json``. No real person is described.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian
from scipy.special import erfc

__all__ = [
    "CT_IMAGE_STORAGE",
    "RT_STRUCTURE_SET_STORAGE",
    "DemoCohort",
    "Geometry",
    "PatientTruth",
    "ScanTruth",
    "generate_demo_cohort",
    "main",
    "render_ct",
    "roi_polygons",
    "simulate_cohort",
]

log = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"
#: pydicom's registered root; the suffix is structured (seed.kind.patient.scan.n)
UID_ROOT = "1.2.826.0.1.3680043.8.498."
IMPLEMENTATION_CLASS_UID = UID_ROOT + "7.0"
IMPLEMENTATION_VERSION = "RADSURV_DEMO_1"
CONTOUR_DATA_TAG = Tag(0x3006, 0x0050)

# --- planted model constants (documented in the module docstring) ----------
LOGVOL_MEAN = math.log(12.0)
LOGVOL_SD = 0.8
LOGVOL_RANGE = (math.log(1.4), math.log(60.0))
HET_BASE_HU = 30.0
HET_LOG_SD = 0.4
AGE_MEAN, AGE_SD = 66.0, 9.0
BETA = {"z_log_volume": 1.0, "z_heterogeneity": 0.8, "z_age": 0.2}
WEIBULL_SHAPE = 1.4
WEIBULL_MEDIAN_MONTHS = 30.0
LOSS_MEAN_MONTHS = 200.0
ACCRUAL_MONTHS = 36.0
TARGET_CENSORED = 0.35
NOISE_SIGMA_RANGE = (10.0, 35.0)
SHIFT_RANGE_MM = (0.5, 2.0)
RECONTOUR_RANGE_MM = (0.5, 1.0)
COHORT_START = date(2020, 1, 6)
DAYS_PER_MONTH = 30.4375
N_BLOBS = 10
TUMOUR_BASE_HU = 30.0
STAGE_CUTS = (-0.75, 0.25, 1.0)
STAGES = ("I", "II", "IIIA", "IIIB")

# anatomy (mm)
BODY_SEMI = (95.0, 75.0)
FAT_MM = 8.0
LUNG_CENTRE = (45.0, -5.0)
LUNG_SEMI = (34.0, 48.0, 110.0)
SPINE_CENTRE = (0.0, 52.0)
SPINE_RADIUS = 12.0
CORTEX_MM = 2.5

HU_AIR, HU_FAT, HU_SOFT, HU_LUNG = -1000.0, -90.0, 40.0, -850.0
HU_CORTEX, HU_MARROW = 650.0, 350.0
N_VERTICES = 64


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Geometry:
    """The CT grid: ``rows x cols`` pixels of ``pixel_spacing`` mm, ``n_slices``
    contiguous slices of ``slice_thickness`` mm, centred on the origin.

    ``anatomy_scale`` scales the phantom's in-plane anatomy (body, lungs, spine,
    fat and cortex thickness) and every tumour's linear size; tumour volumes scale
    by its cube, the planted z-scores and outcomes do not change. At 1 the body is
    190 x 150 mm and the median GTV 12 ml (small, fast demo); 1.45 gives an adult
    thorax (276 x 218 mm) and Lung1's median GTV (~37 ml vs 39 ml), for benchmarks.
    """

    rows: int = 128
    cols: int = 128
    pixel_spacing: float = 1.6
    n_slices: int = 44
    slice_thickness: float = 2.5
    anatomy_scale: float = 1.0

    def __post_init__(self) -> None:
        fov_x = self.cols * self.pixel_spacing
        fov_y = self.rows * self.pixel_spacing
        z_ext = self.n_slices * self.slice_thickness
        if not 0.5 <= self.anatomy_scale <= 2.0:
            raise ValueError(f"anatomy_scale {self.anatomy_scale} is outside 0.5-2")
        bx, by = (2 * b * self.anatomy_scale for b in BODY_SEMI)
        if fov_x < bx + 4 or fov_y < by + 4:
            raise ValueError(
                f"field of view {fov_x:.0f} x {fov_y:.0f} mm is smaller than the "
                f"phantom body ({bx:.0f} x {by:.0f} mm)"
            )
        if z_ext < 80.0:
            raise ValueError(f"z extent {z_ext:.0f} mm is below the 80 mm minimum")

    @property
    def dx(self) -> float:
        return float(_ds(self.pixel_spacing))

    @property
    def dz(self) -> float:
        return float(_ds(self.slice_thickness))

    def x(self) -> np.ndarray:
        """Column-centre x coordinates (mm)."""
        x0 = -(self.cols - 1) / 2.0 * self.dx
        return np.array([float(_ds(x0 + c * self.dx)) for c in range(self.cols)])

    def y(self) -> np.ndarray:
        """Row-centre y coordinates (mm)."""
        y0 = -(self.rows - 1) / 2.0 * self.dx
        return np.array([float(_ds(y0 + r * self.dx)) for r in range(self.rows)])

    def z(self) -> np.ndarray:
        """Slice-centre z coordinates (mm), exactly as written to the headers."""
        z0 = -(self.n_slices - 1) / 2.0 * self.dz
        return np.array([float(_ds(z0 + k * self.dz)) for k in range(self.n_slices)])


@dataclass(frozen=True)
class ScanTruth:
    """One CT scan (study) of a patient."""

    study: int  # 1 = baseline, 2 = retest
    study_date: date
    study_time: str
    noise_sigma_hu: float
    shift_mm: tuple[float, float, float]
    gtv_semi_axes_mm: tuple[float, float, float]  # as contoured on this scan

    @property
    def gtv_contour_volume_ml(self) -> float:
        a, b, c = self.gtv_semi_axes_mm
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0


@dataclass(frozen=True)
class PatientTruth:
    """All planted quantities of one patient (noise-free, patient mm frame)."""

    index: int
    patient_id: str
    age: int
    stage: str
    volume_ml: float
    z_log_volume: float
    heterogeneity_hu: float
    z_heterogeneity: float
    z_age: float
    linear_predictor: float
    event_time_months: float
    loss_time_months: float
    accrual_months: float
    tumour_side: str  # "left" | "right" (patient side)
    tumour_centre_mm: tuple[float, float, float]
    tumour_semi_axes_mm: tuple[float, float, float]
    tumour_rotation_rad: float
    blob_centres_mm: np.ndarray  # (N_BLOBS, 3) in the tumour frame
    blob_sigmas_mm: np.ndarray
    blob_weights: np.ndarray
    texture_mean: float
    texture_sd: float
    body_semi_mm: tuple[float, float]
    lung_semi_mm: tuple[float, float, float]
    lung_z_mm: float
    tissue_blobs: np.ndarray  # (k, 5): x, y, z, sigma, amplitude (HU)
    lung_blobs: np.ndarray
    birth_date: str
    scans: tuple[ScanTruth, ...] = field(default_factory=tuple)


@dataclass
class DemoCohort:
    """The simulated cohort without images: truth, clinical table, censoring."""

    seed: int
    geometry: Geometry
    patients: list[PatientTruth]
    clinical: pd.DataFrame
    truth: pd.DataFrame
    data_freeze_months: float

    @property
    def censored_fraction(self) -> float:
        return float(1.0 - self.clinical["os_event"].mean())


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def _ds(v: float) -> str:
    """A decimal string (DS) of at most 16 characters, 4 decimals."""
    s = f"{round(float(v), 4):.4f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _raw_ds(values: Iterable[str]) -> RawDataElement:
    """ContourData as a ready-encoded element (building ~10^4 DS objects is slow)."""
    raw = "\\".join(values).encode("ascii")
    if len(raw) % 2:
        raw += b" "
    return RawDataElement(CONTOUR_DATA_TAG, "DS", len(raw), raw, 0, False, True)


def _uid(seed: int, kind: int, patient: int, scan: int = 0, n: int = 0) -> str:
    uid = f"{UID_ROOT}{seed}.{kind}.{patient}.{scan}.{n}"
    if len(uid) > 64:
        raise ValueError("seed too large for a 64-character UID")
    return uid


def _rng(seed: int, patient: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, patient, stream])


def _blobs(rng: np.random.Generator, n: int, half: Sequence[float], sig: tuple[float, float],
           amp: float) -> np.ndarray:
    out = np.empty((n, 5))
    for j in range(3):
        out[:, j] = rng.uniform(-half[j], half[j], n)
    out[:, 3] = rng.uniform(*sig, n)
    out[:, 4] = amp * rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n)
    return out


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


def _sample_in_ellipsoid(rng: np.random.Generator, semi: np.ndarray, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = rng.uniform(size=(n, 1)) ** (1.0 / 3.0)
    return v * r * semi


def _texture_raw(u: np.ndarray, centres: np.ndarray, sigmas: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
    """Sum of Gaussian blobs at tumour-frame points ``u`` (..., 3)."""
    out = np.zeros(u.shape[:-1])
    for c, s, w in zip(centres, sigmas, weights):
        d2 = np.sum((u - c) ** 2, axis=-1)
        out += w * np.exp(-d2 / (2.0 * s * s))
    return out


# ---------------------------------------------------------------------------
# simulation of parameters and outcomes (no images)
# ---------------------------------------------------------------------------
def _simulate_patient(seed: int, index: int, retest: bool, geom: Geometry,
                      used_birth_dates: set[str]) -> PatientTruth:
    rng = _rng(seed, index, 0)
    # clinical & tumour
    age = int(round(float(np.clip(rng.normal(AGE_MEAN, AGE_SD), 40, 88))))
    log_v = float(np.clip(rng.normal(LOGVOL_MEAN, LOGVOL_SD), *LOGVOL_RANGE))
    z_het = float(np.clip(rng.normal(), -2.5, 2.5))
    stage_score = (log_v - LOGVOL_MEAN) / LOGVOL_SD + rng.normal(0.0, 0.5)
    accrual = float(rng.uniform(0.0, ACCRUAL_MONTHS))
    e1 = float(rng.exponential())
    loss = float(rng.exponential(LOSS_MEAN_MONTHS))

    z_vol = (log_v - LOGVOL_MEAN) / LOGVOL_SD
    z_age = (age - AGE_MEAN) / AGE_SD
    het = HET_BASE_HU * math.exp(HET_LOG_SD * z_het)
    lp = BETA["z_log_volume"] * z_vol + BETA["z_heterogeneity"] * z_het + BETA["z_age"] * z_age
    lam = math.log(2.0) / WEIBULL_MEDIAN_MONTHS**WEIBULL_SHAPE
    t_event = (e1 / (lam * math.exp(lp))) ** (1.0 / WEIBULL_SHAPE)
    stage = STAGES[int(np.searchsorted(STAGE_CUTS, stage_score))]

    # anatomy (drawn at scale 1, then scaled in-plane: the random sequence does not depend on it)
    k = geom.anatomy_scale
    body = ((BODY_SEMI[0] - rng.uniform(0, 4)) * k, (BODY_SEMI[1] - rng.uniform(0, 4)) * k)
    lung = ((LUNG_SEMI[0] + rng.uniform(-2, 2)) * k, (LUNG_SEMI[1] + rng.uniform(-3, 3)) * k, LUNG_SEMI[2])
    lung_z = float(rng.uniform(-8, 8))
    tissue_blobs = _blobs(rng, 8, (80 * k, 60 * k, 60), (10, 20), 8.0)
    lung_blobs = _blobs(rng, 12, (75 * k, 50 * k, 60), (4, 10), 25.0)

    # tumour geometry (linear size x k, volume x k^3; z_vol above is unchanged)
    vol_mm3 = math.exp(log_v) * 1000.0 * k**3
    r_eq = (3.0 * vol_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    elong = np.exp(rng.normal(0.0, 0.12, 3))
    elong /= np.prod(elong) ** (1.0 / 3.0)
    semi = r_eq * elong
    z_half = (geom.n_slices - 1) / 2.0 * geom.dz
    semi[2] = min(semi[2], z_half - 8.0)
    semi[:2] *= math.sqrt(r_eq**3 / np.prod(semi))  # keep the planted volume
    rot = float(rng.uniform(0.0, math.pi))
    side = "left" if rng.uniform() < 0.5 else "right"
    sgn = 1.0 if side == "left" else -1.0  # LPS: +x is the patient's left
    lx, ly = LUNG_CENTRE[0] * sgn * k, LUNG_CENTRE[1] * k
    span_x = max(0.0, lung[0] - 0.8 * max(semi[:2]) - 2.0)
    span_y = max(0.0, lung[1] - 0.8 * max(semi[:2]) - 2.0)
    # inside the scanned slab and the lungs' cranio-caudal extent (the latter only binds on tall scans)
    span_z = max(0.0, min(z_half, lung[2] - 10.0) - semi[2] - 6.0)
    centre = (
        lx + float(rng.uniform(-span_x, span_x)),
        ly + float(rng.uniform(-span_y, span_y)),
        float(rng.uniform(-span_z, span_z)),
    )
    n_b = N_BLOBS
    b_sig = np.maximum(rng.uniform(0.22, 0.35, n_b) * r_eq, 2.5)
    b_cen = _sample_in_ellipsoid(rng, 0.9 * semi, n_b)
    b_w = rng.normal(size=n_b)
    pts = _sample_in_ellipsoid(rng, semi, 4000)
    raw = _texture_raw(pts, b_cen, b_sig, b_w)
    t_mean, t_sd = float(raw.mean()), float(raw.std())

    # scans
    rng_s = _rng(seed, index, 1)
    base_day = COHORT_START + timedelta(days=int(round(accrual * DAYS_PER_MONTH)))
    scans = [
        ScanTruth(1, base_day, f"{rng_s.integers(8, 17):02d}{rng_s.integers(0, 60):02d}"
                  f"{rng_s.integers(0, 60):02d}", float(rng_s.uniform(*NOISE_SIGMA_RANGE)),
                  (0.0, 0.0, 0.0), tuple(float(s) for s in semi))
    ]
    rng_r = _rng(seed, index, 2)
    days = int(rng_r.integers(1, 8))
    r_time = f"{rng_r.integers(8, 17):02d}{rng_r.integers(0, 60):02d}{rng_r.integers(0, 60):02d}"
    r_sigma = float(rng_r.uniform(*NOISE_SIGMA_RANGE))
    direction = rng_r.normal(size=3)
    direction /= np.linalg.norm(direction)
    shift = direction * rng_r.uniform(*SHIFT_RANGE_MM)
    delta = rng_r.choice([-1.0, 1.0], 3) * rng_r.uniform(*RECONTOUR_RANGE_MM, 3)
    if retest:
        scans.append(ScanTruth(2, base_day + timedelta(days=days), r_time, r_sigma,
                               tuple(float(round(s, 3)) for s in shift),
                               tuple(float(s) for s in semi + delta)))

    # fake birth date consistent with age, unique in the cohort
    bd = base_day - timedelta(days=int(round(age * 365.25)) + int(rng.integers(0, 365)))
    while bd.strftime("%Y%m%d") in used_birth_dates:
        bd -= timedelta(days=1)
    birth = bd.strftime("%Y%m%d")
    used_birth_dates.add(birth)

    return PatientTruth(
        index=index, patient_id=f"RSD-{index:03d}", age=age, stage=stage,
        volume_ml=math.exp(log_v) * k**3, z_log_volume=z_vol, heterogeneity_hu=het,
        z_heterogeneity=z_het, z_age=z_age, linear_predictor=lp,
        event_time_months=t_event, loss_time_months=loss, accrual_months=accrual,
        tumour_side=side, tumour_centre_mm=centre,
        tumour_semi_axes_mm=tuple(float(s) for s in semi), tumour_rotation_rad=rot,
        blob_centres_mm=b_cen, blob_sigmas_mm=b_sig, blob_weights=b_w,
        texture_mean=t_mean, texture_sd=t_sd, body_semi_mm=body, lung_semi_mm=lung,
        lung_z_mm=lung_z, tissue_blobs=tissue_blobs, lung_blobs=lung_blobs,
        birth_date=birth, scans=tuple(scans),
    )


def _data_freeze(accrual: np.ndarray, t_event: np.ndarray, loss: np.ndarray) -> float:
    """The data-freeze month whose censored fraction is closest to the target."""
    grid = np.arange(math.ceil((accrual.max() + 12.0) * 2) / 2, 240.0 + 1e-9, 0.5)
    best, best_err = float(grid[-1]), math.inf
    for f in grid:
        cens = ~((t_event <= loss) & (t_event <= f - accrual))
        err = abs(cens.mean() - TARGET_CENSORED)
        if err < best_err - 1e-12:
            best, best_err = float(f), err
    return best


def simulate_cohort(n_patients: int = 40, n_retest: int = 15, seed: int = 42,
                    **geometry: Any) -> DemoCohort:
    """Draw every planted quantity and the clinical table, without images.

    Fast (milliseconds); :func:`generate_demo_cohort` renders from its result.
    ``geometry`` keywords are the fields of :class:`Geometry`.
    """
    if n_patients < 1 or not 0 <= n_retest <= n_patients:
        raise ValueError("need n_patients >= 1 and 0 <= n_retest <= n_patients")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    geom = Geometry(**geometry)
    used: set[str] = set()
    patients = [_simulate_patient(seed, i, i <= n_retest, geom, used)
                for i in range(1, n_patients + 1)]
    acc = np.array([p.accrual_months for p in patients])
    te = np.array([p.event_time_months for p in patients])
    lo = np.array([p.loss_time_months for p in patients])
    freeze = _data_freeze(acc, te, lo)
    admin = freeze - acc
    obs = np.minimum(te, np.minimum(lo, admin))
    event = ((te <= lo) & (te <= admin)).astype(int)
    clinical = pd.DataFrame({
        "patient_id": [p.patient_id for p in patients],
        "os_months": np.maximum(np.round(obs, 1), 0.1),
        "os_event": event,
        "age": [p.age for p in patients],
        "stage": [p.stage for p in patients],
    })
    rows = []
    for p, ev, ad in zip(patients, event, admin):
        r: dict[str, Any] = {
            "patient_id": p.patient_id,
            "volume_ml": round(p.volume_ml, 4),
            "log_volume": round(math.log(p.volume_ml), 5),
            "z_log_volume": round(p.z_log_volume, 5),
            "heterogeneity_hu": round(p.heterogeneity_hu, 4),
            "z_heterogeneity": round(p.z_heterogeneity, 5),
            "age": p.age,
            "z_age": round(p.z_age, 5),
            "stage": p.stage,
            "linear_predictor": round(p.linear_predictor, 5),
            "event_time_months": round(p.event_time_months, 3),
            "loss_time_months": round(p.loss_time_months, 3),
            "admin_censor_months": round(float(ad), 3),
            "accrual_months": round(p.accrual_months, 3),
            "os_event": int(ev),
            "tumour_side": p.tumour_side,
            "tumour_x_mm": round(p.tumour_centre_mm[0], 3),
            "tumour_y_mm": round(p.tumour_centre_mm[1], 3),
            "tumour_z_mm": round(p.tumour_centre_mm[2], 3),
            "semi_axis_a_mm": round(p.tumour_semi_axes_mm[0], 3),
            "semi_axis_b_mm": round(p.tumour_semi_axes_mm[1], 3),
            "semi_axis_c_mm": round(p.tumour_semi_axes_mm[2], 3),
            "rotation_deg": round(math.degrees(p.tumour_rotation_rad), 2),
            "has_retest": len(p.scans) > 1,
        }
        for k in (1, 2):
            s = p.scans[k - 1] if len(p.scans) >= k else None
            r[f"scan{k}_study_uid"] = _uid(seed, 1, p.index, k) if s else ""
            r[f"scan{k}_study_date"] = s.study_date.strftime("%Y%m%d") if s else ""
            r[f"scan{k}_noise_sigma_hu"] = round(s.noise_sigma_hu, 3) if s else np.nan
            for ax, v in zip("xyz", s.shift_mm if s else (np.nan,) * 3):
                r[f"scan{k}_shift_{ax}_mm"] = v
            r[f"scan{k}_gtv_contour_volume_ml"] = (
                round(s.gtv_contour_volume_ml, 4) if s else np.nan)
        rows.append(r)
    truth = pd.DataFrame(rows)
    return DemoCohort(seed, geom, patients, clinical, truth, freeze)


# ---------------------------------------------------------------------------
# image formation
# ---------------------------------------------------------------------------
def _ellipse_occ(x: np.ndarray, y: np.ndarray, a: float, b: float, dx: float,
                 dy: float) -> np.ndarray:
    """Partial-volume occupancy of an axis-aligned ellipse (2-D)."""
    g = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    gx, gy = x / (a * a), y / (b * b)
    gn = np.maximum(np.sqrt(gx**2 + gy**2), 1e-9)
    d = (g * g - 1.0) / (2.0 * gn)  # F / |grad F| with F = g^2 - 1
    sig = np.maximum(np.sqrt((gx / gn * dx) ** 2 + (gy / gn * dy) ** 2) / math.sqrt(12.0), 1e-6)
    return 0.5 * erfc(d / (math.sqrt(2.0) * sig))


def _ellipsoid_occ(ux: np.ndarray, uy: np.ndarray, uz: np.ndarray, semi: Sequence[float],
                   rot: float, vox: Sequence[float]) -> np.ndarray:
    """Partial-volume occupancy of an ellipsoid; ``u*`` (broadcastable) in its frame.

    The signed distance is approximated by ``F / |grad F|`` and the voxel's
    extent projected on the surface normal sets the width of an erf ramp
    (a sum of three uniform variables has that variance).
    """
    a, b, c = semi
    f = (ux / a) ** 2 + (uy / b) ** 2 + (uz / c) ** 2 - 1.0
    gx, gy, gz = 2 * ux / a**2, 2 * uy / b**2, 2 * uz / c**2
    gn = np.maximum(np.sqrt(gx * gx + gy * gy + gz * gz), 1e-9)
    cr, sr = math.cos(rot), math.sin(rot)
    nx = (cr * gx - sr * gy) * vox[0]
    ny = (sr * gx + cr * gy) * vox[1]
    sig = np.maximum(np.sqrt(nx * nx + ny * ny + (gz * vox[2]) ** 2) / gn, 1e-6)
    return 0.5 * erfc((f / gn) / (math.sqrt(2.0 / 12.0) * sig))


def _to_tumour_frame(p: PatientTruth, X: np.ndarray, Y: np.ndarray, Z: np.ndarray
                     ) -> np.ndarray:
    cx, cy, cz = p.tumour_centre_mm
    cr, sr = math.cos(p.tumour_rotation_rad), math.sin(p.tumour_rotation_rad)
    dx, dy = X - cx, Y - cy
    return np.stack(np.broadcast_arrays(cr * dx + sr * dy, -sr * dx + cr * dy, Z - cz), axis=-1)


def _blob_field(blobs: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Sum of isotropic Gaussian blobs on the grid ``z x y x x`` (separable)."""
    out = np.zeros((z.size, y.size, x.size))
    for bx, by, bz, s, amp in blobs:
        k = -1.0 / (2 * s * s)
        ez = amp * np.exp(k * (z - bz) ** 2)
        out += ez[:, None, None] * np.outer(np.exp(k * (y - by) ** 2), np.exp(k * (x - bx) ** 2))
    return out


def _box(v: np.ndarray, lo: float, hi: float) -> slice:
    idx = np.nonzero((v >= lo) & (v <= hi))[0]
    return slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)


def render_ct(patient: PatientTruth, scan: ScanTruth, geometry: Geometry,
              noise: bool = True, seed: int = 0) -> np.ndarray:
    """The scan's HU volume, shape ``(n_slices, rows, cols)`` (z, y, x).

    Every value is evaluated at the voxel centre in patient mm after undoing
    the scan's rigid shift, so anatomy, texture and contours move together.
    ``seed`` is the cohort seed (it selects the noise realisation).
    """
    sx, sy, sz = scan.shift_mm
    xs = geometry.x() - sx
    ys = geometry.y() - sy
    zs = geometry.z() - sz
    dx = dy = geometry.dx
    dz = geometry.dz
    X2, Y2 = np.meshgrid(xs, ys)  # (rows, cols)

    k = geometry.anatomy_scale
    A, B = patient.body_semi_mm
    body = _ellipse_occ(X2, Y2, A, B, dx, dy)[None]
    inner = _ellipse_occ(X2, Y2, A - FAT_MM * k, B - FAT_MM * k, dx, dy)[None]
    img = HU_AIR * (1 - body) + HU_FAT * body
    soft = HU_SOFT + _blob_field(patient.tissue_blobs, xs, ys, zs)
    img = img * (1 - inner) + soft * inner

    la, lb, lc = patient.lung_semi_mm
    m = 3 * max(dx, dz)
    for sgn in (1.0, -1.0):
        lx, ly, lz = sgn * LUNG_CENTRE[0] * k, LUNG_CENTRE[1] * k, patient.lung_z_mm
        sl = (_box(zs, lz - lc - m, lz + lc + m), _box(ys, ly - lb - m, ly + lb + m),
              _box(xs, lx - la - m, lx + la + m))
        bx, by, bz = xs[sl[2]], ys[sl[1]], zs[sl[0]]
        occ = _ellipsoid_occ((bx - lx)[None, None, :], (by - ly)[None, :, None],
                             (bz - lz)[:, None, None], (la, lb, lc), 0.0, (dx, dy, dz))
        val = HU_LUNG + _blob_field(patient.lung_blobs, bx, by, bz)
        img[sl] = img[sl] * (1 - occ) + val * occ

    spx, spy = SPINE_CENTRE[0] * k, SPINE_CENTRE[1] * k
    sr, mr = SPINE_RADIUS * k, (SPINE_RADIUS - CORTEX_MM) * k
    cort = _ellipse_occ(X2 - spx, Y2 - spy, sr, sr, dx, dy)[None]
    marrow = _ellipse_occ(X2 - spx, Y2 - spy, mr, mr, dx, dy)[None]
    img = img * (1 - cort) + HU_CORTEX * cort
    img = img * (1 - marrow) + HU_MARROW * marrow

    # tumour, evaluated in its bounding box only
    cx, cy, cz = patient.tumour_centre_mm
    rmax = max(patient.tumour_semi_axes_mm) + 3 * max(dx, dz)
    ix = np.nonzero(np.abs(xs - cx) <= rmax)[0]
    iy = np.nonzero(np.abs(ys - cy) <= rmax)[0]
    iz = np.nonzero(np.abs(zs - cz) <= rmax)[0]
    if ix.size and iy.size and iz.size:
        sl = (slice(iz[0], iz[-1] + 1), slice(iy[0], iy[-1] + 1), slice(ix[0], ix[-1] + 1))
        Xb, Yb, Zb = np.meshgrid(zs[sl[0]], ys[sl[1]], xs[sl[2]], indexing="ij")[::-1]
        u = _to_tumour_frame(patient, Xb, Yb, Zb)
        occ = _ellipsoid_occ(u[..., 0], u[..., 1], u[..., 2], patient.tumour_semi_axes_mm,
                             patient.tumour_rotation_rad, (dx, dy, dz))
        tex = _texture_raw(u, patient.blob_centres_mm, patient.blob_sigmas_mm,
                           patient.blob_weights)
        val = TUMOUR_BASE_HU + patient.heterogeneity_hu * (tex - patient.texture_mean) / \
            patient.texture_sd
        img[sl] = img[sl] * (1 - occ) + val * occ

    if noise:
        rng = _rng(seed, patient.index, 10 + scan.study)
        img = img + rng.normal(0.0, scan.noise_sigma_hu, img.shape)
    return img


def _ellipse_polygon(cx: float, cy: float, a: float, b: float, rot: float, n: int
                     ) -> np.ndarray:
    t = 2.0 * math.pi * np.arange(n) / n
    ex, ey = a * np.cos(t), b * np.sin(t)
    cr, sr = math.cos(rot), math.sin(rot)
    return np.stack([cx + cr * ex - sr * ey, cy + sr * ex + cr * ey], axis=1)


def roi_polygons(patient: PatientTruth, scan: ScanTruth, geometry: Geometry
                 ) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Analytic contours per ROI: ``{name: [(slice index, (n, 2) xy mm), ...]}``.

    Each polygon is the structure's exact cross-section (an ellipse sampled
    at 64 vertices) with the plane of slice ``k``; the GTV uses the semi-axes
    as contoured on this scan.
    """
    sx, sy, sz = scan.shift_mm
    out: dict[str, list[tuple[int, np.ndarray]]] = {
        "GTV-1": [], "Lung-Left": [], "Lung-Right": [], "Body": []}
    cx, cy, cz = patient.tumour_centre_mm
    ta, tb, tc = scan.gtv_semi_axes_mm
    la, lb, lc = patient.lung_semi_mm
    A, B = patient.body_semi_mm
    scale = geometry.anatomy_scale
    for k, z in enumerate(geometry.z()):
        w = 1.0 - ((z - cz - sz) / tc) ** 2
        if w > 0 and min(ta, tb) * math.sqrt(w) > 0.3:
            s = math.sqrt(w)
            out["GTV-1"].append((k, _ellipse_polygon(cx + sx, cy + sy, ta * s, tb * s,
                                                     patient.tumour_rotation_rad, N_VERTICES)))
        w = 1.0 - ((z - patient.lung_z_mm - sz) / lc) ** 2
        if w > 0:
            s = math.sqrt(w)
            for name, sgn in (("Lung-Left", 1.0), ("Lung-Right", -1.0)):
                out[name].append((k, _ellipse_polygon(sgn * LUNG_CENTRE[0] * scale + sx,
                                                      LUNG_CENTRE[1] * scale + sy, la * s, lb * s,
                                                      0.0, N_VERTICES)))
        out["Body"].append((k, _ellipse_polygon(sx, sy, A, B, 0.0, 2 * N_VERTICES)))
    return out


# ---------------------------------------------------------------------------
# DICOM writing
# ---------------------------------------------------------------------------
def _file_dataset(sop_class: str, sop_uid: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def _patient_study(ds: Dataset, p: PatientTruth, scan: ScanTruth, seed: int) -> None:
    phi = _phi(p.index, scan.study)
    d = scan.study_date.strftime("%Y%m%d")
    ds.PatientName = phi["PatientName"]
    ds.PatientID = p.patient_id
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = "O"
    ds.OtherPatientIDs = phi["OtherPatientIDs"]
    ds.PatientAddress = phi["PatientAddress"]
    ds.StudyInstanceUID = _uid(seed, 1, p.index, scan.study)
    ds.StudyDate = d
    ds.StudyTime = scan.study_time
    ds.StudyID = f"{scan.study}"
    ds.StudyDescription = "CT THORAX" if scan.study == 1 else "CT THORAX RETEST"
    ds.AccessionNumber = phi["AccessionNumber"]
    ds.ReferringPhysicianName = phi["ReferringPhysicianName"]
    ds.PhysiciansOfRecord = phi["PhysiciansOfRecord"]
    ds.InstitutionName = phi["InstitutionName"]
    ds.InstitutionAddress = phi["InstitutionAddress"]
    ds.StationName = phi["StationName"]
    ds.OperatorsName = phi["OperatorsName"]
    ds.Manufacturer = "radsurv-demo"
    ds.ManufacturerModelName = "SynthCT 64"
    ds.SoftwareVersions = "radsurv-demo 1"


def _write_ct(series_dir: Path, p: PatientTruth, scan: ScanTruth, geom: Geometry,
              seed: int) -> list[str]:
    hu = render_ct(p, scan, geom, noise=True, seed=seed)
    stored = np.clip(np.rint(hu + 1024.0), 0, 65535).astype("<u2")
    series_dir.mkdir(parents=True, exist_ok=True)
    d = scan.study_date.strftime("%Y%m%d")
    ds = _file_dataset(CT_IMAGE_STORAGE, _uid(seed, 5, p.index, scan.study, 1))
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    _patient_study(ds, p, scan, seed)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = _uid(seed, 2, p.index, scan.study)
    ds.SeriesNumber = 2
    ds.SeriesDescription = "THORAX 2.5 mm"
    ds.SeriesDate = d
    ds.SeriesTime = scan.study_time
    ds.AcquisitionDate = d
    ds.AcquisitionTime = scan.study_time
    ds.ContentDate = d
    ds.ContentTime = scan.study_time
    ds.FrameOfReferenceUID = _uid(seed, 4, p.index, scan.study)
    ds.PositionReferenceIndicator = ""
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.ScanOptions = "HELICAL MODE"
    ds.KVP = "120"
    ds.ConvolutionKernel = "STANDARD"
    ds.SliceThickness = _ds(geom.slice_thickness)
    ds.SpacingBetweenSlices = _ds(geom.slice_thickness)
    ds.PixelSpacing = [_ds(geom.dx), _ds(geom.dx)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.Rows = geom.rows
    ds.Columns = geom.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "-600"
    ds.WindowWidth = "1500"
    x0, y0 = geom.x()[0], geom.y()[0]
    uids = []
    for k, z in enumerate(geom.z()):
        uid = _uid(seed, 5, p.index, scan.study, k + 1)
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(x0), _ds(y0), _ds(z)]
        ds.SliceLocation = _ds(z)
        ds.PixelData = stored[k].tobytes()
        ds.save_as(series_dir / f"{k + 1:04d}.dcm", enforce_file_format=True)
        uids.append(uid)
    return uids


def _write_rtstruct(path: Path, p: PatientTruth, scan: ScanTruth, geom: Geometry,
                    seed: int, ct_uids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    d = scan.study_date.strftime("%Y%m%d")
    ds = _file_dataset(RT_STRUCTURE_SET_STORAGE, _uid(seed, 6, p.index, scan.study, 1))
    _patient_study(ds, p, scan, seed)
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = _uid(seed, 3, p.index, scan.study)
    ds.SeriesNumber = 3
    ds.SeriesDescription = "RTSTRUCT"
    ds.SeriesDate = d
    ds.SeriesTime = scan.study_time
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "DEMO_GTV"
    ds.StructureSetName = "DEMO_GTV"
    ds.StructureSetDate = d
    ds.StructureSetTime = scan.study_time
    for_uid = _uid(seed, 4, p.index, scan.study)

    def _img_ref(uid: str) -> Dataset:
        r = Dataset()
        r.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        r.ReferencedSOPInstanceUID = uid
        return r

    series = Dataset()
    series.SeriesInstanceUID = _uid(seed, 2, p.index, scan.study)
    series.ContourImageSequence = DicomSequence([_img_ref(u) for u in ct_uids])
    study = Dataset()
    study.ReferencedSOPClassUID = DETACHED_STUDY_MANAGEMENT
    study.ReferencedSOPInstanceUID = _uid(seed, 1, p.index, scan.study)
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = for_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])

    polys = roi_polygons(p, scan, geom)
    zs = geom.z()
    colours = {"GTV-1": [255, 0, 0], "Lung-Left": [0, 128, 255], "Lung-Right": [0, 200, 200],
               "Body": [0, 255, 0]}
    kinds = {"GTV-1": "GTV", "Lung-Left": "ORGAN", "Lung-Right": "ORGAN", "Body": "EXTERNAL"}
    roi_seq, contour_seq, obs_seq = [], [], []
    for number, (name, items) in enumerate(polys.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = for_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        roi_seq.append(roi)
        rc = Dataset()
        rc.ROIDisplayColor = colours[name]
        rc.ReferencedROINumber = number
        contours = []
        for k, xy in items:
            c = Dataset()
            c.ContourImageSequence = DicomSequence([_img_ref(ct_uids[k])])
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(xy)
            zstr = _ds(zs[k])
            c[CONTOUR_DATA_TAG] = _raw_ds(v for x, y in xy for v in (_ds(x), _ds(y), zstr))
            contours.append(c)
        rc.ContourSequence = DicomSequence(contours)
        contour_seq.append(rc)
        ob = Dataset()
        ob.ObservationNumber = number
        ob.ReferencedROINumber = number
        ob.RTROIInterpretedType = kinds[name]
        ob.ROIInterpreter = ""
        obs_seq.append(ob)
    ds.StructureSetROISequence = DicomSequence(roi_seq)
    ds.ROIContourSequence = DicomSequence(contour_seq)
    ds.RTROIObservationsSequence = DicomSequence(obs_seq)
    for rc in ds.ROIContourSequence:  # keep the raw ContourData as it is when writing
        for c in rc.ContourSequence:
            c.set_original_encoding(False, True, c._character_set)
    ds.save_as(path, enforce_file_format=True)


# ---------------------------------------------------------------------------
# cohort writer
# ---------------------------------------------------------------------------
def _readme(c: DemoCohort, n_retest: int) -> str:
    doc = __doc__ or ""
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
        "their z-scores, linear_predictor, latent event/censoring times, tumour geometry, and "
        "per scan the noise sigma, rigid shift and contoured GTV volume.\n\n"
        "## Generative model (from `radsurv.synthetic.demo`)\n\n```text\n" + doc.strip() + "\n```\n"
    )


def _write_scan(job: tuple[Any, Any, Geometry, int, Path]) -> int:
    """Write one scan's CT series and RTSTRUCT; the number of files written."""
    p, scan, geometry, seed, dicom_dir = job
    log.info("demo: writing %s scan %d", p.patient_id, scan.study)
    base = dicom_dir / p.patient_id / str(scan.study)
    uids = _write_ct(base / "CT", p, scan, geometry, seed)
    _write_rtstruct(base / "RTSTRUCT" / "0001.dcm", p, scan, geometry, seed, uids)
    return len(uids) + 1


def generate_demo_cohort(out_dir: Path, n_patients: int = 40, n_retest: int = 15,
                         seed: int = 42, workers: int = 1, **geometry: Any) -> dict[str, Any]:
    """Write the synthetic cohort under ``out_dir`` and return a summary.

    ``geometry`` keywords are the fields of :class:`Geometry` (``rows``,
    ``cols``, ``pixel_spacing``, ``n_slices``, ``slice_thickness``). The
    summary holds the written paths, counts and the censored fraction.
    ``workers`` > 1 writes the scans in that many processes (every scan is rendered
    from the seed alone, so the files are the same for any ``workers``).
    """
    out_dir = Path(out_dir)
    cohort = simulate_cohort(n_patients, n_retest, seed, **geometry)
    dicom_dir = out_dir / "dicom"
    jobs = [(p, scan, cohort.geometry, seed, dicom_dir) for p in cohort.patients for scan in p.scans]
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            n_files = sum(pool.map(_write_scan, jobs))
    else:
        n_files = sum(map(_write_scan, jobs))
    out_dir.mkdir(parents=True, exist_ok=True)
    clinical_csv = out_dir / "clinical.csv"
    truth_csv = out_dir / "truth.csv"
    cohort.clinical.to_csv(clinical_csv, index=False, lineterminator="\n")
    cohort.truth.to_csv(truth_csv, index=False, lineterminator="\n")
    phi: set[str] = set()
    for p in cohort.patients:
        phi.add(p.birth_date)
        for scan in p.scans:
            phi.update(_phi(p.index, scan.study).values())
    phi_json = out_dir / "phi_values.json"
    phi_json.write_text(json.dumps(sorted(phi), indent=1) + "\n", encoding="utf-8")
    readme = out_dir / "README.md"
    readme.write_text(_readme(cohort, n_retest), encoding="utf-8")
    return {
        "out_dir": out_dir,
        "dicom_dir": dicom_dir,
        "clinical_csv": clinical_csv,
        "truth_csv": truth_csv,
        "phi_values": phi_json,
        "readme": readme,
        "seed": seed,
        "n_patients": n_patients,
        "n_retest": n_retest,
        "n_scans": sum(len(p.scans) for p in cohort.patients),
        "n_dicom_files": n_files,
        "n_events": int(cohort.clinical["os_event"].sum()),
        "censored_fraction": cohort.censored_fraction,
        "data_freeze_months": cohort.data_freeze_months,
    }


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
        dst = out_dir / folder / str(ds.StudyInstanceUID) / f"{TPS_PREFIX.get(modality, modality)}.{ds.SOPInstanceUID}.dcm"
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
        for pid, folder in sorted(folders.items()):
            (out_dir / folder / f"{folder.split('_')[0]} notes.txt").write_text(f"planning notes of {folder}\n")
    return {"dicom_dir": out_dir, "folders": sorted(folders.values()), "truncated": truncated}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``radsurv-demo --out DIR [--patients N --retest M --seed S]``."""
    ap = argparse.ArgumentParser(prog="radsurv-demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--retest", type=int, default=15)
    ap.add_argument("--seed", type=int, default=42)
    for f in fields(Geometry):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    geom = {f.name: getattr(args, f.name) for f in fields(Geometry)}
    try:
        summary = generate_demo_cohort(args.out, args.patients, args.retest, args.seed, **geom)
    except ValueError as e:
        ap.error(str(e))
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in summary.items()},
                     indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
