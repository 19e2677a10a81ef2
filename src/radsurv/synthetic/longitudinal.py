"""A longitudinal synthetic cohort (MR-Linac / daily-CBCT-like) for delta radiomics (issue #18).

Each patient has a planning scan (day 0), weekly on-treatment scans (``fx5`` day ~7, ``fx10``
~14, ``fx15`` ~21, ``fx20`` ~28) and a post-treatment scan (~day 49); a few patients have a
test-retest planning scan 1-2 days after the first. One patient misses a fraction (no
``fx15`` scan). Three ROIs are planted per scan: the tumour (``GTV``) and both parotids
(``Parotid_L``, ``Parotid_R``).

Planted model (patient ``i`` draws from ``default_rng([seed, i, stream])``: stream 0 patient,
stream 1 + k the k-th scan):

* tumour: baseline volume log-normal (median 25 ml); response ``r`` ~ Beta(2, 2.5) x 0.6 is the
  fraction of volume lost by fx20 (linear in time, 1.1 r by post); heterogeneity (texture SD,
  HU) h(t) = h0 (1 - 0.6 r t/28) (texture smooths as the tumour responds);
* parotids: baseline volume ~ 22 ml each; shrink linearly with the mean parotid dose
  ``dose`` ~ U(10, 45) Gy: volume fraction lost by fx20 = 0.006 x dose; xerostomia
  (grade >= 2) with probability logistic(-3 + 0.1 x dose_loss_percent);
* survival (months from the planning scan): Weibull, log hazard
  0.3 z(log V0) + 1.2 z(-r) + 0.2 z(h0); administrative censoring at a data freeze;
* every scan: a random rigid shift (1-4 mm), a smooth sinusoidal deformation (1-2.5 mm), noise
  SD 8-15 HU; the tumour contour is missing on the fx15 scans of every third patient and the
  left parotid contour on the fx5 scans of every fourth patient (the truth masks always exist).

:func:`simulate_longitudinal` draws the cohort (no images); :func:`render_scan` gives one scan's
image and true masks (SimpleITK images); :func:`write_longitudinal_cohort` writes NIfTI images,
the contours that exist, the true masks, an image sheet (``images.tsv``: ``days_from_first``,
``session``, ``fraction``, ``timepoint``), ``clinical.tsv`` and ``truth.tsv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "LongGeometry",
    "LongPatient",
    "LongScan",
    "TIMEPOINT_DAYS",
    "render_scan",
    "simulate_longitudinal",
    "write_longitudinal_cohort",
]

#: planted time points: name -> (nominal day, fraction number)
TIMEPOINT_DAYS: dict[str, tuple[int, int]] = {
    "planning": (0, 0), "fx5": (7, 5), "fx10": (14, 10), "fx15": (21, 15), "fx20": (28, 20), "post": (49, 30)}
ROI_NAMES = ("GTV", "Parotid_L", "Parotid_R")
HU_AIR, HU_FAT, HU_SOFT, HU_BONE = -1000.0, -100.0, 30.0, 700.0
HU_TUMOUR, HU_PAROTID = 110.0, -30.0
BODY_SEMI = (70.0, 58.0)
PAROTID_CENTRE = (44.0, 14.0, 0.0)
DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class LongGeometry:
    """The scan grid: ``size`` (x, y, z) voxels of ``spacing`` mm, centred on the origin."""

    size: tuple[int, int, int] = (80, 80, 40)
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.5)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple((np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(self.size, self.spacing, strict=True))

    def origin(self) -> tuple[float, float, float]:
        return tuple(float(a[0]) for a in self.axes())


@dataclass(frozen=True)
class LongScan:
    """One planted scan: its true time point (or ``retest``), day, fraction and motion."""

    scan_id: str
    timepoint: str
    role: str  # "timepoint" | "retest"
    day: int
    fraction: int
    t_frac: float  # treatment progress (0 planning, 1 at fx20)
    shift_mm: tuple[float, float, float]
    deform_mm: float
    deform_phase: tuple[float, float, float]
    noise_hu: float
    own_contours: tuple[str, ...]


@dataclass(frozen=True)
class LongPatient:
    """All planted quantities of one patient."""

    index: int
    patient_id: str
    gtv_volume_ml: float
    gtv_centre_mm: tuple[float, float, float]
    gtv_shape: tuple[float, float, float]
    response: float
    heterogeneity_hu: float
    parotid_volume_ml: float
    parotid_dose_gy: float
    xerostomia: int
    os_months: float
    os_event: int
    blobs: np.ndarray  # (n, 5) centre in the tumour's unit frame, sigma (unit), weight
    scans: tuple[LongScan, ...] = field(default_factory=tuple)


def _semi(volume_ml: float, shape: tuple[float, float, float]) -> np.ndarray:
    r = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    return r * np.asarray(shape)


def gtv_volume(p: LongPatient, t_frac: float) -> float:
    """Planted GTV volume (ml) at treatment progress ``t_frac``."""
    return p.gtv_volume_ml * max(0.05, 1.0 - p.response * t_frac)


def parotid_volume(p: LongPatient, t_frac: float) -> float:
    """Planted volume (ml) of each parotid at treatment progress ``t_frac``."""
    return p.parotid_volume_ml * (1.0 - 0.006 * p.parotid_dose_gy * t_frac)


def _draw_scans(seed: int, i: int, pid: str, retest: bool, miss: str | None) -> tuple[LongScan, ...]:
    scans = []
    plan = [(tp, "timepoint") for tp in TIMEPOINT_DAYS if tp != miss]
    if retest:
        plan.insert(1, ("planning", "retest"))
    for k, (tp, role) in enumerate(plan):
        rng = np.random.default_rng([seed, i, 1 + k])
        day0, fx = TIMEPOINT_DAYS[tp]
        day = int(rng.integers(1, 3)) if role == "retest" else day0 + (int(rng.integers(-1, 2)) if day0 else 0)
        t_frac = 0.0 if tp == "planning" else (1.1 if tp == "post" else fx / 20.0)
        d = rng.normal(size=3)
        shift = d / np.linalg.norm(d) * rng.uniform(1.0, 4.0)
        own = tuple(r for r in ROI_NAMES
                    if not (r == "GTV" and tp == "fx15" and i % 3 == 0)
                    and not (r == "Parotid_L" and tp == "fx5" and i % 4 == 1))
        scans.append(LongScan(f"{pid}_S{k + 1}", tp, role, day, fx if role == "timepoint" else 0, t_frac,
                              tuple(float(v) for v in shift), float(rng.uniform(1.0, 2.5)),
                              tuple(float(v) for v in rng.uniform(0, 2 * math.pi, 3)),
                              float(rng.uniform(8.0, 15.0)), own))
    return tuple(scans)


def simulate_longitudinal(n_patients: int = 40, n_retest: int = 8, seed: int = 7,
                          freeze_months: float = 48.0) -> list[LongPatient]:
    """The planted cohort (no images). Patient 1 (index 1) misses fx15; the first ``n_retest``
    patients have a test-retest planning scan."""
    pats = []
    for i in range(n_patients):
        rng = np.random.default_rng([seed, i, 0])
        vol = float(np.exp(np.clip(rng.normal(math.log(25.0), 0.35), math.log(10), math.log(45))))
        shape = np.exp(rng.normal(0.0, 0.1, 3))
        shape /= np.prod(shape) ** (1 / 3)
        centre = (float(rng.uniform(-8, 8)), float(rng.uniform(-14, -4)), float(rng.uniform(-4, 4)))
        resp = float(0.6 * rng.beta(2.0, 2.5))
        z_het = float(np.clip(rng.normal(), -2.5, 2.5))
        het = 25.0 * math.exp(0.3 * z_het)
        pvol = float(rng.uniform(18.0, 26.0))
        dose = float(rng.uniform(10.0, 45.0))
        loss_pct = 100.0 * 0.006 * dose
        xero = int(rng.uniform() < 1.0 / (1.0 + math.exp(-(-3.0 + 0.1 * loss_pct))))
        lp = 0.3 * (math.log(vol) - math.log(25.0)) / 0.35 + 1.2 * -(resp - 0.267) / 0.12 + 0.2 * z_het
        lam = math.log(2.0) / 24.0**1.3
        t_event = (float(rng.exponential()) / (lam * math.exp(lp))) ** (1 / 1.3)
        follow = freeze_months - float(rng.uniform(0.0, 24.0))
        blobs = np.column_stack([rng.uniform(-0.7, 0.7, (10, 3)), rng.uniform(0.2, 0.35, 10), rng.normal(size=10)])
        pid = f"LONG-{i + 1:03d}"
        scans = _draw_scans(seed, i, pid, i < n_retest, "fx15" if i == 1 else None)
        pats.append(LongPatient(i, pid, vol, centre, tuple(float(s) for s in shape), resp, het, pvol, dose, xero,
                                float(min(t_event, follow)), int(t_event <= follow), blobs, scans))
    return pats


def _ellipsoid_r2(px: np.ndarray, py: np.ndarray, pz: np.ndarray, c: tuple[float, float, float],
                  semi: np.ndarray) -> np.ndarray:
    return ((px - c[0]) / semi[0]) ** 2 + ((py - c[1]) / semi[1]) ** 2 + ((pz - c[2]) / semi[2]) ** 2


def _anatomy_coords(scan: LongScan, geom: LongGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient (reference) coordinates of every voxel of the scan: undo the shift and deformation."""
    x, y, z = geom.axes()
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    a, (p1, p2, p3), lam = scan.deform_mm, scan.deform_phase, 120.0
    px = X - scan.shift_mm[0] - a * np.sin(2 * math.pi * Y / lam + p1)
    py = Y - scan.shift_mm[1] - a * np.sin(2 * math.pi * Z / lam + p2)
    pz = Z - scan.shift_mm[2] - a * np.sin(2 * math.pi * X / lam + p3)
    return px, py, pz


def _edge(r2: np.ndarray, semi_min: float, width_mm: float = 0.7) -> np.ndarray:
    """Occupancy in [0, 1] with a soft edge of ``width_mm`` (partial volume)."""
    d = (np.sqrt(r2) - 1.0) * semi_min
    return 1.0 / (1.0 + np.exp(d / (width_mm / 2.0)))


def render_scan(p: LongPatient, scan: LongScan, geom: LongGeometry, seed: int = 7) -> tuple[object, dict[str, object]]:
    """The scan's image (SimpleITK, HU, float32) and the true mask of each ROI (UInt8, same grid)."""
    import SimpleITK as sitk

    px, py, pz = _anatomy_coords(scan, geom)
    body = _edge((px / BODY_SEMI[0]) ** 2 + (py / BODY_SEMI[1]) ** 2, BODY_SEMI[1])
    inner = _edge((px / (BODY_SEMI[0] - 6)) ** 2 + (py / (BODY_SEMI[1] - 6)) ** 2, BODY_SEMI[1] - 6)
    img = HU_AIR * (1 - body) + HU_FAT * body
    soft = (HU_SOFT + 12.0 * np.sin(px / 9.0) * np.cos(py / 11.0) + 12.0 * np.sin(pz / 6.0 + py / 10.0)
            + 8.0 * np.sin(pz / 13.0 + px / 17.0))
    img = img * (1 - inner) + soft * inner
    spine = _edge(((px) / 12.0) ** 2 + ((py - 34.0) / 12.0) ** 2, 12.0)
    vertebrae = HU_SOFT + (HU_BONE - HU_SOFT) * (0.5 + 0.5 * np.tanh(4.0 * np.cos(2 * math.pi * pz / 24.0)))
    img = img * (1 - spine) + vertebrae * spine
    masks = {}
    semi_p = _semi(parotid_volume(p, scan.t_frac), (0.8, 1.0, 1.25))
    for name, sgn in (("Parotid_L", 1.0), ("Parotid_R", -1.0)):
        c = (sgn * PAROTID_CENTRE[0], PAROTID_CENTRE[1], PAROTID_CENTRE[2])
        r2 = _ellipsoid_r2(px, py, pz, c, semi_p)
        occ = _edge(r2, float(semi_p.min()))
        img = img * (1 - occ) + (HU_PAROTID + 10.0 * np.sin(pz / 4.0)) * occ
        masks[name] = r2 <= 1.0
    semi_t = _semi(gtv_volume(p, scan.t_frac), p.gtv_shape)
    r2 = _ellipsoid_r2(px, py, pz, p.gtv_centre_mm, semi_t)
    occ = _edge(r2, float(semi_t.min()))
    u = np.stack([(px - p.gtv_centre_mm[0]) / semi_t[0], (py - p.gtv_centre_mm[1]) / semi_t[1],
                  (pz - p.gtv_centre_mm[2]) / semi_t[2]], axis=-1)
    tex = np.zeros(px.shape)
    for b in p.blobs:
        tex += b[4] * np.exp(-np.sum((u - b[:3]) ** 2, axis=-1) / (2 * b[3] ** 2))
    het = p.heterogeneity_hu * (1.0 - 0.6 * p.response * min(scan.t_frac, 1.0))
    img = img * (1 - occ) + (HU_TUMOUR + het * tex / 0.8) * occ
    masks["GTV"] = r2 <= 1.0
    k = int(scan.scan_id.rsplit("_S", 1)[1])
    img = img + np.random.default_rng([seed, p.index, 100 + k]).normal(0.0, scan.noise_hu, img.shape)
    out = sitk.GetImageFromArray(img.astype(np.float32))
    out.SetSpacing(geom.spacing)
    out.SetOrigin(geom.origin())
    mout = {}
    for name in ROI_NAMES:
        m = sitk.GetImageFromArray(masks[name].astype(np.uint8))
        m.CopyInformation(out)
        mout[name] = m
    return out, mout


def truth_table(patients: list[LongPatient]) -> pd.DataFrame:
    """One row per scan: true time point, role, day, fraction, planted volumes and contours present."""
    rows = []
    for p in patients:
        for s in p.scans:
            rows.append({"patient_id": p.patient_id, "scan_id": s.scan_id, "timepoint": s.timepoint, "role": s.role,
                         "days_from_first": s.day, "fraction": s.fraction, "t_frac": s.t_frac,
                         "gtv_volume_ml": gtv_volume(p, s.t_frac), "parotid_volume_ml": parotid_volume(p, s.t_frac),
                         "response": p.response, "parotid_dose_gy": p.parotid_dose_gy,
                         "own_contours": ";".join(s.own_contours)})
    return pd.DataFrame(rows)


def clinical_table(patients: list[LongPatient]) -> pd.DataFrame:
    """Outcomes: overall survival (months from planning) and xerostomia."""
    return pd.DataFrame([{"patient_id": p.patient_id, "os_months": round(p.os_months, 4), "os_event": p.os_event,
                          "xerostomia": p.xerostomia} for p in patients])


def write_longitudinal_cohort(out_dir: str | Path, n_patients: int = 40, n_retest: int = 8, seed: int = 7,
                              geometry: LongGeometry | None = None, only: Sequence[str] | None = None
                              ) -> dict[str, Path]:
    """Write the cohort under ``out_dir``: ``images/<scan>.nii.gz``, ``contours/<scan>__<ROI>.nii.gz``
    (only the contours that exist), ``truth/<scan>__<ROI>.nii.gz`` (all), ``images.tsv``,
    ``contours.tsv``, ``clinical.tsv``, ``truth.tsv``. ``only``: write the scans of these time
    points only (a faster cohort for a two-time-point study; ``truth.tsv`` lists the written
    scans). Returns the table paths."""
    import SimpleITK as sitk

    geom = geometry or LongGeometry()
    out = Path(out_dir)
    for sub in ("images", "contours", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    pats = simulate_longitudinal(n_patients, n_retest, seed)
    sheet, contours = [], []
    for p in pats:
        n = 0
        for s in p.scans:
            if only is not None and s.timepoint not in only:
                continue
            n += 1
            img, masks = render_scan(p, s, geom, seed)
            sitk.WriteImage(img, str(out / "images" / f"{s.scan_id}.nii.gz"), useCompression=True)
            sheet.append({"patient_id": p.patient_id, "scan_id": s.scan_id, "image": f"images/{s.scan_id}.nii.gz",
                          "modality": "CT", "session": n, "days_from_first": s.day, "fraction": s.fraction,
                          "timepoint": "retest" if s.role == "retest" else s.timepoint})
            for roi, m in masks.items():
                sitk.WriteImage(m, str(out / "truth" / f"{s.scan_id}__{roi}.nii.gz"), useCompression=True)
                if roi in s.own_contours:
                    sitk.WriteImage(m, str(out / "contours" / f"{s.scan_id}__{roi}.nii.gz"), useCompression=True)
                    contours.append({"scan_id": s.scan_id, "structure": roi,
                                     "mask": f"contours/{s.scan_id}__{roi}.nii.gz"})
    paths = {"images": out / "images.tsv", "contours": out / "contours.tsv", "clinical": out / "clinical.tsv",
             "truth": out / "truth.tsv"}
    pd.DataFrame(sheet).to_csv(paths["images"], sep="\t", index=False)
    pd.DataFrame(contours).to_csv(paths["contours"], sep="\t", index=False)
    clinical_table(pats).to_csv(paths["clinical"], sep="\t", index=False)
    truth = truth_table(pats)
    truth = truth[truth["scan_id"].isin([r["scan_id"] for r in sheet])]
    truth.to_csv(paths["truth"], sep="\t", index=False)
    return paths
