"""IBSI compliance: reference values, name mapping, the workbook match rule, comparison tables.

The Image Biomarker Standardisation Initiative (Zwanenburg et al., Radiology
2020; arXiv:1612.07003) publishes consensus values for a digital phantom and a
CT phantom processed with configurations A-E. This module reads those values
and the pyradiomics -> IBSI name mapping (``ibsi_reference_values.csv`` and
``pyradiomics_ibsi_mapping.csv``; the data are not part of radsurv), runs a
phantom through radsurv's own preprocessing and extraction with a site preset
(``config/sites/ibsi_*.yaml``), and compares each value with the IBSI rule.

Match rule (the IBSI benchmark workbook's): the difference between the value
and the reference, truncated at the decimal position of the reference's third
significant digit, must not exceed the tolerance.

Which features are compared: every IBSI feature pyradiomics computes (the
mapping's rows with a pyradiomics name), in the aggregation pyradiomics uses:
3D, averaged over directions (``*_3D_avg``) for 3D work; for 2D work
(pyradiomics ``force2D``: matrices per in-plane direction accumulated over
all slices) IBSI's "2.5D" direction-averaged variants (``*_2_5D_avg``,
``*_2_5D``). Merged-direction (``*_comb``) values need pyradiomics'
``weightingNorm: no_weighting`` and are not compared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: pyradiomics features whose definition differs from IBSI by a known constant.
CONVERSIONS = {"original_firstorder_Kurtosis": ("minus 3 (Pearson -> excess kurtosis)", lambda v: v - 3.0)}

#: IBSI configuration name -> site preset.
SITE_OF_CONFIGURATION = {
    "A": "ibsi_a", "B": "ibsi_b", "C": "ibsi_c", "D": "ibsi_d", "E": "ibsi_e",
    "digital_phantom": "ibsi_digital_phantom",
}
#: Texture aggregation compared, by the site's ``extraction.dimensions``.
DIMENSIONS_OF_CONFIGURATION = {"A": "2D", "B": "2D", "C": "3D", "D": "3D", "E": "3D", "digital_phantom": "3D"}


def load_references(ibsi_dir: str | Path) -> pd.DataFrame:
    """IBSI consensus values (configuration, family, feature_tag, ..., reference_value, tolerance)."""
    ref = pd.read_csv(Path(ibsi_dir) / "ibsi_reference_values.csv")
    return ref.dropna(subset=["reference_value"])


def load_mapping(ibsi_dir: str | Path) -> pd.DataFrame:
    """pyradiomics name -> IBSI tag for the features both define (3D tags)."""
    m = pd.read_csv(Path(ibsi_dir) / "pyradiomics_ibsi_mapping.csv")
    m = m.dropna(subset=["pyradiomics_name", "ibsi_tag"])
    return m[~m["ibsi_tag"].str.endswith("_comb")].reset_index(drop=True)


def tag_for_dimensions(tag: str, dimensions: str) -> str:
    """The IBSI tag of a 3D-averaged feature in the aggregation used for ``dimensions``."""
    if dimensions == "3D":
        return tag
    return re.sub(r"_3D(_avg)?$", lambda m: "_2_5D" + (m.group(1) or ""), tag)


def load_configurations(ibsi_dir: str | Path) -> pd.DataFrame:
    """IBSI's settings of configurations A-E (for the record in the comparison table)."""
    return pd.read_csv(Path(ibsi_dir) / "ibsi_ct_configurations.csv")


def truncate_at(value: float, decimal_exponent: int) -> float:
    """``value`` truncated (towards zero) at the decimal position ``10**decimal_exponent``."""
    unit = 10.0 ** decimal_exponent
    scaled = round(value / unit, 6)  # absorb binary floating-point noise before truncating
    return math.trunc(scaled) * unit


def ibsi_match(value: float, reference: float, tolerance: float) -> tuple[bool, float]:
    """The IBSI workbook rule; returns ``(match, truncated difference)``.

    The difference ``value - reference`` is truncated at the decimal position
    of the reference's third significant digit and must be within
    ``tolerance`` in absolute value. A zero reference has no significant
    digit: the plain difference is used.
    """
    if value is None or not np.isfinite(value):
        return False, float("nan")
    diff = float(value) - float(reference)
    if reference == 0:
        truncated = diff
    else:
        exponent = int(math.floor(math.log10(abs(reference)))) - 2
        truncated = truncate_at(diff, exponent)
    return abs(truncated) <= float(tolerance) * (1 + 1e-9), truncated


def to_ibsi(name: str, value: float) -> float:
    """A pyradiomics value expressed in IBSI's definition."""
    conv = CONVERSIONS.get(name)
    return conv[1](value) if conv else value


def compare(features: Mapping[str, float], configuration: str, references: pd.DataFrame,
            mapping: pd.DataFrame, dimensions: str | None = None) -> pd.DataFrame:
    """Per-feature comparison table of one configuration.

    Columns: configuration, family, ibsi_tag, feature_name, pyradiomics_name,
    value (pyradiomics), ibsi_value (after known conversions), conversion,
    reference, tolerance, difference, difference_truncated, match.
    """
    dims = dimensions or DIMENSIONS_OF_CONFIGURATION.get(configuration, "3D")
    ref = references[references["configuration"] == configuration].set_index("feature_tag")
    rows: list[dict[str, Any]] = []
    for _, m in mapping.iterrows():
        tag = tag_for_dimensions(m["ibsi_tag"], dims)
        if tag not in ref.index:
            continue
        r = ref.loc[tag]
        name = m["pyradiomics_name"]
        value = features.get(name, float("nan"))
        ibsi_value = to_ibsi(name, value)
        ok, trunc = ibsi_match(ibsi_value, float(r["reference_value"]), float(r["tolerance"]))
        rows.append({
            "configuration": configuration,
            "family": r["family"],
            "ibsi_tag": tag,
            "feature_name": r["feature_name"],
            "pyradiomics_name": name,
            "value": value,
            "ibsi_value": ibsi_value,
            "conversion": CONVERSIONS.get(name, ("",))[0],
            "reference": float(r["reference_value"]),
            "tolerance": float(r["tolerance"]),
            "difference": ibsi_value - float(r["reference_value"]),
            "difference_truncated": trunc,
            "match": bool(ok),
        })
    return pd.DataFrame(rows)


def compare_tagged(features: Mapping[str, float], configuration: str, references: pd.DataFrame,
                   engine: str = "pictologics", aggregation: str = "merged") -> pd.DataFrame:
    """Per-feature comparison of every feature of the original image whose IBSI tag
    (:func:`radsurv.features.ibsi_names.ibsi_tag`) has a reference value in ``configuration``;
    the columns of :func:`compare` (``pyradiomics_name`` holds the engine's column name)."""
    from radsurv.features.ibsi_names import ibsi_tag

    ref = references[references["configuration"] == configuration].set_index("feature_tag")
    rows: list[dict[str, Any]] = []
    for name, value in sorted(features.items()):
        if not name.startswith("original_"):
            continue
        tag = ibsi_tag(name, engine, aggregation)
        if tag is None or tag not in ref.index:
            continue
        r = ref.loc[tag]
        ibsi_value = to_ibsi(name, value) if engine == "pyradiomics" else value
        ok, trunc = ibsi_match(ibsi_value, float(r["reference_value"]), float(r["tolerance"]))
        rows.append({"configuration": configuration, "family": r["family"], "ibsi_tag": tag,
                     "feature_name": r["feature_name"], "pyradiomics_name": name, "value": value,
                     "ibsi_value": ibsi_value, "conversion": "", "reference": float(r["reference_value"]),
                     "tolerance": float(r["tolerance"]), "difference": ibsi_value - float(r["reference_value"]),
                     "difference_truncated": trunc, "match": bool(ok)})
    return pd.DataFrame(rows)


def run_site(image: str | Path, mask: str | Path, site: str | Mapping[str, Any], workdir: str | Path,
             sites_dir: str | Path | None = None, engine: Mapping[str, Any] | None = None
             ) -> tuple[dict[str, float], dict[str, Any]]:
    """Preprocess and extract one image/mask pair with a site preset, as the pipeline does.

    Calls exactly the user code path: :func:`radsurv.features.preprocess.preprocess_files`
    with settings from the site's ``preprocessing`` block, then
    :func:`radsurv.features.engines.extract` with the site's blocks, on the files
    preprocessing wrote. ``engine``: extraction keys laid over the site's (e.g.
    ``{"engine": "pictologics"}``).
    """
    from radsurv.config import load_site
    from radsurv.features.engines import extract
    from radsurv.features.preprocess import (
        IMAGE_FILE,
        INTENSITY_MASK_FILE,
        MORPH_MASK_FILE,
        PreprocessSettings,
        preprocess_files,
    )

    preset = load_site(site, sites_dir) if isinstance(site, str) else dict(site)
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    settings = PreprocessSettings.from_config(preset["preprocessing"])
    preprocess_files(image, mask, out / IMAGE_FILE, out / MORPH_MASK_FILE, settings, out / INTENSITY_MASK_FILE)
    extraction = {**preset["extraction"], **(engine or {})}
    return extract(out / IMAGE_FILE, out / MORPH_MASK_FILE, out / INTENSITY_MASK_FILE, extraction,
                   preset["preprocessing"])


def summarise(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Counts per configuration: compared, matched, and the non-matching tags."""
    rows = []
    for conf, t in tables.items():
        rows.append({
            "configuration": conf,
            "compared": int(len(t)),
            "matched": int(t["match"].sum()) if len(t) else 0,
            "not_matched": ", ".join(t.loc[~t["match"], "ibsi_tag"]) if len(t) else "",
        })
    return pd.DataFrame(rows)
