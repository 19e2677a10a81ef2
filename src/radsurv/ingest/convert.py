"""Conversion of one scan to the converted image and mask files, and its provenance.

:func:`convert_scan` is the entry point of the conversion stage for every scan of
:func:`radsurv.ingest.discovery.discover` or :func:`radsurv.ingest.sheet.discover_sheet`:
a DICOM scan is checked (:func:`radsurv.ingest.images.check_geometry`), read in physical
units (:func:`radsurv.ingest.images.read_image`), its ROI taken from the RTSTRUCT
(:mod:`radsurv.ingest.rtstruct`) or SEG (:mod:`radsurv.ingest.seg`) on exactly the same
grid, and both written (:func:`radsurv.ingest.converted.write_image_and_mask`). An
image-sheet row goes to :func:`radsurv.ingest.sheet_convert.convert_sheet_scan`.

The provenance names files by pseudonym and series by UID pseudonym only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from radsurv.errors import CaseError
from radsurv.ingest.contours import ROI_POLICIES
from radsurv.ingest.converted import files_sha256, write_image_and_mask
from radsurv.ingest.dicomattrs import attr_str
from radsurv.ingest.images import SeriesGeometry, check_geometry, read_image, storage_pixel_type
from radsurv.ingest.records import STAGE_CONVERSION, ScanRecord
from radsurv.ingest.rtstruct import mask_from_rtstruct
from radsurv.ingest.seg import mask_from_seg
from radsurv.ingest.sheet_convert import convert_sheet_scan

log = logging.getLogger(__name__)


def convert_scan(
    scan: ScanRecord, roi_pattern: str, image_out: Path, mask_out: Path, roi_policy: str = "first",
    crop_margin_mm: float | None = None,
) -> dict[str, Any]:
    """Convert one scan to ``image_out`` and ``mask_out`` and return its provenance.

    ``crop_margin_mm``: store only the ROI's neighbourhood (see :func:`write_image_and_mask`);
    ``None`` stores the whole scan.

    ``roi_pattern`` is a case-insensitive regular expression searched in the
    ROI names (RTSTRUCT ROIName / SEG SegmentLabel). ``roi_policy`` decides
    between several matches: ``first`` (lowest ROI number), ``largest`` (most
    voxels), ``union`` or ``error``. Raises :class:`CaseError` for any problem
    of this case (slice gap, ROI not found, empty mask, ...).
    """
    if roi_policy not in ROI_POLICIES:
        raise ValueError(f"roi_policy must be one of {ROI_POLICIES}, got {roi_policy!r}")
    if scan.contour_type == "MASK":
        return convert_sheet_scan(scan, image_out, mask_out, crop_margin_mm)
    geo = check_geometry(scan)
    image, warnings, units = read_image(scan, geo, cast=False)  # cast below, only what is stored
    pixel_type = storage_pixel_type(scan, image)
    padding = units.pop("_padding_mask", None)

    mask_arr, roi_name, available, mwarn = _roi_mask(image, geo, scan, roi_pattern, roi_policy)
    warnings.extend(mwarn)
    voxels = _check_mask(scan, mask_arr, roi_name, padding)
    region = write_image_and_mask(image, mask_arr, image_out, mask_out, crop_margin_mm, pixel_type)

    spacing = [float(s) for s in image.GetSpacing()]
    first = geo.first
    prov: dict[str, Any] = {
        "scan_id": scan.scan_id,
        "patient_id": scan.patient_id,
        "modality": scan.modality,
        "series_uid": scan.series_uid,
        "manufacturer": attr_str(first, "Manufacturer"),
        "model": attr_str(first, "ManufacturerModelName"),
        "kernel": _kernel(first),
        "slice_thickness_mm": _slice_thickness(first),
        "n_slices": int(image.GetSize()[2]),
        "spacing": spacing,
        "size": [int(s) for s in image.GetSize()],
        "roi_name": roi_name,
        "roi_names_available": available,
        "voxel_count": voxels,
        "roi_volume_ml": voxels * float(np.prod(spacing)) / 1000.0,
        "contour_type": scan.contour_type,
        "pixel_type": sitk.GetPixelIDValueAsString(pixel_type),
        "warnings": warnings,
        "input_sha256": files_sha256([*scan.image_files, scan.contour_file]),
        "stored_region": region,
        **units,
    }
    for w in warnings:
        log.warning("%s: %s", scan.scan_id, w)
    log.info(
        "%s: converted series %s (%s, %d slices), ROI '%s' %d voxels (%.2f ml)",
        scan.scan_id, scan.series_uid, scan.modality, prov["n_slices"], roi_name, voxels, prov["roi_volume_ml"],
    )
    return prov


def _roi_mask(image: sitk.Image, geo: SeriesGeometry, scan: ScanRecord, roi_pattern: str, roi_policy: str
              ) -> tuple[np.ndarray, str, list[str], list[str]]:
    """The ROI mask from the scan's contour object: (mask, ROI name, ROI names available, warnings)."""
    if scan.contour_type == "RTSTRUCT":
        return mask_from_rtstruct(image, scan, roi_pattern, roi_policy)
    if scan.contour_type == "SEG":
        return mask_from_seg(image, geo, scan, roi_pattern, roi_policy)
    raise CaseError(STAGE_CONVERSION, f"unknown contour type {scan.contour_type!r}")


def _check_mask(scan: ScanRecord, mask_arr: np.ndarray, roi_name: str, padding: np.ndarray | None) -> int:
    """The ROI's voxel count, after checking that the mask is not empty and covers no CT padding."""
    voxels = int(mask_arr.sum())
    if voxels == 0:
        raise CaseError(
            STAGE_CONVERSION,
            f"ROI '{roi_name}' gives an empty mask on series {scan.series_uid} "
            f"(contours smaller than a voxel or outside the field of view)",
        )
    if padding is not None and bool(np.any(padding & mask_arr)):
        raise CaseError(
            STAGE_CONVERSION,
            f"ROI '{roi_name}' covers {int(np.sum(padding & mask_arr))} padding voxels of series "
            f"{scan.series_uid} (outside the reconstructed field of view)",
        )
    return voxels


def _slice_thickness(first: pydicom.Dataset) -> float | None:
    """The nominal reconstructed SliceThickness (0018,0050) in mm; ``None`` when absent or
    unreadable. The voxel grid's ``spacing[2]`` is the distance between slices, which can
    differ (overlapping or gapped reconstructions); harmonisation can use either."""
    try:
        v = float(first.get("SliceThickness", None))
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def _kernel(first: pydicom.Dataset) -> str:
    """The ConvolutionKernel (several values joined by a backslash)."""
    if isinstance(first.get("ConvolutionKernel", None), (list, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in first.get("ConvolutionKernel", None) or [])
    return attr_str(first, "ConvolutionKernel")
