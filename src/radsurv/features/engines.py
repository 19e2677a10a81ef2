"""The feature engines behind ``extraction.engine``: one call for either.

* ``pyradiomics`` (the default and the reference): :mod:`radsurv.features.extract`;
  pyradiomics' feature names; GLCM / GLRLM averaged over directions, or merged
  (``texture_aggregation: merged``: pyradiomics' ``weightingNorm: no_weighting``).
* ``pictologics``: :mod:`radsurv.features.pictologics_engine`; IBSI-tagged names;
  merged only. It needs a process start-up of ~20 s (Numba), so the workflow extracts
  its scans in batches (rule ``extract_scan_batch``).

Both receive the same preprocessed image, morphological mask and intensity mask, and
:mod:`radsurv.features.ibsi_names` maps both engines' names to IBSI tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radsurv.schema import default

ENGINES = ("pyradiomics", "pictologics")
#: ``texture_aggregation: null``: each engine's own.
OWN_AGGREGATION = {"pyradiomics": "averaged", "pictologics": "merged"}


def engine_of(extraction: Mapping[str, Any]) -> str:
    """The configured engine (the schema's default when unset)."""
    name = str(extraction.get("engine") or default("extraction", "engine"))
    if name not in ENGINES:
        raise ValueError(f"extraction.engine must be one of {ENGINES}, not {name!r}")
    return name


def texture_aggregation(extraction: Mapping[str, Any]) -> str:
    """How GLCM / GLRLM combine directions: the configured ``texture_aggregation``, else the engine's own."""
    return str(extraction.get("texture_aggregation") or OWN_AGGREGATION[engine_of(extraction)])


def describe(extraction: Mapping[str, Any]) -> str:
    """One sentence for the report: engine, version and texture aggregation."""
    from importlib.metadata import version

    name = engine_of(extraction)
    dist = "pyradiomics-bhklab" if name == "pyradiomics" else name
    return (f"{name} {version(dist)}; GLCM and GLRLM features {texture_aggregation(extraction)} over the 13 "
            "3D directions")


def start(extraction: Mapping[str, Any]) -> None:
    """Load the configured engine (pictologics: its compiled kernels, ~20 s) before the first scan."""
    if engine_of(extraction) == "pictologics":
        import pictologics  # noqa: F401 - the import loads Numba's cached kernels
    else:
        import radiomics.featureextractor  # noqa: F401


def extract(image: str | Path, morph_mask: str | Path, intensity_mask: str | Path | None,
            extraction: Mapping[str, Any], preprocessing: Mapping[str, Any] | None = None
            ) -> tuple[dict[str, float], dict[str, Any]]:
    """Features of one preprocessed scan with the configured engine: ``(features, diagnostics)``."""
    name = engine_of(extraction)
    if name == "pictologics":
        from radsurv.features import pictologics_engine

        return pictologics_engine.extract(image, morph_mask, extraction, preprocessing, intensity_mask)
    from radsurv.features import extract as pyrad

    params = pyrad.pyradiomics_params(extraction, preprocessing)
    if texture_aggregation(extraction) == "merged":
        params["setting"]["weightingNorm"] = "no_weighting"
    return pyrad.extract(image, morph_mask, params, intensity_mask)
