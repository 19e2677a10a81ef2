"""Image preprocessing before feature extraction (SimpleITK), the IBSI way.

The steps follow the IBSI reference manual (Zwanenburg et al., Radiology 2020;
arXiv:1612.07003, chapter 2), in its order:

1. *Modality-specific intensity handling* on the scan's own grid. MR: optional
   N4 bias-field correction and z-score or percentile normalisation, both
   estimated inside a body/foreground mask (Otsu); PET: images arrive in SUV
   (body weight; converted at ingestion), and a scan whose ROI values look like
   activity concentrations (Bq/ml) is excluded rather than silently analysed.
2. *Resampling* to the site's voxel size (``spacing_mm``; an axis given as
   ``null`` keeps the scan's spacing, e.g. in-plane only for 2D work) on the
   IBSI grid: the new grid is centred on the original one (pyradiomics aligns
   it on the first voxel's corner instead). The image is interpolated with the
   chosen interpolator and, where the modality's intensities are integers (CT
   in HU), rounded back to integers. The mask is interpolated separately
   (linear by default, as a partial-volume fraction) and kept where the
   fraction is at least ``mask_threshold`` (0.5).
3. *Re-segmentation* of the **intensity mask** only: first a range
   (``resegment_range``, e.g. ``[-1000, 400]`` HU), then outlier filtering
   (``outlier_sigma``: voxels beyond mean +- 3 SD of the range-filtered ROI
   are dropped). The **morphological mask** keeps the contour and is what shape
   features are computed on.

Discretisation (fixed bin size counted from the lower re-segmentation bound,
or fixed bin number) happens inside pyradiomics; see :mod:`radsurv.features.extract`.

For speed, only the part of the new grid that covers the ROI plus a margin is
computed (the grid itself is that of the whole image, so the result is the
same voxels as resampling the whole image and cropping). pyradiomics is then
run with no resampling of its own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radsurv.errors import CaseError

log = logging.getLogger(__name__)

STAGE = "preprocessing"

_INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}
_MASK_INTERPOLATORS = ("linear", "nearest")
MODALITIES = ("CT", "MR", "PET", "other")
NORMALISATIONS = ("none", "zscore", "percentile")

#: What conversion writes (``results/scans/<scan>/converted/``) and preprocessing reads: the
#: scan (whole, or the ROI's neighbourhood: :func:`conversion_margin_mm`) as NRRD with fast
#: (level-1) gzip. A whole 512 x 512 x 100 CT takes 0.3 s to write this way; NIfTI's gzip
#: (SimpleITK ignores the level) took 1.2 s. Preprocessed files stay NIfTI.
CONVERTED_IMAGE_FILE = "image.nrrd"
CONVERTED_MASK_FILE = "mask.nrrd"

#: Room conversion keeps beyond preprocessing's own crop margin when it stores only the
#: ROI's neighbourhood: the perturbation robustness rotates and shifts the converted scan
#: before preprocessing crops it (15 degrees moves a point 50 mm from the ROI centre by 13 mm).
CONVERSION_EXTRA_MARGIN_MM = 40.0


def conversion_margin_mm(modality: str, preprocessing: Mapping[str, Any] | None) -> float | None:
    """How much of a scan conversion stores: the ROI's bounding box plus this margin (mm),
    or ``None`` for the whole scan.

    Everything preprocessing reads lies within ``crop_margin_mm`` of the ROI, except
    whole-image statistics: intensity normalisation and N4 bias-field correction (MR)
    use the whole image's foreground, so MR scans and any config with either switched on
    are stored whole. CT (HU) and PET (SUV) are absolute and stored cropped: a
    512 x 512 x 100 CT is 40 MB of NRRD, its ROI neighbourhood ~1 MB, and reading,
    writing and re-reading the whole scan was a third of the per-scan overhead.
    """
    pre = dict(preprocessing or {})
    normalisation = str(pre.get("normalisation") or "none").lower()
    mr = "MR" in (str(modality).upper(), str(pre.get("modality") or "").upper())
    if mr or normalisation != "none" or bool(pre.get("bias_field_correction")):
        return None
    return float(pre.get("crop_margin_mm", PreprocessSettings.crop_margin_mm)) + CONVERSION_EXTRA_MARGIN_MM


#: File names of a preprocessed scan folder.
IMAGE_FILE = "image.nii.gz"
MORPH_MASK_FILE = "mask.nii.gz"
INTENSITY_MASK_FILE = "mask_intensity.nii.gz"


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class PreprocessSettings:
    """Preprocessing choices of one site (``config['preprocessing']``).

    ``spacing_mm`` ``None`` keeps the scan's grid (no interpolation); an
    element ``None`` keeps that axis' spacing (2D work: ``(2, 2, None)``).
    ``resegment_range`` bounds may be ``None`` (open-ended).
    """

    modality: str = "CT"
    spacing_mm: tuple[float | None, float | None, float | None] | None = (2.0, 2.0, 2.0)
    image_interpolator: str = "linear"
    mask_interpolator: str = "linear"
    mask_threshold: float = 0.5
    round_intensities: bool = True
    resegment_range: tuple[float | None, float | None] | None = None
    outlier_sigma: float | None = None
    crop_margin_mm: float = 20.0
    bias_field_correction: bool = False
    normalisation: str = "none"
    normalisation_percentiles: tuple[float, float] = (1.0, 99.0)
    suv_max_plausible: float | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}")
        if self.image_interpolator not in _INTERPOLATORS:
            raise ValueError(f"image_interpolator must be one of {sorted(_INTERPOLATORS)}")
        if self.mask_interpolator not in _MASK_INTERPOLATORS:
            raise ValueError(f"mask_interpolator must be one of {_MASK_INTERPOLATORS}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}")
        if self.resegment_range is not None:
            lo, hi = self.resegment_range
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError(f"resegment_range {list(self.resegment_range)}: "
                                 "the low bound must be below the high one")
        if self.outlier_sigma is not None and self.outlier_sigma <= 0:
            raise ValueError("outlier_sigma must be positive")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PreprocessSettings:
        """Settings from a ``preprocessing`` block (missing keys take the defaults)."""
        spacing = cfg.get("spacing_mm", cls.spacing_mm)
        reseg = cfg.get("resegment_range")
        pct = cfg.get("normalisation_percentiles", cls.normalisation_percentiles)
        return cls(
            modality=str(cfg.get("modality", cls.modality)),
            spacing_mm=tuple(_opt_float(s) for s in spacing) if spacing is not None else None,  # type: ignore[arg-type]
            image_interpolator=str(cfg.get("image_interpolator", cls.image_interpolator)),
            mask_interpolator=str(cfg.get("mask_interpolator", cls.mask_interpolator)),
            mask_threshold=float(cfg.get("mask_threshold", cls.mask_threshold)),
            round_intensities=bool(cfg.get("round_intensities", cls.round_intensities)),
            resegment_range=tuple(_opt_float(v) for v in reseg) if reseg else None,  # type: ignore[arg-type]
            outlier_sigma=_opt_float(cfg.get("outlier_sigma")),
            crop_margin_mm=float(cfg.get("crop_margin_mm", cls.crop_margin_mm)),
            bias_field_correction=bool(cfg.get("bias_field_correction", False)),
            normalisation=str(cfg.get("normalisation", "none")),
            normalisation_percentiles=tuple(float(p) for p in pct),  # type: ignore[arg-type]
            suv_max_plausible=_opt_float(cfg.get("suv_max_plausible")),
        )

    @property
    def resamples(self) -> bool:
        """Whether any axis is interpolated."""
        return self.spacing_mm is not None and any(s is not None for s in self.spacing_mm)


# ------------------------------------------------------------------- grid
def target_spacing(image: sitk.Image, spacing: Sequence[float | None]) -> tuple[float, ...]:
    """``spacing`` with ``None`` axes replaced by the image's own spacing."""
    return tuple(float(o) if t is None else float(t) for o, t in zip(image.GetSpacing(), spacing))


def centred_grid(image: sitk.Image, spacing: Sequence[float | None],
                 region: Mapping[str, Any] | None = None) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Size and origin of the IBSI grid of ``spacing`` centred on ``image``'s grid.

    With ``n`` voxels of spacing ``s`` resampled to spacing ``t`` the new grid
    has ``ceil(n s / t)`` voxels and both grids share the same centre (IBSI
    manual, section 2.4). An axis whose spacing is ``None`` is kept as is.
    When ``image`` is the stored neighbourhood of a larger scan (``region``:
    ``index`` of its first voxel in the scan and the scan's ``scan_size``, from
    conversion), the grid is centred on the whole scan, as if it had been stored whole.
    """
    size = tuple(region["scan_size"]) if region else image.GetSize()
    offset = tuple(region["index"]) if region else (0, 0, 0)
    old = image.GetSpacing()
    new = target_spacing(image, spacing)
    new_size = tuple(int(math.ceil(n * s / t - 1e-9)) for n, s, t in zip(size, old, new))
    # Continuous index (in the old grid, then in the stored part of it) of the new grid's first voxel centre.
    first = [(n - 1) / 2.0 - (m - 1) / 2.0 * t / s - o for n, m, s, t, o in zip(size, new_size, old, new, offset)]
    origin = image.TransformContinuousIndexToPhysicalPoint(first)
    return new_size, tuple(origin)


def array_bbox(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Index bounding box (inclusive, x/y/z order) of the non-zero voxels of a (z, y, x)
    array, or ``None`` when there are none. Projections instead of ``np.nonzero``, the
    in-plane ones only over the slices between the first and last non-zero one (a tumour
    spans a few of a CT's slices); a boolean array is not copied."""
    arr = np.asarray(arr)
    nonzero = arr if arr.dtype == bool else arr != 0
    zs = np.flatnonzero(nonzero.any(axis=(1, 2)))
    if zs.size == 0:
        return None
    slab = nonzero[zs[0]:zs[-1] + 1]
    ys, xs = (np.flatnonzero(slab.any(axis=axes)) for axes in ((0, 2), (0, 1)))
    return np.array([xs[0], ys[0], zs[0]]), np.array([xs[-1], ys[-1], zs[-1]])


def _mask_bbox(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Index bounding box (inclusive, x/y/z order) of the non-zero mask voxels."""
    box = array_bbox(sitk.GetArrayViewFromImage(mask))
    if box is None:
        raise CaseError(STAGE, "the ROI mask is empty before resampling")
    return box


def _roi_region_on_grid(
    image: sitk.Image,
    mask: sitk.Image,
    grid_size: tuple[int, ...],
    grid_origin: tuple[float, ...],
    spacing: tuple[float, ...],
    margin_mm: float,
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Sub-region of the target grid covering the mask's bounding box plus a margin."""
    lo, hi = _mask_bbox(mask)
    corners = []
    for cx in (lo[0] - 0.5, hi[0] + 0.5):
        for cy in (lo[1] - 0.5, hi[1] + 0.5):
            for cz in (lo[2] - 0.5, hi[2] + 0.5):
                corners.append(mask.TransformContinuousIndexToPhysicalPoint((float(cx), float(cy), float(cz))))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    rel = (np.array(corners) - np.array(grid_origin)) @ direction  # coordinates along grid axes
    idx = rel / np.array(spacing)
    margin = np.array([margin_mm / s for s in spacing])
    start = np.maximum(np.floor(idx.min(axis=0) - margin), 0).astype(int)
    stop = np.minimum(np.ceil(idx.max(axis=0) + margin), np.array(grid_size) - 1).astype(int)
    size = tuple(int(v) for v in (stop - start + 1))
    origin = tuple(float(v) for v in np.array(grid_origin) + direction @ (start * np.array(spacing)))
    return size, origin


# ------------------------------------------------------- modality handling
def foreground_mask(image: sitk.Image) -> sitk.Image:
    """Body/foreground mask of an MR image: Otsu threshold, largest component, holes filled."""
    fg = sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1, 200)
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(fg), sortByObjectSize=True)
    fg = sitk.Cast(cc == 1, sitk.sitkUInt8)
    fg = sitk.BinaryFillhole(fg)
    return fg


def n4_correct(image: sitk.Image, fg: sitk.Image, shrink: int = 4,
               iterations: Sequence[int] = (50, 50, 30)) -> sitk.Image:
    """N4 bias-field correction (Tustison 2010) estimated inside ``fg``; returns float32.

    The field is fitted on a ``shrink``-times down-sampled copy (as ANTs does)
    and applied at full resolution via the log bias field.
    """
    img = sitk.Cast(image, sitk.sitkFloat32)
    arr = sitk.GetArrayViewFromImage(img)
    if float(arr.min()) <= 0:  # N4 works on log intensities
        img = img - float(arr.min()) + 1.0
    small = sitk.Shrink(img, [shrink] * img.GetDimension())
    small_fg = sitk.Shrink(fg, [shrink] * img.GetDimension())
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(iterations))
    n4.Execute(small, small_fg)
    log_field = n4.GetLogBiasFieldAsImage(img)
    return sitk.Cast(img / sitk.Exp(log_field), sitk.sitkFloat32)


def normalise(image: sitk.Image, fg: sitk.Image, method: str,
              percentiles: tuple[float, float] = (1.0, 99.0)) -> sitk.Image:
    """Intensity normalisation with statistics of the foreground ``fg``.

    ``zscore``: (x - mean) / SD; ``percentile``: (x - p_low) / (p_high - p_low),
    so the foreground's ``percentiles`` map to 0 and 1.
    """
    img = sitk.Cast(image, sitk.sitkFloat32)
    if method == "none":
        return img
    arr = sitk.GetArrayFromImage(img)
    vals = arr[sitk.GetArrayViewFromImage(fg) > 0]
    if vals.size < 10:
        raise CaseError(STAGE, "the foreground (body) mask for intensity normalisation is empty")
    if method == "zscore":
        centre, scale = float(vals.mean()), float(vals.std())
    elif method == "percentile":
        lo, hi = np.percentile(vals, percentiles)
        centre, scale = float(lo), float(hi - lo)
    else:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}")
    if not scale > 0:
        raise CaseError(STAGE, f"{method} normalisation impossible: the foreground has no intensity spread")
    out = sitk.GetImageFromArray(((arr - centre) / scale).astype(np.float32))
    out.CopyInformation(img)
    return out


# ---------------------------------------------------------------- resampling
def resample(image: sitk.Image, mask: sitk.Image, settings: PreprocessSettings,
             region: Mapping[str, Any] | None = None) -> tuple[sitk.Image, sitk.Image]:
    """Resample ``image`` and ``mask`` onto the site's (cropped) IBSI grid.

    Returns the float32 image (rounded when configured) and the uint8 {0, 1}
    morphological mask on exactly the same grid. ``region``: see :func:`centred_grid`
    (its ``scan_min`` is the value outside the scan, as for a scan stored whole).
    """
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    mask.CopyInformation(image)
    if not settings.resamples:
        spacing = tuple(image.GetSpacing())
        grid_size, grid_origin = tuple(image.GetSize()), tuple(image.GetOrigin())
        interp = mask_interp = sitk.sitkNearestNeighbor  # same grid: no interpolation happens
    else:
        spacing = target_spacing(image, settings.spacing_mm)  # type: ignore[arg-type]
        grid_size, grid_origin = centred_grid(image, spacing, region)
        interp = _INTERPOLATORS[settings.image_interpolator]
        mask_interp = _INTERPOLATORS[settings.mask_interpolator]
    size, origin = _roi_region_on_grid(image, mask, grid_size, grid_origin, spacing, settings.crop_margin_mm)
    direction = image.GetDirection()
    fill = float(region["scan_min"]) if region and "scan_min" in region else \
        float(sitk.GetArrayViewFromImage(image).min())
    out_img = sitk.Resample(
        sitk.Cast(image, sitk.sitkFloat32), size, sitk.Transform(), interp,
        origin, spacing, direction, fill, sitk.sitkFloat32,
    )
    if settings.round_intensities and settings.resamples:
        out_img = sitk.Round(out_img)
    frac = sitk.Resample(
        sitk.Cast(mask, sitk.sitkFloat32), size, sitk.Transform(), mask_interp,
        origin, spacing, direction, 0.0, sitk.sitkFloat32,
    )
    out_mask = sitk.Cast(frac >= settings.mask_threshold, sitk.sitkUInt8)
    n = int(sitk.GetArrayViewFromImage(out_mask).sum())
    if n == 0:
        raise CaseError(STAGE, "the ROI vanished after resampling (no voxel reaches the "
                        f"partial-volume threshold {settings.mask_threshold}); the ROI is smaller "
                        "than the target voxel size")
    log.info("resampled to spacing %s: region %s voxels, ROI %d voxels", spacing, size, n)
    return out_img, out_mask


# ----------------------------------------------------------- re-segmentation
def resegment(image: sitk.Image, morph_mask: sitk.Image, resegment_range: Sequence[float | None] | None,
              outlier_sigma: float | None) -> sitk.Image:
    """The IBSI intensity mask: ``morph_mask`` after range, then outlier, re-segmentation.

    Range: voxels with intensities outside ``[low, high]`` (inclusive bounds;
    ``None`` = open) leave the mask. Outlier filtering then drops voxels
    outside mean +- ``outlier_sigma`` x SD (population SD), the statistics
    being taken over the range-filtered ROI (IBSI manual, section 2.5).
    """
    arr = sitk.GetArrayViewFromImage(image)
    keep = sitk.GetArrayFromImage(morph_mask) > 0
    if resegment_range is not None:
        lo, hi = resegment_range
        if lo is not None:
            keep &= arr >= lo
        if hi is not None:
            keep &= arr <= hi
    if outlier_sigma is not None and keep.any():
        vals = arr[keep].astype(np.float64)
        mu, sd = vals.mean(), vals.std()
        keep &= (arr >= mu - outlier_sigma * sd) & (arr <= mu + outlier_sigma * sd)
    if not keep.any():
        raise CaseError(STAGE, f"no ROI voxel is left after re-segmentation (range {resegment_range}, "
                        f"outlier filter {outlier_sigma} SD): check the site's intensity range")
    out = sitk.GetImageFromArray(keep.astype(np.uint8))
    out.CopyInformation(morph_mask)
    return out


def _check_suv(image: sitk.Image, mask: sitk.Image, limit: float) -> None:
    vals = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) > 0]
    top = float(vals.max())
    if top > limit:
        raise CaseError(STAGE, f"PET values in the ROI reach {top:.4g}, above the plausible SUV maximum {limit:g}: "
                        "the image looks like activity concentration (Bq/ml), not SUV; convert it to SUV first")


def preprocess_all(image: sitk.Image, mask: sitk.Image, settings: PreprocessSettings,
                   region: Mapping[str, Any] | None = None) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """Every preprocessing step; returns ``(image, morphological mask, intensity mask)``."""
    if settings.modality == "MR" and (settings.bias_field_correction or settings.normalisation != "none"):
        fg = foreground_mask(image)
        if settings.bias_field_correction:
            image = n4_correct(image, fg)
        image = normalise(image, fg, settings.normalisation, settings.normalisation_percentiles)
    out_img, morph = resample(image, mask, settings, region)
    if settings.modality == "PET" and settings.suv_max_plausible is not None:
        _check_suv(out_img, morph, settings.suv_max_plausible)
    if settings.resegment_range is None and settings.outlier_sigma is None:
        intensity = morph
    else:
        intensity = resegment(out_img, morph, settings.resegment_range, settings.outlier_sigma)
    return out_img, morph, intensity


def preprocess(image: sitk.Image, mask: sitk.Image, settings: PreprocessSettings) -> tuple[sitk.Image, sitk.Image]:
    """Resampled image and morphological mask (see :func:`preprocess_all` for the intensity mask)."""
    out_img, morph, _ = preprocess_all(image, mask, settings)
    return out_img, morph


def preprocess_files(image_in: str | Path, mask_in: str | Path, image_out: str | Path,
                     mask_out: str | Path, settings: PreprocessSettings,
                     intensity_mask_out: str | Path | None = None,
                     region: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """File-level wrapper of :func:`preprocess_all`; returns a summary for the status file.

    ``region``: where the input lies in its scan when conversion stored only the ROI's
    neighbourhood (``stored_region`` of its provenance.json; see :func:`centred_grid`).

    ``mask_out`` receives the morphological mask, ``intensity_mask_out`` (by
    default ``mask_intensity.nii.gz`` beside ``mask_out``) the re-segmented one.
    """
    image = sitk.ReadImage(str(image_in))
    mask = sitk.ReadImage(str(mask_in))
    if image.GetSize() != mask.GetSize():
        raise CaseError(STAGE, f"image size {image.GetSize()} and mask size {mask.GetSize()} differ")
    mask.CopyInformation(image)
    out_img, morph, intensity = preprocess_all(image, mask, settings, region)
    if intensity_mask_out is None:
        intensity_mask_out = Path(mask_out).parent / INTENSITY_MASK_FILE
    for p in (image_out, mask_out, intensity_mask_out):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(out_img, str(image_out), useCompression=True)
    sitk.WriteImage(morph, str(mask_out), useCompression=True)
    sitk.WriteImage(intensity, str(intensity_mask_out), useCompression=True)
    vals = sitk.GetArrayViewFromImage(out_img)[sitk.GetArrayViewFromImage(intensity) > 0]
    return {
        "spacing_mm": list(out_img.GetSpacing()),
        "size": list(out_img.GetSize()),
        "roi_voxels": int(sitk.GetArrayViewFromImage(morph).sum()),
        "intensity_roi_voxels": int(vals.size),
        "intensity_min": float(vals.min()),
        "intensity_max": float(vals.max()),
        "resegment_range": list(settings.resegment_range) if settings.resegment_range else None,
        "outlier_sigma": settings.outlier_sigma,
    }
