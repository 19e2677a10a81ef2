"""Feature names: which columns of a matrix are features, and what a name says.

pyradiomics names a feature ``<image type>_<class>_<feature>``
(``wavelet-LLH_glcm_Contrast``). These helpers parse such names and pick the
feature columns of the cohort matrix (:func:`radsurv.features.matrix.assemble`).
The workflow calls them while Snakemake parses the DAG, so this module imports
only the standard library (pandas for annotations only): no SimpleITK,
pyradiomics, scipy or matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Identifying columns of the feature matrix; every other column is a feature.
META_COLUMNS = ("scan_id", "patient_id", "session")


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns of a matrix made by :func:`radsurv.features.matrix.assemble`."""
    return [c for c in frame.columns if c not in META_COLUMNS]


def feature_class(name: str) -> str:
    """pyradiomics class of a feature name (``wavelet-LLH_glcm_Contrast`` -> ``glcm``)."""
    parts = name.split("_")
    return parts[1] if len(parts) >= 3 else "unknown"


def image_type(name: str) -> str:
    """Image type (filter) of a feature name (``wavelet-LLH_glcm_Contrast`` -> ``wavelet-LLH``)."""
    return name.split("_")[0]
