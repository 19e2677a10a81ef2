"""RTSTRUCT: reading a structure set's ROIs and rasterising their contours onto the image grid.

Each contour point is mapped to a continuous voxel index (the same affine SimpleITK's
``TransformPhysicalPointToContinuousIndex`` uses, so oblique orientations are
handled, :func:`radsurv.ingest.contours.physical_to_continuous_index`); the contour is
assigned to the slice whose plane it lies on; a voxel is inside when its *centre*
lies inside the polygon (no boundary rim is added). Polygons on the same slice are
combined with the even-odd rule (XOR), so holes and separate islands both work.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from matplotlib.path import Path as MplPath

from radsurv.errors import CaseError
from radsurv.ingest.contours import apply_policy, physical_to_continuous_index, select_rois
from radsurv.ingest.dicomattrs import attr_str, int_or_none
from radsurv.ingest.records import STAGE_CONVERSION, ScanRecord, shown_file


@dataclass
class _Tally:
    """How many contours of an ROI were skipped for which reason, and how many were used."""

    skipped_type: int = 0
    off_plane: int = 0
    outside: int = 0
    clipped: int = 0
    used: int = 0


def _contour_indices(image: sitk.Image, contour: pydicom.Dataset) -> np.ndarray | None:
    """Continuous voxel indices (N, 3) of a closed planar contour's points, None when it is not
    closed or malformed."""
    gtype = attr_str(contour, "ContourGeometricType").upper()
    data = contour.get("ContourData")
    if gtype not in ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR") or not data:
        return None
    pts = np.asarray([float(v) for v in data], dtype=float)
    if pts.size < 9 or pts.size % 3:
        return None
    return physical_to_continuous_index(image, pts.reshape(-1, 3))


def _fill_polygon(mask: np.ndarray, k: int, idx: np.ndarray, tally: _Tally) -> None:
    """XOR the pixels of slice ``k`` whose centre lies inside the polygon ``idx`` into ``mask``."""
    _, ny, nx = mask.shape
    xs, ys = idx[:, 0], idx[:, 1]
    i0, i1 = int(np.ceil(xs.min())), int(np.floor(xs.max()))
    j0, j1 = int(np.ceil(ys.min())), int(np.floor(ys.max()))
    if i1 < 0 or j1 < 0 or i0 > nx - 1 or j0 > ny - 1:
        tally.outside += 1
        return
    if i0 < 0 or j0 < 0 or i1 > nx - 1 or j1 > ny - 1:
        tally.clipped += 1
    i0, j0, i1, j1 = max(i0, 0), max(j0, 0), min(i1, nx - 1), min(j1, ny - 1)
    tally.used += 1
    if i1 < i0 or j1 < j0:
        return  # polygon smaller than a pixel, contains no pixel centre
    verts = np.column_stack([xs, ys])
    poly = MplPath(np.vstack([verts, verts[:1]]), closed=True)
    gi, gj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1))
    inside = poly.contains_points(np.column_stack([gi.ravel(), gj.ravel()])).reshape(gi.shape)
    mask[k, j0 : j1 + 1, i0 : i1 + 1] ^= inside


def _tally_warnings(tally: _Tally, roi_name: str, warnings: list[str]) -> None:
    """Warnings for the skipped contours; an error when no contour could be used."""
    if tally.skipped_type:
        warnings.append(f"{tally.skipped_type} non-closed or malformed contour(s) of ROI '{roi_name}' ignored")
    if tally.off_plane:
        warnings.append(f"{tally.off_plane} contour(s) of ROI '{roi_name}' are not parallel to the image slices; "
                        f"ignored")
    if tally.outside:
        warnings.append(f"{tally.outside} contour(s) of ROI '{roi_name}' lie outside the image field of view")
    if tally.clipped:
        warnings.append(f"{tally.clipped} contour(s) of ROI '{roi_name}' are cut by the image field of view")
    if tally.used == 0:
        raise CaseError(
            STAGE_CONVERSION,
            f"ROI '{roi_name}' lies entirely outside the image field of view "
            f"({tally.outside} contour(s) outside, {tally.off_plane} not parallel to slices, "
            f"{tally.skipped_type} not closed)",
        )


def _rasterise_roi(image: sitk.Image, roi_contours: list[Any], roi_name: str) -> tuple[np.ndarray, list[str], int]:
    """Boolean mask (z, y, x) of one RTSTRUCT ROI; returns (mask, warnings, #polygons used)."""
    nx, ny, nz = image.GetSize()
    mask = np.zeros((nz, ny, nx), dtype=bool)
    warnings: list[str] = []
    tally = _Tally()
    for contour in roi_contours:
        idx = _contour_indices(image, contour)
        if idx is None:
            tally.skipped_type += 1
            continue
        kz = np.rint(idx[:, 2])
        if np.ptp(kz) > 0:
            tally.off_plane += 1
            continue
        k = int(kz[0])
        if np.abs(idx[:, 2] - k).max() > 0.25:
            off_plane_warn = (f"a contour of ROI '{roi_name}' lies {np.abs(idx[:, 2] - k).max():.2f} slice off "
                              f"the image plane")
            if off_plane_warn not in warnings:
                warnings.append(off_plane_warn)
        if k < 0 or k >= nz:
            tally.outside += 1
            continue
        _fill_polygon(mask, k, idx, tally)
    _tally_warnings(tally, roi_name, warnings)
    return mask, warnings, tally.used


def _read_rois(scan: ScanRecord) -> tuple[dict[int, str], dict[int, list[Any]]]:
    """ROI names and contour items of the scan's RTSTRUCT, by ROI number."""
    try:
        rs = pydicom.dcmread(scan.contour_file, force=True)
    except Exception as exc:  # noqa: BLE001
        raise CaseError(STAGE_CONVERSION, f"RTSTRUCT {shown_file(scan, scan.contour_file)} cannot be read") from exc
    names: dict[int, str] = {}
    for roi in rs.get("StructureSetROISequence", []) or []:
        num = int_or_none(roi.get("ROINumber"))
        if num is not None:
            names[num] = attr_str(roi, "ROIName")
    contours_by_roi: dict[int, list[Any]] = defaultdict(list)
    for rc in rs.get("ROIContourSequence", []) or []:
        num = int_or_none(rc.get("ReferencedROINumber"))
        if num is not None:
            contours_by_roi[num].extend(list(rc.get("ContourSequence", []) or []))
    return names, contours_by_roi


def mask_from_rtstruct(
    image: sitk.Image, scan: ScanRecord, roi_pattern: str, policy: str
) -> tuple[np.ndarray, str, list[str], list[str]]:
    """The ROI mask of the scan's RTSTRUCT on ``image``: (mask, ROI name, ROI names available, warnings)."""
    names, contours_by_roi = _read_rois(scan)
    available = [names[n] for n in sorted(names)]
    hits = select_rois(names, roi_pattern, policy, "ROI")
    with_data = [n for n in hits if any(c.get("ContourData") for c in contours_by_roi.get(n, []))]
    if not with_data:
        raise CaseError(
            STAGE_CONVERSION,
            f"ROI(s) {', '.join(repr(names[n]) for n in hits)} matching {roi_pattern!r} have no contour data",
        )
    warnings: list[str] = []
    if len(with_data) < len(hits):
        warnings.append(
            "matching ROI(s) without contour data ignored: "
            + ", ".join(repr(names[n]) for n in hits if n not in with_data)
        )
    candidates = with_data if policy in ("largest", "union") else with_data[:1]
    masks: dict[int, np.ndarray] = {}
    for n in candidates:
        mask, warns, _ = _rasterise_roi(image, contours_by_roi[n], names[n])
        masks[n] = mask
        warnings.extend(warns)
    mask, chosen = apply_policy(masks, names, policy)
    return mask, chosen, available, warnings
