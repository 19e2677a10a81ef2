"""Validation of a published radiomic signature (fixed coefficients) on a cohort.

The signature is a YAML file with a ``coefficients`` mapping of pyradiomics
feature names to Cox coefficients (the format of ``aerts_2014.yaml``); its
linear predictor ``lp = sum(coef * feature)`` is applied to the cohort's raw
feature values unchanged: nothing is refit, so every metric is a genuine
external validation. Features that pyradiomics no longer computes but that are
defined from others are derived (:data:`DERIVED`).

Reported: Harrell's C, Uno's C (tau), td-AUC at the horizons (all with
bootstrap 95% CIs, paired with tumour volume alone), and the calibration slope
(the Cox coefficient of the linear predictor in the cohort, with its 95% CI;
1 means the published coefficients' scale fits the cohort).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from radsurv.modelling import metrics as M

__all__ = ["DERIVED", "load_signature", "linear_predictor", "validate_signature"]

#: Features derivable from others (pyradiomics 3 dropped Compactness1;
#: Compactness1 = V / (sqrt(pi) * A^(3/2)), V = MeshVolume, A = SurfaceArea).
DERIVED: dict[str, tuple[tuple[str, ...], Callable[[pd.DataFrame], pd.Series]]] = {
    "original_shape_Compactness1": (
        ("original_shape_MeshVolume", "original_shape_SurfaceArea"),
        lambda d: d["original_shape_MeshVolume"] / (math.sqrt(math.pi) * d["original_shape_SurfaceArea"] ** 1.5),
    ),
}


def load_signature(path: str | Path) -> dict[str, Any]:
    """``{"name", "coefficients"}`` from a signature YAML; validates the coefficients."""
    path = Path(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    coefs = doc.get("coefficients")
    if not isinstance(coefs, dict) or not coefs:
        raise ValueError(f"{path.name}: no 'coefficients' mapping (feature name -> coefficient)")
    bad = [k for k, v in coefs.items() if not isinstance(v, (int, float)) or not math.isfinite(float(v))]
    if bad:
        raise ValueError(f"{path.name}: non-numeric coefficient(s) for {bad}")
    return {"name": str(doc.get("name", path.stem)), "coefficients": {str(k): float(v) for k, v in coefs.items()}}


def linear_predictor(features: pd.DataFrame, coefficients: dict[str, float]) -> pd.Series:
    """``sum(coef * feature)`` per patient; derives :data:`DERIVED` features if absent.

    Raises:
        ValueError: a signature feature is neither in the table nor derivable.
    """
    cols = {}
    missing = []
    for f in coefficients:
        if f in features.columns:
            cols[f] = pd.to_numeric(features[f], errors="coerce").astype(float)
        elif f in DERIVED and all(c in features.columns for c in DERIVED[f][0]):
            cols[f] = DERIVED[f][1](features[list(DERIVED[f][0])].astype(float))
        else:
            missing.append(f)
    if missing:
        raise ValueError(f"signature feature(s) not in the feature table and not derivable: {missing}")
    D = pd.DataFrame(cols, index=features.index)
    lp = D.to_numpy() @ np.array([coefficients[f] for f in D.columns])
    return pd.Series(lp, index=features.index, name="linear_predictor")


def validate_signature(
    path: str | Path,
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    horizons: Sequence[float],
    tau: float | None,
    n_boot: int,
    seed: int,
    volume_feature: str | None = "original_shape_MeshVolume",
) -> pd.DataFrame:
    """Metrics of a published signature on the patients in both tables.

    Returns:
        Long table ``signature, model, metric, estimate, ci_low, ci_high, interval, n, events``
        (model ``signature`` and, for comparison, ``volume``).
    """
    sig = load_signature(path)
    feats = features.copy()
    feats.index = feats.index.astype(str)
    clin = clinical.assign(patient_id=clinical["patient_id"].astype(str)).set_index("patient_id")
    common = sorted(set(clin.index) & set(feats.index))
    if not common:
        raise ValueError("no patient in both the feature and the clinical table")
    lp = linear_predictor(feats.loc[common], sig["coefficients"])
    ok = np.isfinite(lp.to_numpy())
    ids = [c for c, o in zip(common, ok, strict=True) if o]
    y = M.surv_array(clin.loc[ids, "time"].astype(float), clin.loc[ids, "event"].astype(int))
    sets: dict[str, list[tuple[np.ndarray, None]]] = {"signature": [(lp.loc[ids].to_numpy(), None)]}
    if volume_feature and volume_feature in feats.columns:
        sets["volume"] = [(pd.to_numeric(feats.loc[ids, volume_feature], errors="coerce").to_numpy(float), None)]
    hz = list(horizons)
    tau_ = float(tau) if tau is not None else (float(max(hz)) if hz else None)
    # the censoring reference of the IPCW metrics is this cohort itself: a published
    # signature's training patients are not available
    perf = M.bootstrap_metrics(y, y, sets, np.array([]), hz, tau_, n_boot, seed,
                               reference="volume" if "volume" in sets else None)
    perf = perf[perf["metric"] != "ibs"].reset_index(drop=True)  # a published lp has no baseline survival
    slope = M.calibration_slope(y["time"], y["event"], np.exp(-np.exp(lp.loc[ids].to_numpy())))
    perf.loc[len(perf)] = {"model": "signature", "metric": "calibration_slope", "estimate": slope[0],
                           "ci_low": slope[1], "ci_high": slope[2],
                           "interval": M.INTERVAL_WALD if math.isfinite(slope[1]) else "", "n_boot_valid": 0}
    perf.insert(0, "signature", sig["name"])
    perf["n"] = len(ids)
    perf["events"] = int(y["event"].sum())
    perf["n_not_scorable"] = int((~ok).sum())
    return perf.reset_index(drop=True)
