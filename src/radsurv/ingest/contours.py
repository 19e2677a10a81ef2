"""What RTSTRUCT and DICOM-SEG reading share: choosing ROIs, and physical points as voxel indices.

A scan's ROI is chosen by ``roi_pattern``, a case-insensitive regular expression
searched in the ROI names (RTSTRUCT ROIName / SEG SegmentLabel, :func:`select_rois`),
and ``roi_policy`` (:data:`ROI_POLICIES`, :func:`apply_policy`) between several
matches: ``first`` (lowest ROI number), ``largest`` (most voxels), ``union`` or
``error``. :func:`physical_to_continuous_index` maps contour points and SEG frame
positions onto the image grid.
"""

from __future__ import annotations

import re

import numpy as np
import SimpleITK as sitk

from radsurv.errors import CaseError
from radsurv.ingest.records import STAGE_CONVERSION

ROI_POLICIES = ("first", "largest", "union", "error")


def _index_transform(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Matrix M and origin o such that continuous index = M @ (p - o).

    Identical to ``image.TransformPhysicalPointToContinuousIndex`` but vectorised.
    """
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.array(image.GetSpacing(), dtype=float)
    matrix = np.linalg.inv(direction @ np.diag(spacing))
    return matrix, np.array(image.GetOrigin(), dtype=float)


def physical_to_continuous_index(image: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Map (N, 3) physical points (mm, LPS) to continuous (i, j, k) indices of ``image``."""
    matrix, origin = _index_transform(image)
    return (np.asarray(points, dtype=float) - origin) @ matrix.T


def select_rois(names: dict[int, str], roi_pattern: str, policy: str, label: str) -> list[int]:
    """Numbers of the ROIs/segments whose name matches ``roi_pattern`` (in number order)."""
    try:
        rx = re.compile(roi_pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid ROI pattern {roi_pattern!r}: {exc}") from exc
    hits = [n for n in sorted(names) if rx.search(names[n])]
    if not hits:
        available = ", ".join(repr(names[n]) for n in sorted(names)) or "none"
        raise CaseError(
            STAGE_CONVERSION, f"no {label} name matches pattern {roi_pattern!r}; available: {available}"
        )
    if policy == "error" and len(hits) > 1:
        raise CaseError(
            STAGE_CONVERSION,
            f"{len(hits)} {label}s match pattern {roi_pattern!r} "
            f"({', '.join(repr(names[n]) for n in hits)}) and roi_policy is 'error'",
        )
    return hits


def apply_policy(masks: dict[int, np.ndarray], names: dict[int, str], policy: str) -> tuple[np.ndarray, str]:
    """The mask of the policy (``union`` of all, ``largest``, else the lowest number) and its ROI name."""
    order = sorted(masks)
    if policy == "union" and len(order) > 1:
        out = np.zeros_like(masks[order[0]])
        for n in order:
            out |= masks[n]
        return out, "+".join(names[n] for n in order)
    if policy == "largest":
        best = max(order, key=lambda n: (int(masks[n].sum()), -n))
        return masks[best], names[best]
    return masks[order[0]], names[order[0]]
