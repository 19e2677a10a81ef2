"""DICOM-SEG: mapping a segmentation's segments onto the image series it was drawn on.

Reading uses highdicom (imported only when a SEG is converted).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from radsurv.errors import CaseError
from radsurv.ingest.contours import apply_policy, physical_to_continuous_index, select_rois
from radsurv.ingest.dicomattrs import float_tuple
from radsurv.ingest.images import SeriesGeometry
from radsurv.ingest.records import STAGE_CONVERSION, ScanRecord, shown_file


def mask_from_seg(
    image: sitk.Image, geo: SeriesGeometry, scan: ScanRecord, roi_pattern: str, policy: str
) -> tuple[np.ndarray, str, list[str], list[str]]:
    """The ROI mask of the scan's DICOM-SEG on ``image``: (mask, segment name, names available, warnings).

    The SEG frames are mapped onto the series' instances (``geo.sop_uids``); a SEG that does
    not state SpatialLocationsPreserved is accepted only when its frames lie on the image grid.
    A FRACTIONAL segment is thresholded at 0.5.
    """
    import highdicom as hd

    try:
        seg = hd.seg.segread(scan.contour_file)
    except Exception as exc:  # noqa: BLE001
        raise CaseError(
            STAGE_CONVERSION, f"SEG {shown_file(scan, scan.contour_file)} cannot be read ({type(exc).__name__})"
        ) from exc
    names = {int(n): seg.get_segment_description(n).SegmentLabel for n in seg.segment_numbers}
    available = [names[n] for n in sorted(names)]
    hits = select_rois(names, roi_pattern, policy, "segment")
    candidates = hits if policy in ("largest", "union") else hits[:1]
    warnings: list[str] = []
    kwargs: dict[str, Any] = dict(
        source_sop_instance_uids=geo.sop_uids,
        segment_numbers=candidates,
        combine_segments=False,
        assert_missing_frames_are_empty=True,
        rescale_fractional=True,
        skip_overlap_checks=True,
    )
    try:
        try:
            arr = seg.get_pixels_by_source_instance(**kwargs)
        except RuntimeError as exc:
            if "spatial locations" not in str(exc):
                raise
            # SpatialLocationsPreserved is absent: accept the frames only when their
            # own geometry coincides with the source image grid.
            problem = _seg_grid_problem(seg, image)
            if problem:
                raise CaseError(
                    STAGE_CONVERSION,
                    f"SEG {shown_file(scan, scan.contour_file)} does not state that it preserves the "
                    f"pixel grid of series {scan.series_uid}, and {problem}",
                ) from exc
            warnings.append("SEG lacks SpatialLocationsPreserved; frame geometry checked against the image grid")
            arr = seg.get_pixels_by_source_instance(ignore_spatial_locations=True, **kwargs)
    except CaseError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CaseError(
            STAGE_CONVERSION,
            f"SEG {shown_file(scan, scan.contour_file)} cannot be mapped onto series {scan.series_uid} "
            f"({type(exc).__name__}: {str(exc)[:200]})",
        ) from exc
    nx, ny, nz = image.GetSize()
    if arr.shape[:3] != (nz, ny, nx):
        raise CaseError(
            STAGE_CONVERSION,
            f"SEG {shown_file(scan, scan.contour_file)} frames have size {arr.shape[1:3]} but the image is {(ny, nx)}",
        )
    seg_type = str(getattr(seg, "SegmentationType", "BINARY")).upper()
    masks: dict[int, np.ndarray] = {}
    for i, n in enumerate(candidates):
        plane = arr[..., i].astype(np.float64)
        masks[n] = plane >= 0.5 if seg_type == "FRACTIONAL" else plane > 0
    mask, chosen = apply_policy(masks, names, policy)
    return mask, chosen, available, warnings


def _frame_attr(seg: pydicom.Dataset, frame: int, seq: str, keyword: str) -> Any:
    """A functional-group attribute of one SEG frame (per-frame first, then shared)."""
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    shared = seg.get("SharedFunctionalGroupsSequence") or []
    candidates = ([per_frame[frame]] if frame < len(per_frame) else []) + list(shared[:1])
    for group in candidates:
        items = group.get(seq)
        if items and keyword in items[0]:
            return items[0].get(keyword)
    return None


def _seg_grid_problem(seg: pydicom.Dataset, image: sitk.Image) -> str:
    """'' when every SEG frame lies exactly on the image grid, else a description."""
    nx, ny, _ = image.GetSize()
    if int(seg.Rows) != ny or int(seg.Columns) != nx:
        return f"its frames are {seg.Rows}x{seg.Columns} pixels while the image is {ny}x{nx}"
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = image.GetSpacing()
    n_frames = int(seg.get("NumberOfFrames", 1) or 1)
    for f in range(n_frames):
        ps = float_tuple(_frame_attr(seg, f, "PixelMeasuresSequence", "PixelSpacing"))
        iop = float_tuple(_frame_attr(seg, f, "PlaneOrientationSequence", "ImageOrientationPatient"))
        ipp = float_tuple(_frame_attr(seg, f, "PlanePositionSequence", "ImagePositionPatient"))
        if ps is None or iop is None or ipp is None:
            return f"frame {f + 1} has no plane position/orientation/pixel spacing"
        # DICOM PixelSpacing is (row spacing = y, column spacing = x)
        if not np.allclose([ps[1], ps[0]], spacing[:2], rtol=1e-3, atol=1e-4):
            return f"frame {f + 1} has pixel spacing {ps[1]:.4f}x{ps[0]:.4f} mm unlike the image"
        if not (np.allclose(iop[:3], direction[:, 0], atol=1e-3) and np.allclose(iop[3:], direction[:, 1], atol=1e-3)):
            return f"frame {f + 1} is oriented differently from the image"
        idx = physical_to_continuous_index(image, np.array([ipp]))[0]
        if abs(idx[0]) > 0.05 or abs(idx[1]) > 0.05 or abs(idx[2] - round(idx[2])) > 0.05:
            return f"frame {f + 1} is not aligned with the image pixel grid"
    return ""
