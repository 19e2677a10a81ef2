"""Image preprocessing before feature extraction (SimpleITK).

Resampling follows the IBSI reference manual (Zwanenburg et al. 2020, ch. 2.4):

* the new grid is centred on the original grid (not aligned on the first
  voxel's corner as pyradiomics does): with ``n`` voxels of spacing ``s``
  resampled to spacing ``t``, the new grid has ``ceil(n s / t)`` voxels and
  both grids share the same centre;
* the image is interpolated (linear or B-spline) and, where the modality's
  intensities are integers (CT in HU), rounded back to integers;
* the mask is interpolated *linearly* as a partial-volume fraction and kept
  where the fraction is at least ``mask_threshold`` (0.5).

For speed, only the part of the new grid that covers the ROI plus a margin is
computed (the grid itself is that of the whole image, so the result is the
same voxels as resampling the whole image and cropping). pyradiomics is then
run with no resampling of its own.
"""

from __future__ import annotations

import logging
import math
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


@dataclass(frozen=True)
class PreprocessSettings:
    """Preprocessing choices of one site (``config['preprocessing']``)."""

    spacing_mm: tuple[float, float, float] | None = (2.0, 2.0, 2.0)
    image_interpolator: str = "linear"
    mask_threshold: float = 0.5
    round_intensities: bool = True
    crop_margin_mm: float = 20.0

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> PreprocessSettings:
        spacing = cfg.get("spacing_mm")
        return cls(
            spacing_mm=tuple(float(s) for s in spacing) if spacing else None,  # type: ignore[arg-type]
            image_interpolator=str(cfg.get("image_interpolator", "linear")),
            mask_threshold=float(cfg.get("mask_threshold", 0.5)),
            round_intensities=bool(cfg.get("round_intensities", True)),
            crop_margin_mm=float(cfg.get("crop_margin_mm", 20.0)),
        )


def centred_grid(image: sitk.Image, spacing: tuple[float, float, float]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Size and origin of the IBSI grid of ``spacing`` centred on ``image``'s grid."""
    size = image.GetSize()
    old = image.GetSpacing()
    new_size = tuple(int(math.ceil(n * s / t)) for n, s, t in zip(size, old, spacing))
    # Continuous index (in the old grid) of the new grid's first voxel centre.
    first = [(n - 1) / 2.0 - (m - 1) / 2.0 * t / s for n, m, s, t in zip(size, new_size, old, spacing)]
    origin = image.TransformContinuousIndexToPhysicalPoint(first)
    return new_size, tuple(origin)


def _mask_bbox(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Index bounding box (inclusive, x/y/z order) of the non-zero mask voxels."""
    arr = sitk.GetArrayViewFromImage(mask)  # z, y, x
    nz = np.nonzero(arr)
    if nz[0].size == 0:
        raise CaseError(STAGE, "the ROI mask is empty before resampling")
    lo = np.array([nz[2].min(), nz[1].min(), nz[0].min()])
    hi = np.array([nz[2].max(), nz[1].max(), nz[0].max()])
    return lo, hi


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


def preprocess(image: sitk.Image, mask: sitk.Image, settings: PreprocessSettings) -> tuple[sitk.Image, sitk.Image]:
    """Resample ``image`` and ``mask`` to the site's grid; return (image, mask).

    The image comes back as float32 (rounded to integers when configured), the
    mask as uint8 {0, 1} on exactly the same grid.
    """
    if settings.image_interpolator not in _INTERPOLATORS:
        raise ValueError(f"image_interpolator must be one of {sorted(_INTERPOLATORS)}")
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    mask.CopyInformation(image)
    if settings.spacing_mm is None:
        spacing = tuple(image.GetSpacing())
        grid_size, grid_origin = tuple(image.GetSize()), tuple(image.GetOrigin())
        interp = sitk.sitkNearestNeighbor  # same grid: no interpolation happens
    else:
        spacing = tuple(settings.spacing_mm)
        grid_size, grid_origin = centred_grid(image, spacing)  # type: ignore[arg-type]
        interp = _INTERPOLATORS[settings.image_interpolator]
    size, origin = _roi_region_on_grid(image, mask, grid_size, grid_origin, spacing, settings.crop_margin_mm)
    direction = image.GetDirection()
    fill = float(sitk.GetArrayViewFromImage(image).min())
    out_img = sitk.Resample(
        sitk.Cast(image, sitk.sitkFloat32), size, sitk.Transform(), interp,
        origin, spacing, direction, fill, sitk.sitkFloat32,
    )
    if settings.round_intensities and settings.spacing_mm is not None:
        out_img = sitk.Round(out_img)
    frac = sitk.Resample(
        sitk.Cast(mask, sitk.sitkFloat32), size, sitk.Transform(),
        sitk.sitkLinear if settings.spacing_mm is not None else sitk.sitkNearestNeighbor,
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


def preprocess_files(image_in: str | Path, mask_in: str | Path, image_out: str | Path,
                     mask_out: str | Path, settings: PreprocessSettings) -> dict[str, Any]:
    """File-level wrapper of :func:`preprocess`; returns a summary for the status file."""
    image = sitk.ReadImage(str(image_in))
    mask = sitk.ReadImage(str(mask_in))
    if image.GetSize() != mask.GetSize():
        raise CaseError(STAGE, f"image size {image.GetSize()} and mask size {mask.GetSize()} differ")
    mask.CopyInformation(image)
    out_img, out_mask = preprocess(image, mask, settings)
    for p in (image_out, mask_out):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(out_img, str(image_out), useCompression=True)
    sitk.WriteImage(out_mask, str(mask_out), useCompression=True)
    return {
        "spacing_mm": list(out_img.GetSpacing()),
        "size": list(out_img.GetSize()),
        "roi_voxels": int(sitk.GetArrayViewFromImage(out_mask).sum()),
    }
