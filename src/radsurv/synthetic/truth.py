"""The planted truth of the synthetic demo cohort: patients, tumours, scans and outcomes (no images).

:func:`simulate_cohort` draws every per-patient quantity of the generative model that
:mod:`radsurv.synthetic.demo` documents (its module docstring, copied into each cohort's
``README.md``) and builds the clinical and truth tables from them; it is fast
(milliseconds) and writes nothing. :mod:`radsurv.synthetic.render` turns a patient into
CT voxels and ROI polygons, :mod:`radsurv.synthetic.demo` writes the DICOM cohort.

Patient ``i`` draws from ``numpy.random.default_rng([seed, i, stream])``
(:func:`patient_rng`): stream 0 the clinical values, anatomy and tumour, stream 1 the
baseline scan, stream 2 the retest scan, stream 3 the planted biology label (HPV-like
status), stream ``10 + study`` the image noise. The order
of the draws within a stream is part of the cohort's definition: changing it changes
every file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BETA",
    "DemoCohort",
    "Geometry",
    "PatientTruth",
    "ScanTruth",
    "demo_uid",
    "ds_str",
    "patient_rng",
    "simulate_cohort",
    "texture_raw",
]

#: pydicom's registered root; the suffix is structured (seed.kind.patient.scan.n)
UID_ROOT = "1.2.826.0.1.3680043.8.498."

# --- planted model constants (documented in radsurv.synthetic.demo's docstring) ---
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
STAGE_CUTS = (-0.75, 0.25, 1.0)
STAGES = ("I", "II", "IIIA", "IIIB")
#: planted binary biology ("HPV-like" status): positive when ``-z_het + N(0, HPV_NOISE_SD) > HPV_CUT``
#: (less heterogeneous tumours are positive; tied to texture, independent of volume)
HPV_NOISE_SD = 0.5
HPV_CUT = 0.0
HPV_LEVELS = ("negative", "positive")

# anatomy drawn per patient (mm, at anatomy_scale 1); the rest is in radsurv.synthetic.render
BODY_SEMI = (95.0, 75.0)
LUNG_CENTRE = (45.0, -5.0)
LUNG_SEMI = (34.0, 48.0, 110.0)


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
        return float(ds_str(self.pixel_spacing))

    @property
    def dz(self) -> float:
        return float(ds_str(self.slice_thickness))

    def x(self) -> np.ndarray:
        """Column-centre x coordinates (mm)."""
        x0 = -(self.cols - 1) / 2.0 * self.dx
        return np.array([float(ds_str(x0 + c * self.dx)) for c in range(self.cols)])

    def y(self) -> np.ndarray:
        """Row-centre y coordinates (mm)."""
        y0 = -(self.rows - 1) / 2.0 * self.dx
        return np.array([float(ds_str(y0 + r * self.dx)) for r in range(self.rows)])

    def z(self) -> np.ndarray:
        """Slice-centre z coordinates (mm), exactly as written to the headers."""
        z0 = -(self.n_slices - 1) / 2.0 * self.dz
        return np.array([float(ds_str(z0 + k * self.dz)) for k in range(self.n_slices)])


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
    hpv_latent: float = 0.0  # -z_het + noise (stream 3); the label is its sign against HPV_CUT
    hpv_status: str = ""  # "positive" | "negative"


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
def ds_str(v: float) -> str:
    """A decimal string (DS) of at most 16 characters, 4 decimals (grid coordinates are these values)."""
    s = f"{round(float(v), 4):.4f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def demo_uid(seed: int, kind: int, patient: int, scan: int = 0, n: int = 0) -> str:
    """The structured UID ``<root><seed>.<kind>.<patient>.<scan>.<n>`` (no random UIDs in the demo).

    Kinds: 1 study, 2 CT series, 3 RTSTRUCT series, 4 frame of reference, 5 CT image,
    6 RTSTRUCT instance, 8 and 9 series and images of the faulty cohort.
    """
    uid = f"{UID_ROOT}{seed}.{kind}.{patient}.{scan}.{n}"
    if len(uid) > 64:
        raise ValueError("seed too large for a 64-character UID")
    return uid


def patient_rng(seed: int, patient: int, stream: int) -> np.random.Generator:
    """The random stream ``stream`` of patient ``patient`` (see the module docstring)."""
    return np.random.default_rng([seed, patient, stream])


def _blobs(rng: np.random.Generator, n: int, half: Sequence[float], sig: tuple[float, float],
           amp: float) -> np.ndarray:
    out = np.empty((n, 5))
    for j in range(3):
        out[:, j] = rng.uniform(-half[j], half[j], n)
    out[:, 3] = rng.uniform(*sig, n)
    out[:, 4] = amp * rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n)
    return out



def sample_in_ellipsoid(rng: np.random.Generator, semi: np.ndarray, n: int) -> np.ndarray:
    """``n`` points uniform in the axis-aligned ellipsoid with semi-axes ``semi`` (a direction, then a radius each)."""
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = rng.uniform(size=(n, 1)) ** (1.0 / 3.0)
    return v * r * semi


def texture_raw(u: np.ndarray, centres: np.ndarray, sigmas: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
    """Sum of Gaussian blobs at tumour-frame points ``u`` (..., 3)."""
    out = np.zeros(u.shape[:-1])
    for c, s, w in zip(centres, sigmas, weights):
        d2 = np.sum((u - c) ** 2, axis=-1)
        out += w * np.exp(-d2 / (2.0 * s * s))
    return out



# ---------------------------------------------------------------------------
# simulation of one patient (the draws of each stream in their fixed order)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Clinical:
    """Clinical values and latent outcome times of one patient (the first draws of stream 0)."""

    age: int
    log_volume: float
    z_log_volume: float
    z_heterogeneity: float
    heterogeneity_hu: float
    z_age: float
    linear_predictor: float
    event_time_months: float
    loss_time_months: float
    accrual_months: float
    stage: str


@dataclass(frozen=True)
class _Anatomy:
    """Body, lungs and the smooth tissue structure of one patient (stream 0, after the clinical values)."""

    body_semi_mm: tuple[float, float]
    lung_semi_mm: tuple[float, float, float]
    lung_z_mm: float
    tissue_blobs: np.ndarray
    lung_blobs: np.ndarray


@dataclass(frozen=True)
class _Tumour:
    """Tumour shape, position and texture of one patient (stream 0, after the anatomy)."""

    semi_axes_mm: np.ndarray
    rotation_rad: float
    side: str
    centre_mm: tuple[float, float, float]
    blob_centres_mm: np.ndarray
    blob_sigmas_mm: np.ndarray
    blob_weights: np.ndarray
    texture_mean: float
    texture_sd: float


def _draw_clinical(rng: np.random.Generator) -> _Clinical:
    """Age, tumour volume and heterogeneity scores, stage, accrual and the latent event / loss times."""
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
    return _Clinical(age, log_v, z_vol, z_het, het, z_age, lp, t_event, loss, accrual, stage)


def _draw_anatomy(rng: np.random.Generator, k: float) -> _Anatomy:
    """Body and lung semi-axes and tissue / lung structure, drawn at scale 1 and scaled in-plane by ``k``
    (so the random sequence does not depend on the scale)."""
    body = ((BODY_SEMI[0] - rng.uniform(0, 4)) * k, (BODY_SEMI[1] - rng.uniform(0, 4)) * k)
    lung = ((LUNG_SEMI[0] + rng.uniform(-2, 2)) * k, (LUNG_SEMI[1] + rng.uniform(-3, 3)) * k, LUNG_SEMI[2])
    lung_z = float(rng.uniform(-8, 8))
    tissue_blobs = _blobs(rng, 8, (80 * k, 60 * k, 60), (10, 20), 8.0)
    lung_blobs = _blobs(rng, 12, (75 * k, 50 * k, 60), (4, 10), 25.0)
    return _Anatomy(body, lung, lung_z, tissue_blobs, lung_blobs)


def _draw_tumour(rng: np.random.Generator, log_v: float, lung: tuple[float, float, float],
                 geom: Geometry) -> _Tumour:
    """Tumour ellipsoid (linear size x scale, volume x scale^3), its place in a lung and its texture blobs."""
    k = geom.anatomy_scale
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
    b_cen = sample_in_ellipsoid(rng, 0.9 * semi, n_b)
    b_w = rng.normal(size=n_b)
    pts = sample_in_ellipsoid(rng, semi, 4000)
    raw = texture_raw(pts, b_cen, b_sig, b_w)
    return _Tumour(semi, rot, side, centre, b_cen, b_sig, b_w, float(raw.mean()), float(raw.std()))


def _clock_time(rng: np.random.Generator) -> str:
    """A StudyTime ``HHMMSS`` between 08:00:00 and 16:59:59 (three integer draws)."""
    return f"{rng.integers(8, 17):02d}{rng.integers(0, 60):02d}{rng.integers(0, 60):02d}"


def _draw_scans(seed: int, index: int, retest: bool, base_day: date, semi: np.ndarray) -> list[ScanTruth]:
    """The baseline scan (stream 1) and, if ``retest``, the retest scan (stream 2).

    Stream 2 is drawn whether or not the patient has a retest, so that a patient is the
    same in every cohort size.
    """
    rng_s = patient_rng(seed, index, 1)
    scans = [
        ScanTruth(1, base_day, _clock_time(rng_s), float(rng_s.uniform(*NOISE_SIGMA_RANGE)),
                  (0.0, 0.0, 0.0), tuple(float(s) for s in semi))
    ]
    rng_r = patient_rng(seed, index, 2)
    days = int(rng_r.integers(1, 8))
    r_time = _clock_time(rng_r)
    r_sigma = float(rng_r.uniform(*NOISE_SIGMA_RANGE))
    direction = rng_r.normal(size=3)
    direction /= np.linalg.norm(direction)
    shift = direction * rng_r.uniform(*SHIFT_RANGE_MM)
    delta = rng_r.choice([-1.0, 1.0], 3) * rng_r.uniform(*RECONTOUR_RANGE_MM, 3)
    if retest:
        scans.append(ScanTruth(2, base_day + timedelta(days=days), r_time, r_sigma,
                               tuple(float(round(s, 3)) for s in shift),
                               tuple(float(s) for s in semi + delta)))
    return scans


def _draw_hpv(seed: int, index: int, z_het: float) -> tuple[float, str]:
    """The planted HPV-like latent score and status of patient ``index`` (stream 3, its only draw).

    Tied to the tumour's texture (its heterogeneity score ``z_het``), not to its volume; the
    draw uses a stream of its own so that no other planted quantity changes.
    """
    latent = -z_het + float(patient_rng(seed, index, 3).normal(0.0, HPV_NOISE_SD))
    return latent, HPV_LEVELS[int(latent > HPV_CUT)]


def _birth_date(rng: np.random.Generator, base_day: date, age: int, used_birth_dates: set[str]) -> str:
    """A fake birth date (``YYYYMMDD``) consistent with ``age``, unique in the cohort (the last draw of stream 0)."""
    bd = base_day - timedelta(days=int(round(age * 365.25)) + int(rng.integers(0, 365)))
    while bd.strftime("%Y%m%d") in used_birth_dates:
        bd -= timedelta(days=1)
    birth = bd.strftime("%Y%m%d")
    used_birth_dates.add(birth)
    return birth


def _simulate_patient(seed: int, index: int, retest: bool, geom: Geometry,
                      used_birth_dates: set[str]) -> PatientTruth:
    rng = patient_rng(seed, index, 0)
    c = _draw_clinical(rng)
    a = _draw_anatomy(rng, geom.anatomy_scale)
    t = _draw_tumour(rng, c.log_volume, a.lung_semi_mm, geom)
    base_day = COHORT_START + timedelta(days=int(round(c.accrual_months * DAYS_PER_MONTH)))
    scans = _draw_scans(seed, index, retest, base_day, t.semi_axes_mm)
    birth = _birth_date(rng, base_day, c.age, used_birth_dates)
    hpv_latent, hpv_status = _draw_hpv(seed, index, c.z_heterogeneity)
    return PatientTruth(
        index=index, patient_id=f"RSD-{index:03d}", age=c.age, stage=c.stage,
        volume_ml=math.exp(c.log_volume) * geom.anatomy_scale**3, z_log_volume=c.z_log_volume,
        heterogeneity_hu=c.heterogeneity_hu, z_heterogeneity=c.z_heterogeneity, z_age=c.z_age,
        linear_predictor=c.linear_predictor, event_time_months=c.event_time_months,
        loss_time_months=c.loss_time_months, accrual_months=c.accrual_months,
        tumour_side=t.side, tumour_centre_mm=t.centre_mm,
        tumour_semi_axes_mm=tuple(float(s) for s in t.semi_axes_mm), tumour_rotation_rad=t.rotation_rad,
        blob_centres_mm=t.blob_centres_mm, blob_sigmas_mm=t.blob_sigmas_mm, blob_weights=t.blob_weights,
        texture_mean=t.texture_mean, texture_sd=t.texture_sd, body_semi_mm=a.body_semi_mm,
        lung_semi_mm=a.lung_semi_mm, lung_z_mm=a.lung_z_mm, tissue_blobs=a.tissue_blobs,
        lung_blobs=a.lung_blobs, birth_date=birth, scans=tuple(scans),
        hpv_latent=hpv_latent, hpv_status=hpv_status,
    )


# ---------------------------------------------------------------------------
# the cohort: censoring, clinical and truth tables
# ---------------------------------------------------------------------------
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


def _scan_columns(p: PatientTruth, k: int, seed: int) -> dict[str, Any]:
    """The truth-table columns of scan ``k`` (1 or 2) of ``p``; empty / NaN when it has no such scan."""
    pre = f"scan{k}_"
    if len(p.scans) < k:
        return {f"{pre}study_uid": "", f"{pre}study_date": "", f"{pre}noise_sigma_hu": np.nan,
                **{f"{pre}shift_{ax}_mm": np.nan for ax in "xyz"}, f"{pre}gtv_contour_volume_ml": np.nan}
    s = p.scans[k - 1]
    return {f"{pre}study_uid": demo_uid(seed, 1, p.index, k),
            f"{pre}study_date": s.study_date.strftime("%Y%m%d"),
            f"{pre}noise_sigma_hu": round(s.noise_sigma_hu, 3),
            **{f"{pre}shift_{ax}_mm": v for ax, v in zip("xyz", s.shift_mm)},
            f"{pre}gtv_contour_volume_ml": round(s.gtv_contour_volume_ml, 4)}


def _truth_row(p: PatientTruth, event: int, admin: float, seed: int) -> dict[str, Any]:
    """One row of ``truth.csv``: every planted quantity of ``p``, rounded as written."""
    return {
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
        "admin_censor_months": round(float(admin), 3),
        "accrual_months": round(p.accrual_months, 3),
        "os_event": int(event),
        "tumour_side": p.tumour_side,
        "tumour_x_mm": round(p.tumour_centre_mm[0], 3),
        "tumour_y_mm": round(p.tumour_centre_mm[1], 3),
        "tumour_z_mm": round(p.tumour_centre_mm[2], 3),
        "semi_axis_a_mm": round(p.tumour_semi_axes_mm[0], 3),
        "semi_axis_b_mm": round(p.tumour_semi_axes_mm[1], 3),
        "semi_axis_c_mm": round(p.tumour_semi_axes_mm[2], 3),
        "rotation_deg": round(math.degrees(p.tumour_rotation_rad), 2),
        "has_retest": len(p.scans) > 1,
        **_scan_columns(p, 1, seed),
        **_scan_columns(p, 2, seed),
        "hpv_latent": round(p.hpv_latent, 5),
        "hpv_status": p.hpv_status,
    }


def simulate_cohort(n_patients: int = 40, n_retest: int = 15, seed: int = 42,
                    **geometry: Any) -> DemoCohort:
    """Draw every planted quantity and the clinical table, without images.

    Fast (milliseconds); :func:`radsurv.synthetic.demo.generate_demo_cohort` renders from its
    result. ``geometry`` keywords are the fields of :class:`Geometry`.
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
        "hpv_status": [p.hpv_status for p in patients],
    })
    truth = pd.DataFrame([_truth_row(p, ev, ad, seed) for p, ev, ad in zip(patients, event, admin)])
    return DemoCohort(seed, geom, patients, clinical, truth, freeze)
