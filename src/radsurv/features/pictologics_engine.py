"""Feature extraction with pictologics (IBSI-complete, Numba-compiled), one scan at a time.

pictologics receives what pyradiomics receives: the image radsurv has already
preprocessed (:mod:`radsurv.features.preprocess`: IBSI grid, interpolation, rounding)
and the morphological mask on that grid. No resampling step is given to pictologics,
so its mask interpolation plays no part (had it resampled, IBSI configurations B-E
would need ``mask_interpolation: linear``; its default ``nearest`` matches 90 of 169
features in C). Its steps re-segment the intensity mask exactly as radsurv's
preprocessing did (range, then mean +- k SD), so morphology comes from the
morphological mask and everything else from the intensity mask, as IBSI defines.

* Grey levels: fixed bin size counted from the lower re-segmentation bound (or fixed
  bin number), as :mod:`radsurv.features.extract` does for pyradiomics. Filter
  responses (LoG, wavelet) are discretised with a fixed bin number
  (``extraction.bin_count``, else 32): a width in HU means nothing for them.
* Texture: pictologics computes GLCM and GLRLM with the 13 directions merged
  (IBSI ``*_3D_comb``) only; ``texture_aggregation: averaged`` is refused.
* Names: ``<image type>_<IBSI tag>`` (:mod:`radsurv.features.ibsi_names`), e.g.
  ``original_morph_volume``, ``log-sigma-2-0-mm_cm_joint_max_3D_comb``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from radsurv.features import ibsi_names

log = logging.getLogger(__name__)

#: pictologics feature families of each pyradiomics class named in ``extraction.feature_classes``.
FAMILIES_OF_CLASS = {
    "shape": ("morphology", "local_intensity", "spatial_intensity"),
    "firstorder": ("intensity", "histogram"),
    "glcm": ("glcm",), "glrlm": ("glrlm",), "glszm": ("glszm", "gldzm"), "gldm": ("ngldm",), "ngtdm": ("ngtdm",),
}
#: Families computed on the original image only (morphology does not change with a filter).
ORIGINAL_ONLY = ("morphology", "local_intensity", "spatial_intensity", "ivh")
#: Fixed bin number of filter responses when ``extraction.bin_count`` is not set.
FILTER_BIN_COUNT = 32
#: pyradiomics' wavelet (coif1, one level): the 8 decompositions it computes.
WAVELET = "coif1"
WAVELET_BANDS = ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL")


def _families(extraction: Mapping[str, Any]) -> list[str]:
    classes = extraction.get("feature_classes") or list(FAMILIES_OF_CLASS)
    unknown = sorted(set(classes) - set(FAMILIES_OF_CLASS))
    if unknown:
        raise ValueError(f"unknown feature classes {unknown}; use {list(FAMILIES_OF_CLASS)}")
    families = [f for c in classes for f in FAMILIES_OF_CLASS[c]]
    if extraction.get("ivh") is not None:
        families.append("ivh")
    return families


def _resegment_steps(preprocessing: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The intensity-mask steps of radsurv's preprocessing, for pictologics (range, then outliers)."""
    steps: list[dict[str, Any]] = []
    reseg = preprocessing.get("resegment_range")
    if reseg and any(b is not None for b in reseg):
        params = {k: float(v) for k, v in zip(("range_min", "range_max"), reseg) if v is not None}
        steps.append({"step": "resegment", "params": {**params, "apply_to": "intensity"}})
    if preprocessing.get("outlier_sigma"):
        steps.append({"step": "filter_outliers",
                      "params": {"sigma": float(preprocessing["outlier_sigma"]), "apply_to": "intensity"}})
    return steps


def _discretise(extraction: Mapping[str, Any], low: float, filtered: bool) -> dict[str, Any]:
    bin_count = extraction.get("bin_count")
    if filtered or bin_count:
        return {"method": "FBN", "n_bins": int(bin_count or FILTER_BIN_COUNT)}
    return {"method": "FBS", "bin_width": float(extraction.get("bin_width") or 25.0), "min_val": float(low)}


def _ivh_params(extraction: Mapping[str, Any], low: float, reseg: Any) -> dict[str, Any]:
    """IVH settings: FBN bins, FBS bins from the low bound (intensity fractions over the
    re-segmentation range when it has both bounds, IBSI), or the intensities as they are."""
    ivh = extraction.get("ivh")
    if ivh is None:
        return {}
    if ivh.get("bin_count"):
        return {"ivh_discretisation": {"method": "FBN", "n_bins": int(ivh["bin_count"])}}
    if ivh.get("bin_width"):
        out: dict[str, Any] = {"ivh_discretisation": {"method": "FBS", "bin_width": float(ivh["bin_width"]),
                                                      "min_val": float(low)}}
        if reseg and None not in reseg:
            out["ivh_params"] = {"target_range_min": float(reseg[0]), "target_range_max": float(reseg[1])}
        return out
    return {"ivh_use_continuous": True, "ivh_params": {"bin_width": 1.0}}


def _filters(extraction: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Image type (pyradiomics' names) -> pictologics filter step parameters."""
    filters = extraction.get("filters", {}) or {}
    out: dict[str, dict[str, Any]] = {}
    for sigma in filters.get("log_sigma_mm") or []:
        out[f"log-sigma-{float(sigma)}-mm".replace(".", "-")] = {"type": "log", "sigma_mm": float(sigma)}
    if filters.get("wavelet"):
        for band in WAVELET_BANDS:
            out[f"wavelet-{band}"] = {"type": "wavelet", "wavelet": WAVELET, "level": 1, "decomposition": band}
    return out


def configurations(extraction: Mapping[str, Any], preprocessing: Mapping[str, Any] | None = None,
                   roi_min: float = 0.0) -> dict[str, list[dict[str, Any]]]:
    """pictologics configurations (image type -> steps) of a site's ``extraction`` and ``preprocessing``.

    Fixed-size bins start at the lower re-segmentation bound, else at ``roi_min`` (the
    lowest intensity in the scan's intensity mask), as for pyradiomics.
    """
    preprocessing = preprocessing or {}
    if (extraction.get("texture_aggregation") or "merged") != "merged":
        raise ValueError("pictologics computes GLCM and GLRLM with the directions merged only; "
                         "set extraction.texture_aggregation to merged (or null)")
    if str(extraction.get("dimensions", "3D")) != "3D":
        raise ValueError("pictologics computes 3D texture only; use extraction.dimensions: 3D or engine pyradiomics")
    reseg = preprocessing.get("resegment_range") or extraction.get("resegment_range")
    low = reseg[0] if reseg and reseg[0] is not None else roi_min
    families = _families(extraction)
    head = _resegment_steps({**preprocessing, "resegment_range": reseg})
    features = {"families": families, "include_local_intensity": "local_intensity" in families,
                "include_spatial_intensity": "spatial_intensity" in families, **_ivh_params(extraction, low, reseg)}
    configs = {"original": [*head, {"step": "discretise", "params": _discretise(extraction, low, False)},
                            {"step": "extract_features", "params": features}]}
    filtered = [f for f in families if f not in ORIGINAL_ONLY]
    for name, params in _filters(extraction).items():
        configs[name] = [*head, {"step": "filter", "params": params},
                         {"step": "discretise", "params": _discretise(extraction, low, True)},
                         {"step": "extract_features", "params": {"families": filtered}}]
    return configs


@cache
def _pipeline(frozen: str) -> Any:
    """One pictologics pipeline per set of configurations (kept for the next scan of a batch)."""
    import json

    from pictologics import RadiomicsPipeline

    pipeline = RadiomicsPipeline(load_standard=False)
    for name, steps in json.loads(frozen).items():
        pipeline.add_config(name, steps)
    return pipeline


def version() -> str:
    from importlib.metadata import version as _version

    return _version("pictologics")


def _roi_min(image_path: str | Path, mask_path: str | Path) -> float:
    import SimpleITK as sitk

    image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path))) > 0
    return float(image[mask].min()) if mask.any() else 0.0


def extract(image_path: str | Path, mask_path: str | Path, extraction: Mapping[str, Any],
            preprocessing: Mapping[str, Any] | None = None, intensity_mask_path: str | Path | None = None
            ) -> tuple[dict[str, float], dict[str, Any]]:
    """pictologics features of one preprocessed scan (its morphological mask); ``(features, diagnostics)``.

    Feature names are ``<image type>_<IBSI tag>``; a feature pictologics returns without
    a known IBSI code is kept under its own name. A failed family gives NaN values and a
    warning in pictologics; here it is raised, so the case becomes a QC row.
    """
    import json

    configs = configurations(extraction, preprocessing, _roi_min(image_path, intensity_mask_path or mask_path))
    pipeline = _pipeline(json.dumps(configs, sort_keys=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = pipeline.run(str(image_path), str(mask_path))
    failures = [str(w.message) for w in caught if "failed" in str(w.message).lower()]
    if failures:
        raise RuntimeError(f"pictologics: {failures[0]}")
    features: dict[str, float] = {}
    for image_type, series in results.items():
        for key, value in series.items():
            tag = ibsi_names.pictologics_tag(str(key))
            name = ibsi_names.column(image_type, tag) if tag else f"{image_type}_pictologics_{key}"
            features[name] = float(value) if value is not None else float("nan")
    log.info("pictologics extracted %d features", len(features))
    return features, {"diagnostics_Versions_pictologics": version(), "diagnostics_Configuration_TextureAggregation":
                      "merged"}
