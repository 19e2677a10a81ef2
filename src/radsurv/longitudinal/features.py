"""Features of every ROI at every time point: the scan's own contour, else the propagated baseline.

:func:`scan_features` is the per-scan step of the future rule ``longitudinal_features``: for each
ROI it uses the time point's own mask when it exists, otherwise propagates the baseline mask
(:func:`radsurv.longitudinal.propagation.propagate_mask`) and marks the ROI ``propagated``;
pyradiomics runs through :func:`radsurv.features.extract.extract`. With ``validate`` the
baseline mask is also propagated where an own contour exists, to record Dice against it.
Features are ROI-prefixed (``gtv__original_shape_MeshVolume``); ``<roi>__propagated`` (0/1) sits
beside them. An ROI that fails (no own contour and no baseline mask, an empty mask, a
registration or extraction error) is one QC row for that ROI and scan; the other ROIs go on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import SimpleITK as sitk

from radsurv.features.extract import extract
from radsurv.longitudinal.propagation import PropagationSettings, propagate_mask
from radsurv.longitudinal.rois import prefix_features
from radsurv.qc import qc_row

__all__ = ["STAGE_FEATURES", "ScanFeatures", "scan_features"]

log = logging.getLogger(__name__)
STAGE_FEATURES = "longitudinal_features"


@dataclass
class ScanFeatures:
    """One scan's ROI-prefixed features, the propagation quality rows and the QC rows."""

    features: dict[str, float] = field(default_factory=dict)
    propagation: list[dict[str, Any]] = field(default_factory=list)
    qc: list[dict[str, str]] = field(default_factory=list)


def _roi_mask(roi: str, own: sitk.Image | None, baseline: tuple[sitk.Image, sitk.Image | None] | None,
              image: sitk.Image, prop: PropagationSettings, validate: bool) -> tuple[sitk.Image, dict[str, Any] | None]:
    """The mask to use for ``roi`` and the propagation row (None when nothing was propagated)."""
    b_img, b_mask = baseline if baseline is not None else (None, None)
    if own is not None and not (validate and b_mask is not None):
        return own, None
    if b_mask is None or b_img is None:
        raise ValueError("no contour at this time point and no baseline contour to propagate")
    res = propagate_mask(b_img, b_mask, image, prop, own_mask=own)
    row = {"roi": roi, "used": own is None, **res.quality()}
    return (own if own is not None else res.mask), row


def scan_features(patient_id: str, scan_id: str, image: sitk.Image, own_masks: Mapping[str, sitk.Image | None],
                  baseline: tuple[sitk.Image, Mapping[str, sitk.Image | None]] | None, params: Mapping[str, Any],
                  prop: PropagationSettings, validate: bool = False,
                  roi_prop: Mapping[str, PropagationSettings] | None = None) -> ScanFeatures:
    """Features of each ROI of one scan.

    Args:
        own_masks: ROI name -> the scan's own mask, or None when the ROI was not contoured.
        baseline: ``(baseline image, {ROI: baseline mask})``; None for the baseline scan itself.
        params: pyradiomics parameters (:func:`radsurv.features.extract.pyradiomics_params`).
        validate: also propagate where an own contour exists (Dice against it; the own mask is used).
        roi_prop: ROI name -> its own propagation settings (per-ROI overrides); other ROIs use ``prop``.
    """
    out = ScanFeatures()
    for roi, own in own_masks.items():
        b = (baseline[0], baseline[1].get(roi)) if baseline is not None else None
        try:
            mask, row = _roi_mask(roi, own, b, image, (roi_prop or {}).get(roi, prop), validate)
            if row is not None:
                out.propagation.append({"patient_id": patient_id, "scan_id": scan_id, **row})
            propagated = row is not None and row["used"]
            feats, _ = extract(image, mask, params)
        except (ValueError, RuntimeError) as exc:  # one ROI of one scan, never the cohort
            out.qc.append(qc_row(patient_id, scan_id, STAGE_FEATURES, "excluded", f"ROI {roi!r}: {exc}"))
            continue
        out.features.update(prefix_features(feats, roi))
        out.features[f"{roi}__propagated"] = float(propagated)
    return out
