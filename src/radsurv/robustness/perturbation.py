"""Image perturbation for feature robustness when no test-retest scans exist.

Zwanenburg et al. (Sci Rep 2019; 9:614, "Assessing robustness of radiomic
features by image perturbation") showed that a chain of small perturbations of
one CT and its contour (rotation, translation, noise addition, volume
adaptation, contour randomisation) identifies non-robust features about as well
as test-retest imaging. Their measure is ICC(1,1) over the perturbed versions of
each patient's image (k = number of perturbations): the perturbations are drawn
independently per patient, so "perturbation j" is not the same rater across
patients and the one-way model is the right one.

This module makes ``n`` perturbed versions of one *converted* scan (native grid,
HU) and runs each through the workflow's own per-scan preprocessing and
extraction steps (:func:`radsurv.features.scan.preprocessing` and
:func:`radsurv.features.scan.extraction`, i.e. :mod:`radsurv.features.preprocess` and
:func:`radsurv.features.extract.extract`), so the perturbed features are computed
exactly like the modelling features.

One perturbation, in this order (all parameters drawn from the config seed, the
scan id and the perturbation index, so a rerun gives identical values):

1. **Rotation** about the patient's z axis (in-plane, as Zwanenburg et al.),
   by an angle ~ U(-rotation_deg, +rotation_deg), centred on the ROI centroid;
2. **Translation** by a sub-voxel shift ~ U(-t, +t) x target voxel size per
   axis (``t = translation_fraction``; the target voxel is the preprocessing
   spacing): the ROI lands differently on the resampling grid;
   rotation and translation are one rigid transform, applied to the image with
   B-spline interpolation and to the mask as a linearly interpolated
   partial-volume fraction kept at >= 0.5 (as IBSI resamples masks);
3. **Noise addition**: Gaussian noise with the image's own noise SD, estimated
   around the ROI by the median absolute deviation of the finest (HHH) Haar
   wavelet coefficients / 0.6745 (Donoho & Johnstone 1994); the result has
   sqrt(2) times the original noise, like a second, independent acquisition;
4. **Volume adaptation** (erosion / dilation): the ROI grows or shrinks by a
   fraction ~ U(-volume_change, +volume_change) of its volume, by thresholding
   the signed Euclidean distance to its surface (in mm);
5. **Contour randomisation**: a smooth Gaussian random field with SD
   ``contour_sd_mm`` (correlation length ``contour_smoothness_mm``) is added to
   that signed distance before thresholding, so the surface moves in and out
   locally (the volume target of step 4 is kept). Zwanenburg et al. randomise
   contours with supervoxels (SLIC); that needs scikit-image, which radsurv does
   not depend on, so this smooth-field boundary displacement is used instead. It
   perturbs the contour locally by about ``contour_sd_mm`` as an observer would.

Any step can be switched off (range 0 / ``noise: false``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radsurv.errors import CaseError
from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE
from radsurv.schema import default

log = logging.getLogger(__name__)

STAGE = "perturbation"

__all__ = [
    "PerturbationSettings",
    "PerturbationParams",
    "draw_params",
    "estimate_noise_sd",
    "adapt_mask",
    "perturb",
    "perturbed_features",
]


@dataclass(frozen=True)
class PerturbationSettings:
    """``config['robustness']['perturbation']``; defaults from the config schema."""

    n: int = default("robustness", "perturbation", "n")
    rotation_deg: float = default("robustness", "perturbation", "rotation_deg")
    translation_fraction: float = default("robustness", "perturbation", "translation_fraction")
    noise: bool = default("robustness", "perturbation", "noise")
    volume_change: float = default("robustness", "perturbation", "volume_change")
    contour_sd_mm: float = default("robustness", "perturbation", "contour_sd_mm")
    contour_smoothness_mm: float = default("robustness", "perturbation", "contour_smoothness_mm")
    icc_form: str = default("robustness", "perturbation", "icc_form")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> PerturbationSettings:
        cfg = dict(cfg or {})
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"perturbation n must be >= 2 (the ICC needs k >= 2); got {self.n}")
        if not 0 <= self.volume_change < 1:
            raise ValueError(f"volume_change must be in [0, 1); got {self.volume_change}")
        for name in ("rotation_deg", "translation_fraction", "contour_sd_mm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.contour_smoothness_mm <= 0:
            raise ValueError("contour_smoothness_mm must be > 0")


@dataclass(frozen=True)
class PerturbationParams:
    """The drawn parameters of one perturbed version (written beside its features)."""

    index: int
    angle_deg: float  # rotation of the content about the patient z axis through the ROI centroid
    shift_mm: tuple[float, float, float]  # translation of the content (x, y, z, patient mm)
    noise: bool
    volume_change: float
    contour_sd_mm: float
    seed: int  # seed of the noise / contour random fields


def _scan_seed(seed: int, scan_id: str) -> np.random.SeedSequence:
    """A seed sequence unique to (config seed, scan); stable across runs and machines."""
    return np.random.SeedSequence([int(seed), zlib.crc32(scan_id.encode("utf-8"))])


def draw_params(settings: PerturbationSettings, seed: int, scan_id: str,
                spacing_mm: tuple[float, float, float]) -> list[PerturbationParams]:
    """The ``settings.n`` perturbations of one scan; deterministic in (seed, scan_id).

    ``spacing_mm`` is the voxel size of the grid features are computed on (the
    preprocessing spacing), to which the sub-voxel translation refers.
    """
    children = _scan_seed(seed, scan_id).spawn(settings.n)
    out = []
    for j, child in enumerate(children):
        rng = np.random.default_rng(child)
        angle = float(rng.uniform(-1, 1) * settings.rotation_deg)
        shift = tuple(float(rng.uniform(-1, 1) * settings.translation_fraction * s) for s in spacing_mm)
        vol = float(rng.uniform(-1, 1) * settings.volume_change)
        field_seed = int(rng.integers(0, 2**31 - 1))
        out.append(PerturbationParams(j, angle, shift, settings.noise, vol,  # type: ignore[arg-type]
                                      settings.contour_sd_mm, field_seed))
    return out


def _roi_box(mask_arr: np.ndarray, margin_vox: np.ndarray) -> tuple[slice, ...]:
    nz = np.nonzero(mask_arr)
    if nz[0].size == 0:
        raise CaseError(STAGE, "the ROI mask is empty")
    return tuple(slice(max(int(v.min()) - int(m), 0), min(int(v.max()) + int(m) + 1, size))
                 for v, m, size in zip(nz, margin_vox, mask_arr.shape))


def estimate_noise_sd(image: sitk.Image, mask: sitk.Image, margin_mm: float = 20.0) -> float:
    """Noise SD of ``image`` around the ROI: MAD of the HHH Haar coefficients / 0.6745.

    The finest diagonal wavelet band of a smooth image holds almost only noise;
    for white noise of SD s its orthonormal Haar coefficients have SD s, and the
    median absolute value is robust to the few edges (Donoho & Johnstone 1994;
    the estimator Zwanenburg et al. 2019 use for noise addition).
    """
    import pywt

    arr = sitk.GetArrayFromImage(image).astype(float)  # z, y, x
    m = sitk.GetArrayViewFromImage(mask) > 0
    spacing = np.array(image.GetSpacing())[::-1]
    box = _roi_box(m, np.ceil(margin_mm / spacing))
    region = arr[box]
    even = tuple(slice(0, s - s % 2) for s in region.shape)
    region = region[even]
    if min(region.shape) < 2:
        raise CaseError(STAGE, "the region around the ROI is too small to estimate image noise")
    hhh = pywt.dwtn(region, "haar")["ddd"]
    return float(np.median(np.abs(hhh)) / 0.6745)


def adapt_mask(mask_arr: np.ndarray, spacing_zyx: np.ndarray, volume_change: float,
               contour_sd_mm: float, smoothness_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Volume adaptation + contour randomisation of a binary mask (z, y, x array).

    The signed Euclidean distance to the ROI surface (mm, negative inside) plus,
    when ``contour_sd_mm > 0``, a smooth Gaussian random field of that SD is
    ranked, and the ``round((1 + volume_change) * V)`` voxels with the lowest
    values form the new ROI: ``volume_change > 0`` dilates, ``< 0`` erodes, and
    the volume change is exact to a voxel whatever the field.
    """
    m = mask_arr > 0
    n0 = int(m.sum())
    if n0 == 0:
        raise CaseError(STAGE, "the ROI mask is empty")
    if volume_change == 0 and contour_sd_mm == 0:
        return m.astype(np.uint8)
    inside = ndimage.distance_transform_edt(m, sampling=spacing_zyx)
    outside = ndimage.distance_transform_edt(~m, sampling=spacing_zyx)
    sdf = outside - inside  # > 0 outside, < 0 inside, half a voxel from the surface at the boundary
    if contour_sd_mm > 0:
        field = ndimage.gaussian_filter(rng.standard_normal(m.shape), sigma=smoothness_mm / spacing_zyx,
                                        mode="reflect")
        sd = field.std()
        if sd > 0:
            sdf = sdf + field * (contour_sd_mm / sd)
    target = max(1, int(round((1.0 + volume_change) * n0)))
    target = min(target, sdf.size)
    flat = sdf.ravel()
    order = np.argpartition(flat, target - 1)[:target]
    out = np.zeros(flat.shape, dtype=np.uint8)
    out[order] = 1
    return out.reshape(m.shape)


def perturb(image: sitk.Image, mask: sitk.Image, params: PerturbationParams,
            noise_sd: float, settings: PerturbationSettings) -> tuple[sitk.Image, sitk.Image]:
    """One perturbed (image, mask) on the native grid of ``image`` (see the module docstring).

    The output has exactly the input's grid (size, spacing, origin, direction),
    so preprocessing places its resampling grid as it does for the original and
    the perturbation is the only difference. The identity perturbation (angle,
    shift, volume change, contour SD 0; no noise) returns the input unchanged.
    """
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    mask.CopyInformation(image)
    m_arr = sitk.GetArrayViewFromImage(mask)
    if not m_arr.any():
        raise CaseError(STAGE, "the ROI mask is empty")
    spacing = np.array(image.GetSpacing())
    nz = np.array(np.nonzero(m_arr))  # z, y, x
    centroid_idx = nz.mean(axis=1)[::-1]  # x, y, z
    rigid = params.angle_deg != 0 or any(v != 0 for v in params.shift_mm)
    if rigid:
        centre = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in centroid_idx])
        tf = sitk.Euler3DTransform()
        tf.SetCenter(centre)
        # About the physical (patient) z axis: in-plane for axial CT.
        tf.SetRotation(0.0, 0.0, math.radians(params.angle_deg))
        tf.SetTranslation([float(v) for v in params.shift_mm])
        # ``tf`` moves the content; Resample needs the output->input map, its inverse.
        tf = tf.GetInverse()
        fill = float(sitk.GetArrayViewFromImage(image).min())
        img_p = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), image, tf, sitk.sitkBSpline, fill,
                              sitk.sitkFloat32)
        frac = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), mask, tf, sitk.sitkLinear, 0.0,
                             sitk.sitkFloat32)
        m_p = sitk.GetArrayFromImage(frac) >= 0.5
        if not m_p.any():
            raise CaseError(STAGE, "the ROI vanished after rotation/translation")
    else:
        img_p = sitk.Cast(image, sitk.sitkFloat32)
        m_p = sitk.GetArrayFromImage(mask) > 0

    rng = np.random.default_rng(params.seed)
    arr = sitk.GetArrayFromImage(img_p).astype(np.float32)
    if params.noise and noise_sd > 0:
        arr = arr + rng.normal(0.0, noise_sd, arr.shape).astype(np.float32)
    # The contour changes only near the surface: work in the ROI's box plus a margin.
    diag_mm = float(np.linalg.norm((np.ptp(np.array(np.nonzero(m_p)), axis=1) + 1) * spacing[::-1]))
    margin_mm = 0.5 * diag_mm * abs(params.volume_change) + 4.0 * params.contour_sd_mm \
        + 2.0 * settings.contour_smoothness_mm + 2.0 * float(spacing.max())
    box = _roi_box(m_p, np.ceil(margin_mm / spacing[::-1]))
    m_new = np.zeros(m_p.shape, dtype=np.uint8)
    m_new[box] = adapt_mask(m_p[box], spacing[::-1], params.volume_change, params.contour_sd_mm,
                            settings.contour_smoothness_mm, rng)
    out_img = sitk.GetImageFromArray(arr)
    out_img.CopyInformation(image)
    out_mask = sitk.GetImageFromArray(m_new)
    out_mask.CopyInformation(image)
    return out_img, out_mask


def perturbed_features(image_path: str | Path, mask_path: str | Path, scan_id: str, seed: int,
                       settings: PerturbationSettings, preprocessing: Mapping[str, Any],
                       extraction: Mapping[str, Any], patient_id: str = "", session: int = 1) -> dict[str, Any]:
    """Features of ``settings.n`` perturbed versions of one converted scan.

    Each version is written as a converted scan and goes through exactly the
    per-scan steps of the workflow, :func:`radsurv.features.scan.preprocessing` and
    :func:`radsurv.features.scan.extraction` (which call
    :func:`radsurv.features.preprocess.preprocess_files`, :func:`radsurv.features.extract.pyradiomics_params`
    and :func:`radsurv.features.extract.extract`), with the pipeline's own settings, so a
    perturbed copy differs from the real scan only by the perturbation. Returns
    ``{"noise_sd_hu", "perturbations": [{"params", "ok", "reason", "features"}]}``;
    a failing version (e.g. the ROI vanishes) is recorded with its reason and
    does not stop the others.
    """
    from radsurv.features import scan as per_scan
    from radsurv.qc import read_status, write_status

    image = sitk.ReadImage(str(image_path))
    mask = sitk.ReadImage(str(mask_path))
    if image.GetSize() != mask.GetSize():
        raise CaseError(STAGE, f"image size {image.GetSize()} and mask size {mask.GetSize()} differ")
    mask.CopyInformation(image)
    provenance = Path(image_path).parent / "provenance.json"  # conversion's record (stored region)
    # The grid features are computed on: the preprocessing spacing (an axis given as null keeps the scan's).
    target = preprocessing.get("spacing_mm") or [None, None, None]
    grid = tuple(float(o) if t is None else float(t) for o, t in zip(image.GetSpacing(), target))
    params = draw_params(settings, seed, scan_id, grid)  # type: ignore[arg-type]
    noise_sd = estimate_noise_sd(image, mask) if settings.noise else 0.0
    log.info("%s: estimated noise SD %.2f; %d perturbations", scan_id, noise_sd, len(params))
    meta = {"scan_id": scan_id, "patient_id": patient_id, "session": int(session)}
    records = []
    with tempfile.TemporaryDirectory(prefix="radsurv-perturb-") as tmp:
        for p in params:
            rec: dict[str, Any] = {"params": asdict(p), "ok": True, "reason": "", "features": {}}
            conv, pre = Path(tmp) / f"converted_{p.index}", Path(tmp) / f"preprocessed_{p.index}"
            out_json = Path(tmp) / f"features_{p.index}.json"
            try:
                img_p, msk_p = perturb(image, mask, p, noise_sd, settings)
                conv.mkdir()
                sitk.WriteImage(img_p, str(conv / CONVERTED_IMAGE_FILE))  # temporary: uncompressed
                sitk.WriteImage(msk_p, str(conv / CONVERTED_MASK_FILE))
                write_status(conv / "status.json", True, "conversion", "", **meta)
                if provenance.is_file():  # same grid as the input: where it lies in its scan still holds
                    shutil.copy(provenance, conv / "provenance.json")
                per_scan.preprocessing(conv, pre, preprocessing)
                status = read_status(pre / "status.json")
                if status["ok"]:
                    rec["roi_voxels"] = (status.get("summary") or {}).get("roi_voxels")
                per_scan.extraction(pre, out_json, extraction, preprocessing)
                res = json.loads(out_json.read_text())
                if not res["ok"]:
                    raise CaseError(res.get("stage", "extraction"), res["reason"])
                rec["features"] = res["features"]
            except CaseError as err:
                rec.update(ok=False, reason=f"{err.stage}: {err.reason}")
                log.warning("%s perturbation %d failed: %s", scan_id, p.index, rec["reason"])
            except Exception as err:  # noqa: BLE001 - one bad version must not stop the others
                rec.update(ok=False, reason=f"{type(err).__name__}: {err}")
                log.exception("%s perturbation %d failed", scan_id, p.index)
            records.append(rec)
    return {"noise_sd_hu": noise_sd, "perturbations": records}


def write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write a per-scan perturbation / discretisation record (plain JSON, NaN -> null)."""
    def clean(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return float(v) if math.isfinite(float(v)) else None
        if isinstance(v, np.integer):
            return int(v)
        return v

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(clean(payload), sort_keys=True, allow_nan=False))
