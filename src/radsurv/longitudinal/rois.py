"""Several ROIs per scan: the tumour and named organs at risk, each found by its own name pattern.

A :class:`RoiSpec` names an ROI of the analysis (``gtv``, ``parotid_l``, ...) and the regular
expression its structure name matches in a scan's structure set (case-insensitive, whole
name). :func:`match_rois` picks, for one scan, the structure of each ROI; an ROI without a
match, or with several matches, is a QC row for that ROI and that scan only (the other ROIs of
the scan go on). :func:`prefix_features` prefixes feature columns with the ROI
(``gtv__original_firstorder_Mean``) so that the ROIs of a scan share one row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from radsurv.qc import qc_row

__all__ = ["ROI_SEP", "STAGE_ROIS", "RoiSpec", "match_rois", "prefix_features", "roi_of_column", "rois_from_config"]

ROI_SEP = "__"
STAGE_ROIS = "longitudinal_rois"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class RoiSpec:
    """One ROI of the analysis: a short lower-case ``name`` (the feature prefix), the ``pattern``
    its structure name matches, and whether it is the tumour (relative volume change is computed
    for the tumour)."""

    name: str
    pattern: str
    tumour: bool = False
    #: ``(key, value)`` pairs overriding ``longitudinal.propagation`` for this ROI only (e.g. a
    #: smoother deformation for a low-contrast organ at risk); empty: the block's settings
    propagation: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or ROI_SEP in self.name:
            raise ValueError(f"ROI name {self.name!r}: use lower-case letters, digits and single underscores "
                             "(it becomes the prefix of the feature names)")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"ROI {self.name!r}: pattern {self.pattern!r} is not a regular expression "
                             f"({exc})") from exc

    def matches(self, structure: str) -> bool:
        return re.fullmatch(self.pattern, structure.strip(), flags=re.IGNORECASE) is not None


def rois_from_config(cfg: Mapping[str, Any]) -> tuple[RoiSpec, ...]:
    """From the ``longitudinal.rois`` block: ``{name: {pattern: ..., tumour: bool, propagation: {...}}}``."""
    specs = tuple(RoiSpec(str(n), str(v["pattern"]), bool(v.get("tumour", False)),
                          tuple(sorted(dict(v.get("propagation") or {}).items()))) for n, v in cfg.items())
    if sum(s.tumour for s in specs) != 1:
        raise ValueError("longitudinal.rois: exactly one ROI must be the tumour (tumour: true)")
    return specs


def match_rois(patient_id: str, scan_id: str, structures: Sequence[str], specs: Sequence[RoiSpec],
               timepoint: str = "") -> tuple[dict[str, str], list[dict[str, str]]]:
    """The structure name of each ROI in one scan's structure list.

    Returns ``(found, qc)``: ``found`` maps ROI name -> structure name for the ROIs matched by
    exactly one structure; ``qc`` has one row per ROI that is absent or ambiguous in this scan
    (reason names the ROI and the time point), and nothing for the other ROIs.
    """
    found: dict[str, str] = {}
    qc = []
    where = f" at time point {timepoint!r}" if timepoint else ""
    for spec in specs:
        hits = [s for s in structures if spec.matches(s)]
        if len(hits) == 1:
            found[spec.name] = hits[0]
        elif not hits:
            qc.append(qc_row(patient_id, scan_id, STAGE_ROIS, "excluded",
                             f"ROI {spec.name!r}{where}: no structure matches {spec.pattern!r} "
                             f"(structures: {', '.join(structures) or 'none'})"))
        else:
            qc.append(qc_row(patient_id, scan_id, STAGE_ROIS, "excluded",
                             f"ROI {spec.name!r}{where}: {len(hits)} structures match {spec.pattern!r} "
                             f"({', '.join(hits)}); rename them or tighten the pattern"))
    return found, qc


def prefix_features(features: Mapping[str, float] | pd.Series, roi: str) -> dict[str, float]:
    """``{roi__feature: value}``: one ROI's features ready to sit beside the other ROIs'."""
    return {f"{roi}{ROI_SEP}{k}": float(v) for k, v in dict(features).items()}


def roi_of_column(column: str) -> tuple[str, str]:
    """``("gtv", "original_shape_MeshVolume")`` from ``gtv__original_shape_MeshVolume``."""
    roi, sep, feat = column.partition(ROI_SEP)
    if not sep:
        raise ValueError(f"column {column!r} has no ROI prefix ('<roi>{ROI_SEP}<feature>')")
    return roi, feat
