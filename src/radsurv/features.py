"""Feature extraction with pyradiomics, one scan at a time, and the cohort matrix.

pyradiomics is given an image that radsurv has already resampled
(:mod:`radsurv.preprocess`), so its own resampling is switched off. Feature
values and pyradiomics' diagnostics are kept apart: the matrix holds only
features, with pyradiomics' stable names (``<image type>_<class>_<feature>``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

STAGE = "extraction"

#: The feature classes pyradiomics implements.
FEATURE_CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def pyradiomics_params(extraction: Mapping[str, Any]) -> dict[str, Any]:
    """pyradiomics parameter dictionary from ``config['extraction']``.

    Resampling, normalisation and mask correction are disabled: the image
    arriving here is already on the site's grid. ``resegment_range`` (HU for
    CT) re-segments the *intensity* mask only; shape features keep the
    morphological mask (pyradiomics' ``resegmentShape: false``).
    """
    setting: dict[str, Any] = {
        "label": 1,
        "resampledPixelSpacing": None,
        "normalize": False,
        "correctMask": False,
        "geometryTolerance": 1e-3,
        "additionalInfo": True,
        "force2D": False,
        "resegmentShape": False,
    }
    if "bin_width" in extraction and extraction["bin_width"] is not None:
        setting["binWidth"] = float(extraction["bin_width"])
    if extraction.get("bin_count"):
        setting["binCount"] = int(extraction["bin_count"])
        setting.pop("binWidth", None)
    if extraction.get("resegment_range"):
        setting["resegmentRange"] = [float(v) for v in extraction["resegment_range"]]
    image_types: dict[str, dict[str, Any]] = {"Original": {}}
    filters = extraction.get("filters", {}) or {}
    if filters.get("log_sigma_mm"):
        image_types["LoG"] = {"sigma": [float(s) for s in filters["log_sigma_mm"]]}
    if filters.get("wavelet"):
        image_types["Wavelet"] = {}
    classes = extraction.get("feature_classes") or list(FEATURE_CLASSES)
    unknown = sorted(set(classes) - set(FEATURE_CLASSES))
    if unknown:
        raise ValueError(f"unknown pyradiomics feature classes {unknown}; use {FEATURE_CLASSES}")
    return {
        "setting": setting,
        "imageType": image_types,
        "featureClass": {c: [] for c in classes},
    }


def _to_float(value: Any) -> float:
    arr = np.asarray(value)
    return float(arr.reshape(-1)[0]) if arr.size else float("nan")


def extract(image_path: str | Path, mask_path: str | Path, params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Run pyradiomics on one preprocessed scan; return ``(features, diagnostics)``."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    extractor = RadiomicsFeatureExtractor(dict(params))
    result = extractor.execute(str(image_path), str(mask_path), label=1)
    features: dict[str, float] = {}
    diagnostics: dict[str, Any] = {}
    for key, value in result.items():
        if key.startswith("diagnostics_"):
            diagnostics[key] = value if isinstance(value, (str, int, float)) else str(value)
        else:
            features[key] = _to_float(value)
    log.info("extracted %d features", len(features))
    return features, diagnostics


def write_scan_features(path: str | Path, scan_id: str, patient_id: str, session: int,
                        ok: bool, reason: str = "", features: Mapping[str, float] | None = None,
                        diagnostics: Mapping[str, Any] | None = None) -> None:
    """Per-scan result file (JSON): features when ``ok``, otherwise the reason."""
    payload = {
        "scan_id": scan_id,
        "patient_id": patient_id,
        "session": int(session),
        "ok": bool(ok),
        "reason": reason,
        "features": dict(features or {}),
        "diagnostics": dict(diagnostics or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, sort_keys=True, default=str))


def assemble(scan_files: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, str]]]:
    """Cohort matrices from per-scan files: ``(features, diagnostics, qc_rows)``.

    ``features`` is indexed by ``scan_id`` with ``patient_id`` and ``session``
    as the first columns, then the feature columns sorted by name. Scans that
    failed upstream become QC rows (status ``excluded``) with their reason.
    """
    from radsurv.qc import qc_row

    feats: list[dict[str, Any]] = []
    diags: list[dict[str, Any]] = []
    qc: list[dict[str, str]] = []
    for f in scan_files:
        rec = json.loads(Path(f).read_text())
        base = {"scan_id": rec["scan_id"], "patient_id": rec["patient_id"], "session": rec["session"]}
        if not rec["ok"]:
            qc.append(qc_row(rec["patient_id"], rec["scan_id"], rec.get("stage", STAGE), "excluded", rec["reason"]))
            continue
        feats.append({**base, **rec["features"]})
        diags.append({**base, **rec["diagnostics"]})
    meta = ["scan_id", "patient_id", "session"]
    fdf = pd.DataFrame(feats)
    if fdf.empty:
        fdf = pd.DataFrame(columns=meta)
    cols = meta + sorted(c for c in fdf.columns if c not in meta)
    fdf = fdf[cols].sort_values("scan_id").set_index("scan_id")
    ddf = pd.DataFrame(diags, columns=None if diags else meta)
    if not ddf.empty:
        ddf = ddf.sort_values("scan_id").set_index("scan_id")
    return fdf, ddf, qc


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns of a matrix made by :func:`assemble`."""
    return [c for c in frame.columns if c not in ("scan_id", "patient_id", "session")]


def feature_class(name: str) -> str:
    """pyradiomics class of a feature name (``wavelet-LLH_glcm_Contrast`` -> ``glcm``)."""
    parts = name.split("_")
    return parts[1] if len(parts) >= 3 else "unknown"


def image_type(name: str) -> str:
    """Image type (filter) of a feature name (``wavelet-LLH_glcm_Contrast`` -> ``wavelet-LLH``)."""
    return name.split("_")[0]
