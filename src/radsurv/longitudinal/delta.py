"""Delta features per ROI and feature, judged against the feature's repeatability coefficient.

For each patient, ROI feature (``gtv__original_firstorder_Mean``, ...) and later time point:

* ``abs_change`` = value - baseline value;
* ``rel_change`` = abs_change / |baseline|; guarded: when |baseline| is below ``relative_floor``
  times the feature's median |baseline| over the patients the ratio would be meaningless, so it
  is NaN and ``rel_guarded`` is set (never a huge ratio);
* ``log_ratio`` = ln(value / baseline), only where both are > 0 (NaN otherwise);
* per patient and feature, ``slope`` = least-squares change per day over all available time
  points (baseline included; at least ``min_slope_points``).

Repeatability coefficient (Bland & Altman 1999; QIBA): RC = 1.96 * sqrt(2) * wSD, with the
within-subject SD wSD = sqrt(mean over pairs of d^2 / 2) from the test-retest pairs, or, without
pairs, wSD = sqrt(mean over scans of the variance across the scan's perturbed copies). A change
with |abs_change| <= RC is inside the measurement noise: ``changed`` is False and
``abs_change_gated`` (what the delta models use) is 0, i.e. "no change"; the raw values are kept
beside it. A slope is gated the same way on its change over the patient's span of days.
:func:`select_delta_features` then drops the features whose change exceeds the RC in fewer than
``min_changed_fraction`` of the patients, with a table saying which and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radsurv.schema import default

__all__ = [
    "RC_FACTOR",
    "DeltaSettings",
    "delta_matrix",
    "delta_table",
    "missing_baseline_qc",
    "rc_from_perturbation",
    "rc_from_retest",
    "select_delta_features",
    "slope_table",
]

#: RC = 1.96 * sqrt(2) * wSD (about 2.77 wSD)
RC_FACTOR = 1.96 * math.sqrt(2.0)


def _d(key: str) -> Any:
    return default("longitudinal", "delta", key)


STAGE_DELTA = "longitudinal_delta"
RC_COLUMNS = ["feature", "wsd", "rc", "n", "source"]
DELTA_COLUMNS = ["patient_id", "feature", "timepoint", "days", "baseline", "value", "abs_change", "rel_change",
                 "rel_guarded", "log_ratio", "rc", "changed", "abs_change_gated"]
SLOPE_COLUMNS = ["patient_id", "feature", "n_points", "span_days", "slope", "rc", "changed", "slope_gated"]


@dataclass(frozen=True)
class DeltaSettings:
    """The ``longitudinal.delta`` config block (defaults from the config schema).

    ``relative_floor``: fraction of the feature's median |baseline| below which the relative
    change is not computed. ``min_changed_fraction``: a feature is kept for modelling when its
    change exceeds the RC in at least this fraction of patients (at any later time point).
    ``min_slope_points``: time points needed for a slope.
    """

    relative_floor: float = _d("relative_floor")
    min_changed_fraction: float = _d("min_changed_fraction")
    min_slope_points: int = _d("min_slope_points")

    def __post_init__(self) -> None:
        if not 0.0 <= self.relative_floor < 1.0:
            raise ValueError(f"longitudinal.delta.relative_floor must be in [0, 1), got {self.relative_floor}")
        if not 0.0 <= self.min_changed_fraction <= 1.0:
            raise ValueError("longitudinal.delta.min_changed_fraction must be in [0, 1], "
                             f"got {self.min_changed_fraction}")
        if self.min_slope_points < 2:
            raise ValueError(f"longitudinal.delta.min_slope_points must be >= 2, got {self.min_slope_points}")


def _rc_frame(wsd: pd.Series, n: pd.Series, source: str) -> pd.DataFrame:
    out = pd.DataFrame({"feature": wsd.index, "wsd": wsd.to_numpy(float), "n": n.reindex(wsd.index).to_numpy(int)})
    out["rc"] = RC_FACTOR * out["wsd"]
    out["source"] = source
    return out[RC_COLUMNS].reset_index(drop=True)


def rc_from_retest(test: pd.DataFrame, retest: pd.DataFrame) -> pd.DataFrame:
    """Repeatability coefficient of every feature from test-retest pairs.

    ``test`` and ``retest`` are feature frames with the same index (one row per pair) and
    columns; a pair missing a feature does not count for it. Returns ``feature, wsd, rc, n, source``.
    """
    d = retest[test.columns].astype(float) - test.astype(float)
    n = d.notna().sum()
    wsd = np.sqrt((d**2).mean() / 2.0)
    return _rc_frame(wsd.where(n > 0), n, "test-retest")


def rc_from_perturbation(copies: pd.DataFrame, scan_column: str = "scan_id") -> pd.DataFrame:
    """Repeatability coefficient from perturbed copies: ``copies`` has one row per copy, a
    ``scan_column`` naming the scan it perturbs and the feature columns. wSD is the root mean
    within-scan variance (ddof 1) over the scans with at least two copies."""
    feats = [c for c in copies.columns if c != scan_column]
    grp = copies.groupby(scan_column)[feats]
    var = grp.var(ddof=1)
    n = var.notna().sum()
    return _rc_frame(np.sqrt(var.mean()).where(n > 0), n, "perturbation")


def _exceeds(size: pd.Series, rc: pd.Series) -> pd.Series:
    """|change| > RC; a feature without an RC is not gated; a missing change is no change."""
    return ((size > rc) | (rc.isna() & size.notna())).astype(bool)


def missing_baseline_qc(features: pd.DataFrame) -> list[dict[str, str]]:
    """One QC row per patient with later time points but no baseline row: no delta for them."""
    from radsurv.qc import qc_row

    has_base = set(features.loc[features["timepoint_index"] == 0, "patient_id"])
    return [qc_row(str(pid), "", STAGE_DELTA, "excluded",
                   "no usable baseline (planning) scan: no change can be computed for this patient")
            for pid in sorted(set(features["patient_id"]) - has_base)]


def _melt(features: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return features.melt(id_vars=["patient_id", "timepoint", "timepoint_index", "days"], value_vars=cols,
                         var_name="feature", value_name="value")


def delta_table(features: pd.DataFrame, rc: pd.DataFrame, settings: DeltaSettings) -> pd.DataFrame:
    """Change of every feature from baseline (``timepoint_index`` 0) to each later time point.

    ``features`` is the longitudinal feature table: one row per patient and time point with
    ``patient_id``, ``timepoint``, ``timepoint_index``, ``days`` and ROI-prefixed feature columns
    (other columns are ignored if not numeric features: pass only features after the four keys).
    ``rc`` comes from :func:`rc_from_retest` / :func:`rc_from_perturbation`; a feature without an
    RC is not gated (``rc`` NaN, every change counts) -- the caller should have one for each.
    Patients without a baseline row have no deltas (their rows are absent; the caller records
    the QC row when the baseline scan failed).
    """
    cols = [c for c in features.columns if c not in ("patient_id", "timepoint", "timepoint_index", "days")]
    long = _melt(features, cols)
    base = long[long["timepoint_index"] == 0][["patient_id", "feature", "value"]].rename(columns={"value": "baseline"})
    later = long[long["timepoint_index"] > 0].merge(base, on=["patient_id", "feature"], how="inner")
    floor = (base.assign(a=base["baseline"].abs()).groupby("feature")["a"].median() * settings.relative_floor)
    later["abs_change"] = later["value"] - later["baseline"]
    fl = later["feature"].map(floor).fillna(0.0)
    later["rel_guarded"] = ~(later["baseline"].abs() > fl)
    later["rel_change"] = (later["abs_change"] / later["baseline"].abs()).where(~later["rel_guarded"])
    pos = (later["baseline"] > 0) & (later["value"] > 0)
    later["log_ratio"] = np.log((later["value"] / later["baseline"]).where(pos))
    later["rc"] = later["feature"].map(rc.set_index("feature")["rc"]).astype(float)
    later["changed"] = _exceeds(later["abs_change"].abs(), later["rc"])
    later["abs_change_gated"] = later["abs_change"].where(later["changed"], 0.0)
    later = later.sort_values(["patient_id", "feature", "timepoint_index"], kind="stable")
    return later[DELTA_COLUMNS].reset_index(drop=True)


def slope_table(features: pd.DataFrame, rc: pd.DataFrame, settings: DeltaSettings) -> pd.DataFrame:
    """Least-squares slope (per day) of every feature over each patient's available time points.

    Gated like a change: when |slope| x the patient's span of days is within the RC the slope is
    "no change" (``slope_gated`` 0). Fewer than ``min_slope_points`` points: no row.
    """
    cols = [c for c in features.columns if c not in ("patient_id", "timepoint", "timepoint_index", "days")]
    long = _melt(features, cols).dropna(subset=["value", "days"])
    rows = []
    for (pid, feat), g in long.groupby(["patient_id", "feature"], sort=True):
        if len(g) < settings.min_slope_points or g["days"].nunique() < 2:
            continue
        x = g["days"].to_numpy(float)
        slope = float(np.polyfit(x, g["value"].to_numpy(float), 1)[0])
        rows.append({"patient_id": pid, "feature": feat, "n_points": len(g), "span_days": float(np.ptp(x)),
                     "slope": slope})
    out = pd.DataFrame(rows, columns=["patient_id", "feature", "n_points", "span_days", "slope"])
    out["rc"] = out["feature"].map(rc.set_index("feature")["rc"]).astype(float)
    out["changed"] = _exceeds((out["slope"] * out["span_days"]).abs(), out["rc"])
    out["slope_gated"] = out["slope"].where(out["changed"], 0.0)
    return out[SLOPE_COLUMNS]


def select_delta_features(delta: pd.DataFrame, settings: DeltaSettings) -> pd.DataFrame:
    """Which features' changes go to modelling: kept when the change exceeds the RC (at any later
    time point) in at least ``min_changed_fraction`` of the patients.

    Returns ``feature, n_patients, n_changed, fraction_changed, rc, kept, reason``.
    """
    per_patient = delta.groupby(["feature", "patient_id"])["changed"].any().reset_index()
    agg = per_patient.groupby("feature")["changed"].agg(n_patients="size", n_changed="sum").reset_index()
    agg["fraction_changed"] = agg["n_changed"] / agg["n_patients"]
    agg["rc"] = agg["feature"].map(delta.groupby("feature")["rc"].first())
    agg["kept"] = agg["fraction_changed"] >= settings.min_changed_fraction
    agg["reason"] = [
        (f"change exceeds the repeatability coefficient in {f:.0%} of patients (>= {settings.min_changed_fraction:.0%})"
         if k else
         f"change exceeds the repeatability coefficient in only {f:.0%} of patients "
         f"(< {settings.min_changed_fraction:.0%}): within measurement noise, dropped before modelling")
        for f, k in zip(agg["fraction_changed"], agg["kept"], strict=True)
    ]
    return agg[["feature", "n_patients", "n_changed", "fraction_changed", "rc", "kept", "reason"]]


def delta_matrix(delta: pd.DataFrame, timepoint: str, features: list[str] | None = None,
                 value: str = "abs_change_gated") -> pd.DataFrame:
    """Patients x features matrix of one time point's deltas (``value`` column; gated absolute
    change by default), columns named ``<feature>__delta_<timepoint>``."""
    d = delta[delta["timepoint"] == timepoint]
    if features is not None:
        d = d[d["feature"].isin(features)]
    wide = d.pivot(index="patient_id", columns="feature", values=value)
    wide.columns = [f"{c}__delta_{timepoint}" for c in wide.columns]
    return wide.sort_index()
