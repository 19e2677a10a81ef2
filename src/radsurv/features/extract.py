"""Feature extraction with pyradiomics, one scan at a time.

pyradiomics is given an image that radsurv has already preprocessed
(:mod:`radsurv.features.preprocess`: IBSI grid, interpolation, rounding,
re-segmentation), so its own resampling and re-segmentation are switched off.
Two IBSI requirements pyradiomics does not meet on its own are handled here:

* **Two masks.** IBSI computes morphological (shape) features on the
  morphological mask and everything else on the re-segmented intensity mask.
  pyradiomics takes one mask, so :func:`extract` runs it twice when the masks
  differ: ``shape`` (original image only) on the morphological mask, the other
  classes and filters on the intensity mask; the results are merged.
* **Fixed-bin-size origin.** pyradiomics counts bins from the multiple of the
  bin width just below the ROI minimum
  (``floor(x / w) - floor(min / w) + 1``); IBSI counts them from the lower
  re-segmentation bound, or the ROI minimum when there is none
  (``floor((x - x0) / w) + 1``). Features that use grey-level indices (joint
  average, grey-level emphases, ...) differ unless this is done IBSI's way.
  pyradiomics has no setting for it, so :func:`install_ibsi_binning` wraps its
  binning step: the wrapper is active only when the settings carry
  ``radsurvBinOrigin`` (which only :func:`pyradiomics_params` puts there) and
  otherwise calls pyradiomics' own code unchanged. Filtered images (LoG,
  wavelet) count from their own ROI minimum, since a HU bound means nothing for
  a filter response. Fixed bin number is IBSI-conformant in pyradiomics as is.

Feature values and pyradiomics' diagnostics are kept apart: the matrix holds
only features, with pyradiomics' stable names (``<image type>_<class>_<feature>``,
e.g. ``original_firstorder_Kurtosis`` is pyradiomics' Pearson kurtosis; IBSI's
excess kurtosis is that minus 3).

The cohort matrix built from the per-scan results lives in
:mod:`radsurv.features.matrix`, the feature-name helpers in
:mod:`radsurv.features.names` (neither imports SimpleITK nor pyradiomics).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

log = logging.getLogger(__name__)

#: The feature classes pyradiomics implements.
FEATURE_CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")

#: IBSI morphological features that pyradiomics computes only when they are named
#: (it calls them deprecated because they are monotone functions of sphericity).
IBSI_SHAPE_EXTRAS = ("Compactness1", "Compactness2", "SphericalDisproportion")

#: pyradiomics setting (added after parameter validation) that switches on IBSI bin counting.
BIN_ORIGIN_KEY = "radsurvBinOrigin"
ROI_MIN = "roi_min"

_patch_lock = threading.Lock()
_original_apply_binning: Any = None


def _ibsi_apply_binning(self: Any, matrix: np.ndarray) -> np.ndarray:
    """pyradiomics ``_applyBinning`` with IBSI fixed-bin-size origin (see module doc)."""
    origin = self.settings.get(BIN_ORIGIN_KEY)
    if origin is None or self.settings.get("binCount") is not None:
        return _original_apply_binning(self, matrix)
    width = float(self.settings.get("binWidth", 25))
    values = matrix[self.maskArray]
    x0 = float(values.min()) if origin == ROI_MIN else float(origin)
    if values.min() < x0:
        raise ValueError(f"ROI intensities go below the bin origin {x0}; re-segmentation was not applied")
    binned = np.zeros(matrix.shape, dtype="int")
    binned[self.maskArray] = np.floor((values - x0) / width).astype(int) + 1
    self.coefficients["grayLevels"] = np.unique(binned[self.maskArray])
    self.coefficients["Ng"] = int(np.max(self.coefficients["grayLevels"]))
    return binned


def install_ibsi_binning() -> None:
    """Wrap pyradiomics' binning once (idempotent; inert without ``radsurvBinOrigin``)."""
    global _original_apply_binning
    from radiomics.base import RadiomicsFeaturesBase

    with _patch_lock:
        if _original_apply_binning is None:
            _original_apply_binning = RadiomicsFeaturesBase._applyBinning
            RadiomicsFeaturesBase._applyBinning = _ibsi_apply_binning


def _base_setting(extraction: Mapping[str, Any]) -> dict[str, Any]:
    """pyradiomics ``setting``: its own preprocessing off, 2D/3D texture, fixed bin count or width."""
    setting: dict[str, Any] = {
        "label": 1,
        "resampledPixelSpacing": None,
        "normalize": False,
        "correctMask": False,
        "geometryTolerance": 1e-3,
        "additionalInfo": True,
        "force2D": str(extraction.get("dimensions", "3D")) == "2D",
        "force2Ddimension": 0,
        "resegmentShape": False,
    }
    bin_count = extraction.get("bin_count")
    if bin_count:
        setting["binCount"] = int(bin_count)
    elif extraction.get("bin_width") is not None:
        setting["binWidth"] = float(extraction["bin_width"])
    return setting


def _image_types(extraction: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """pyradiomics ``imageType``: the original image plus the configured LoG / wavelet filters."""
    image_types: dict[str, dict[str, Any]] = {"Original": {}}
    filters = extraction.get("filters", {}) or {}
    if filters.get("log_sigma_mm"):
        image_types["LoG"] = {"sigma": [float(s) for s in filters["log_sigma_mm"]]}
    if filters.get("wavelet"):
        image_types["Wavelet"] = {}
    return image_types


def _feature_classes(extraction: Mapping[str, Any]) -> dict[str, list[str]]:
    """pyradiomics ``featureClass``: the configured classes (all by default), every feature of each;
    shape lists its features by name so that the IBSI ones pyradiomics calls deprecated are computed."""
    classes = extraction.get("feature_classes") or list(FEATURE_CLASSES)
    unknown = sorted(set(classes) - set(FEATURE_CLASSES))
    if unknown:
        raise ValueError(f"unknown pyradiomics feature classes {unknown}; use {FEATURE_CLASSES}")
    feature_class: dict[str, list[str]] = {c: [] for c in classes}
    if "shape" in feature_class:  # all shape features, plus the IBSI ones pyradiomics only computes by name
        from radiomics.shape import RadiomicsShape

        current = [n for n, deprecated in RadiomicsShape.getFeatureNames().items() if not deprecated]
        feature_class["shape"] = sorted({*current, *IBSI_SHAPE_EXTRAS})
    return feature_class


def pyradiomics_params(extraction: Mapping[str, Any], preprocessing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """pyradiomics parameters from a site's ``extraction`` (and ``preprocessing``) blocks.

    Resampling, normalisation, mask correction and re-segmentation are
    disabled: the image arriving here is already on the site's grid and the
    intensity mask is already re-segmented (:mod:`radsurv.features.preprocess`). The
    lower bound of ``preprocessing.resegment_range`` becomes the origin of
    fixed-size bins (under the ``radsurv`` key, applied by :func:`extract`).
    ``extraction.dimensions: 2D`` computes texture slice by slice in the axial
    plane (pyradiomics ``force2D``).
    """
    preprocessing = preprocessing or {}
    setting = _base_setting(extraction)
    image_types = _image_types(extraction)
    feature_class = _feature_classes(extraction)
    reseg = preprocessing.get("resegment_range") or extraction.get("resegment_range")
    low = reseg[0] if reseg else None
    return {
        "setting": setting,
        "imageType": image_types,
        "featureClass": feature_class,
        "radsurv": {"bin_origin": float(low) if low is not None else ROI_MIN},
    }


def _to_float(value: Any) -> float:
    arr = np.asarray(value)
    return float(arr.reshape(-1)[0]) if arr.size else float("nan")


def _as_image(obj: str | Path | sitk.Image) -> sitk.Image:
    return obj if isinstance(obj, sitk.Image) else sitk.ReadImage(str(obj))


def _extractor(params: Mapping[str, Any]) -> Any:
    """A pyradiomics extractor for ``params`` (validated once: construction parses pyradiomics' schema)."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    # a copy: pyradiomics keeps the image-type dicts it is given, and the bin origin is added to them below
    py = copy.deepcopy({k: params[k] for k in ("setting", "imageType", "featureClass")})
    extractor = RadiomicsFeatureExtractor(py)
    origin = (params.get("radsurv") or {}).get("bin_origin")
    if origin is not None:  # set after pykwalify validation, which knows no such key
        extractor.settings[BIN_ORIGIN_KEY] = origin
        for name, kwargs in extractor.enabledImagetypes.items():
            if name != "Original":
                kwargs[BIN_ORIGIN_KEY] = ROI_MIN
    return extractor


def _split(result: Mapping[str, Any], features: dict[str, float], diagnostics: dict[str, Any]) -> None:
    for key, value in result.items():
        if key.startswith("diagnostics_"):
            diagnostics[key] = value if isinstance(value, (str, int, float)) else str(value)
        else:
            features[key] = _to_float(value)


def _mask_diagnostics(mask: sitk.Image, prefix: str) -> dict[str, Any]:
    arr = sitk.GetArrayViewFromImage(mask) > 0
    nz = np.nonzero(arr)
    bbox = [int(nz[2].min()), int(nz[1].min()), int(nz[0].min()),
            int(np.ptp(nz[2]) + 1), int(np.ptp(nz[1]) + 1), int(np.ptp(nz[0]) + 1)] if nz[0].size else []
    return {f"diagnostics_{prefix}_VoxelNum": int(arr.sum()), f"diagnostics_{prefix}_BoundingBox": str(tuple(bbox))}


def extract(image_path: str | Path | sitk.Image, mask_path: str | Path | sitk.Image, params: Mapping[str, Any],
            intensity_mask_path: str | Path | sitk.Image | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """Run pyradiomics on one preprocessed scan; return ``(features, diagnostics)``.

    ``mask_path`` is the morphological mask; ``intensity_mask_path`` the
    re-segmented intensity mask (``None``: the same). Shape features come
    from the morphological mask, all others from the intensity mask: when the
    masks differ, one extractor runs twice (its enabled classes and image
    types switched between the calls).
    """
    install_ibsi_binning()
    image = _as_image(image_path)
    morph = _as_image(mask_path)
    intensity = _as_image(intensity_mask_path) if intensity_mask_path is not None else None
    if intensity is not None and np.array_equal(sitk.GetArrayViewFromImage(intensity),
                                                sitk.GetArrayViewFromImage(morph)):
        intensity = None
    features: dict[str, float] = {}
    diagnostics: dict[str, Any] = {}
    ex = _extractor(params)
    classes = dict(ex.enabledFeatures)
    if intensity is None or "shape" not in classes:
        _split(ex.execute(image, intensity if intensity is not None else morph, label=1), features, diagnostics)
    else:
        others = {k: v for k, v in classes.items() if k != "shape"}
        if others:
            ex.enabledFeatures = others
            _split(ex.execute(image, intensity, label=1), features, diagnostics)
        image_types = ex.enabledImagetypes
        ex.enabledFeatures = {"shape": classes["shape"]}
        ex.enabledImagetypes = {"Original": dict(image_types.get("Original", {}))}
        ex.settings["additionalInfo"] = not others  # diagnostics already came with the first call
        _split(ex.execute(image, morph, label=1), features, diagnostics)
        if others:
            diagnostics.update(_mask_diagnostics(morph, "MorphologicalMask-original"))
    log.info("extracted %d features", len(features))
    return features, diagnostics
