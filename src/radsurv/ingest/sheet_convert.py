"""Conversion of one image-sheet row: an image file and its mask file on the same voxel grid.

The pre-converted route of :mod:`radsurv.ingest.sheet`: :func:`convert_sheet_scan`
checks that image and mask share one voxel grid (never a silent resample), selects
the ROI's voxels and writes the same converted image and mask files as DICOM
conversion (:func:`radsurv.ingest.converted.write_image_and_mask`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radsurv.errors import CaseError
from radsurv.ingest.converted import files_sha256, write_image_and_mask
from radsurv.ingest.records import STAGE_CONVERSION, ScanRecord, shown_file

log = logging.getLogger(__name__)


def _same_grid(a: sitk.Image, b: sitk.Image) -> str:
    """'' when ``a`` and ``b`` share one voxel grid, else what differs (in words)."""
    if a.GetSize() != b.GetSize():
        return f"size {a.GetSize()} vs {b.GetSize()} voxels"
    sp_a, sp_b = np.array(a.GetSpacing()), np.array(b.GetSpacing())
    if not np.allclose(sp_a, sp_b, rtol=1e-4, atol=1e-5):
        return f"spacing {tuple(np.round(sp_a, 4))} vs {tuple(np.round(sp_b, 4))} mm"
    if not np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4):
        return "orientation (direction cosines) differs"
    shift = np.abs(np.array(a.GetOrigin()) - np.array(b.GetOrigin()))
    if (shift > 0.01 * sp_a.min() + 1e-4).any():
        return f"origin differs by up to {shift.max():.3f} mm"
    return ""


def convert_sheet_scan(scan: ScanRecord, image_out: Path, mask_out: Path,
                       crop_margin_mm: float | None = None) -> dict[str, Any]:
    """Check and copy one sheet row's image + mask to NIfTI; return its provenance.

    The mask must be on the image's voxel grid (size, spacing, orientation and
    origin within 1 % of a voxel); it is never resampled. ``mask_label`` > 0
    selects one label of a multi-label mask, else every non-zero voxel is the
    ROI; a fractional (non-integer) mask is thresholded at 0.5. Metadata of the
    input files is not carried over.
    """
    img_path, mask_path = Path(scan.image_files[0]), Path(scan.contour_file)
    img_shown, mask_shown = shown_file(scan, img_path), shown_file(scan, mask_path)
    image = _read_volume(scan, img_path, "image")
    mask_in = _read_volume(scan, mask_path, "mask")
    for what, im, p in (("image", image, img_path), ("mask", mask_in, mask_path)):
        if im.GetDimension() != 3 or im.GetNumberOfComponentsPerPixel() != 1:
            raise CaseError(STAGE_CONVERSION, f"{what} file {shown_file(scan, p)} is not a 3D greyscale volume "
                                              f"({im.GetDimension()}D, {im.GetNumberOfComponentsPerPixel()} "
                                              f"component(s))")
    problem = _same_grid(image, mask_in)
    if problem:
        raise CaseError(STAGE_CONVERSION, f"mask {mask_shown} is not on the voxel grid of image "
                                          f"{img_shown}: {problem} (radsurv does not resample masks silently)")
    warnings: list[str] = []
    sel, roi = _roi_voxels(scan, sitk.GetArrayFromImage(mask_in), mask_shown, warnings)
    voxels = int(sel.sum())
    if voxels == 0:
        raise CaseError(STAGE_CONVERSION, f"mask {mask_shown} is empty (no non-zero voxel)")
    for key in image.GetMetaDataKeys():
        image.EraseMetaData(key)
    image = _storage_type(scan, image)
    region = write_image_and_mask(image, sel, image_out, mask_out, crop_margin_mm)
    spacing = [float(s) for s in image.GetSpacing()]
    units = {"CT": "HU (as stored in the image file)", "PT": "SUV (as stored in the image file)",
             "MR": "native scanner units (as stored in the image file)"}.get(scan.modality, "as stored")
    prov = {
        "scan_id": scan.scan_id, "patient_id": scan.patient_id, "modality": scan.modality,
        "series_uid": "", "source_image": img_shown, "source_mask": mask_shown,
        "manufacturer": "", "model": "", "kernel": "",
        "n_slices": int(image.GetSize()[2]), "spacing": spacing, "size": [int(s) for s in image.GetSize()],
        "roi_name": roi, "roi_names_available": [roi], "voxel_count": voxels,
        "roi_volume_ml": voxels * float(np.prod(spacing)) / 1000.0, "contour_type": "MASK",
        "pixel_type": image.GetPixelIDTypeAsString(), "warnings": warnings, "units": units,
        "input_sha256": files_sha256([img_path, mask_path]), "stored_region": region,
    }
    for w in warnings:
        log.warning("%s: %s", scan.scan_id, w)
    log.info("%s: image %s + mask %s, %d voxels (%.2f ml)", scan.scan_id, img_shown, mask_shown,
             voxels, prov["roi_volume_ml"])
    return prov


def _read_volume(scan: ScanRecord, path: Path, what: str) -> sitk.Image:
    """The ``what`` ("image" or "mask") file as a SimpleITK image."""
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise CaseError(STAGE_CONVERSION, f"{what} file {shown_file(scan, path)} cannot be read "
                                          f"({str(exc)[-120:]})") from exc


def _roi_voxels(scan: ScanRecord, m: np.ndarray, mask_shown: str, warnings: list[str]) -> tuple[np.ndarray, str]:
    """The ROI's voxels in the mask array and how they were chosen: the ``mask_label``, voxels
    >= 0.5 of a fractional mask, else every non-zero voxel."""
    label = int(getattr(scan, "mask_label", 0) or 0)
    if label > 0:
        sel = m == label
        if not sel.any():
            found = [int(v) for v in np.unique(m) if v != 0][:10]
            raise CaseError(STAGE_CONVERSION, f"mask {mask_shown} has no voxel with label {label} "
                                              f"(labels present: {found or 'none'})")
        return sel, f"label {label}"
    if np.issubdtype(m.dtype, np.floating) and np.any((m > 0) & (m < 1)):
        warnings.append(f"mask {mask_shown} is fractional; voxels >= 0.5 kept")
        return m >= 0.5, "mask >= 0.5"
    labels = [v for v in np.unique(m) if v != 0]
    if len(labels) > 1:
        warnings.append(f"mask {mask_shown} has {len(labels)} labels; all non-zero voxels used "
                        f"(set mask_label to choose one)")
    return m != 0, "mask"


def _storage_type(scan: ScanRecord, image: sitk.Image) -> sitk.Image:
    """A float64 image as int16 (CT with integral values that fit) or float32; others unchanged."""
    if image.GetPixelID() == sitk.sitkFloat64:
        vals = sitk.GetArrayViewFromImage(image)
        if scan.modality == "CT" and np.all(np.mod(vals, 1) == 0) and vals.min() >= -32768 and vals.max() <= 32767:
            return sitk.Cast(image, sitk.sitkInt16)
        return sitk.Cast(image, sitk.sitkFloat32)
    return image
