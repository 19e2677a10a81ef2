"""Figures and the report section of the delta-radiomics study (issue #18).

Reads the files of ``workflow/rules/longitudinal.smk`` (``results/longitudinal/``): the feature
table (one row per assigned scan; ``<roi>__propagated`` marks propagated masks), the propagation
quality table, the selection, the landmark table, the performance table
(:func:`radsurv.longitudinal.study.compare_delta_models`: Harrell's C per model and the paired
difference to baseline-only, with percentile bootstrap CIs) and the out-of-fold predictions.

Risk groups of the trajectories: each landmark patient's out-of-fold risk of the baseline +
delta model (mean over CV repeats; every risk from a model that never saw the patient), split at
the median. The section is returned as report *blocks* (as :mod:`radsurv.report.classification`),
rendered by :mod:`radsurv.report.html`; nothing when the run has no longitudinal study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["REPORT_INPUTS", "SECTION", "WATERFALL_COLOURS", "longitudinal_blocks", "plot_trajectories",
           "plot_waterfall", "propagation_quality", "risk_groups", "waterfall_bars"]

#: Anchor and title of the section.
SECTION = ("longitudinal", "Delta radiomics")
#: ``write_report``'s named inputs of the section.
REPORT_INPUTS = ("longitudinal_features", "longitudinal_propagation", "longitudinal_selection",
                 "longitudinal_landmark", "longitudinal_performance", "longitudinal_predictions",
                 "longitudinal_trajectories_png", "longitudinal_waterfall_png", "longitudinal_qc")
VOLUME = "original_shape_MeshVolume"
MODEL_LABELS = {"baseline": "baseline (planning) features", "delta": "change to the landmark (delta)",
                "baseline_delta": "baseline + delta", "rtvc": "relative tumour volume change (classic comparator)"}


def risk_groups(predictions: pd.DataFrame, model: str = "baseline_delta") -> pd.Series:
    """``high`` / ``low`` per patient: mean out-of-fold risk of ``model`` above / at most its median."""
    risk = predictions[predictions["model"] == model].groupby("patient_id")["risk"].mean()
    return pd.Series(np.where(risk > risk.median(), "high", "low"), index=risk.index, name="risk_group")


def _relative_volume(features: pd.DataFrame, roi: str) -> pd.DataFrame:
    """Volume relative to planning per patient and time point (``timepoint_index``, ``ratio``)."""
    col = f"{roi}__{VOLUME}"
    tp = features[features["role"] == "timepoint"][["patient_id", "timepoint_index", col]].dropna()
    base = tp[tp["timepoint_index"] == 0].set_index("patient_id")[col]
    tp = tp[tp["patient_id"].isin(base.index)]
    return tp.assign(ratio=tp[col].to_numpy() / tp["patient_id"].map(base).to_numpy())


def plot_trajectories(features: pd.DataFrame, predictions: pd.DataFrame, rois: Sequence[str],
                      timepoints: Sequence[str], path: str | Path) -> None:
    """Per ROI, volume relative to planning at each time point: median and interquartile range per risk group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = risk_groups(predictions)
    fig, axes = plt.subplots(1, len(rois), figsize=(4.2 * len(rois), 3.8), squeeze=False, sharey=True)
    for ax, roi in zip(axes[0], rois, strict=True):
        rv = _relative_volume(features, roi)
        rv = rv.assign(group=rv["patient_id"].map(groups)).dropna(subset=["group"])
        for g, style in (("low", {"color": "#0072B2", "linestyle": "-"}), ("high", {"color": "#D55E00",
                                                                                     "linestyle": "--"})):
            q = rv[rv["group"] == g].groupby("timepoint_index")["ratio"].quantile([0.25, 0.5, 0.75]).unstack()
            if q.empty:
                continue
            ax.plot(q.index, q[0.5], marker="o", label=f"{g} risk (median)", **style)
            ax.fill_between(q.index, q[0.25], q[0.75], color=style["color"], alpha=0.2)
        ax.set_title(roi)
        ax.set_xticks(range(len(timepoints)), list(timepoints), rotation=45)
        ax.axhline(1.0, color="grey", lw=0.8)
    axes[0][0].set_ylabel("volume relative to planning")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


WATERFALL_COLOURS = {"event": "#D55E00", "censored": "#0072B2", "not at risk": "#CC79A7",
                     "outcome 1": "#D55E00", "outcome 0": "#0072B2", "not modelled": "#CC79A7",
                     "no change (within RC)": "#BBBBBB"}


def waterfall_bars(delta: pd.DataFrame, tumour: str, landmark: str, outcome: pd.DataFrame) -> pd.DataFrame:
    """The waterfall's bars: per patient, the tumour's relative volume change at the landmark (%),
    sorted from growth to shrinkage, and its category: ``no change (within RC)`` when the change is
    inside the repeatability coefficient, else the outcome counted from the landmark (``event`` /
    ``censored``, from the landmark table's ``event``) or ``not at risk`` (excluded at the landmark);
    for a binary endpoint (a ``label`` column) ``outcome 1`` / ``outcome 0`` / ``not modelled``."""
    d = delta[(delta["feature"] == f"{tumour}__{VOLUME}") & (delta["timepoint"] == landmark)]
    d = d.dropna(subset=["rel_change"]).sort_values(["rel_change", "patient_id"], ascending=[False, True])
    binary = "label" in outcome.columns
    event = outcome.set_index("patient_id")["label" if binary else "event"].astype(int)
    at_risk = d["patient_id"].map(event)
    yes, no, absent = ("outcome 1", "outcome 0", "not modelled") if binary else ("event", "censored", "not at risk")
    category = np.where(~d["changed"].astype(bool), "no change (within RC)",
                        np.where(at_risk.isna(), absent, np.where(at_risk == 1, yes, no)))
    return pd.DataFrame({"patient_id": d["patient_id"].to_numpy(),
                         "change_pct": 100.0 * d["rel_change"].to_numpy(float), "category": category})


def plot_waterfall(delta: pd.DataFrame, tumour: str, landmark: str, outcome: pd.DataFrame,
                   path: str | Path) -> None:
    """Relative tumour volume change at the landmark, one bar per patient, sorted, coloured by the
    outcome after the landmark (:func:`waterfall_bars`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = waterfall_bars(delta, tumour, landmark, outcome)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.18 * len(bars)), 3.8))
    ax.bar(range(len(bars)), bars["change_pct"], color=bars["category"].map(WATERFALL_COLOURS).tolist())
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("patients (sorted)")
    ax.set_ylabel(f"{tumour} volume change to {landmark} (%)")
    ax.set_xticks([])
    present = [c for c in WATERFALL_COLOURS if (bars["category"] == c).any()]
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=WATERFALL_COLOURS[c]) for c in present],
              labels=[f"{c} (n={int((bars['category'] == c).sum())})" for c in present], fontsize=8,
              title=f"after {landmark}", title_fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def propagation_quality(prop: pd.DataFrame) -> pd.DataFrame:
    """Per ROI: propagations, masks used for features, Dice against own contours (median, worst),
    rigid fits rejected for rotating beyond ``rigid_max_rotation_deg`` (their translation used),
    Jacobian determinant range and the largest folding fraction."""
    rows = []
    for roi, g in prop.groupby("roi", sort=True):
        dice = g["dice"].dropna()
        rows.append({"ROI": roi, "propagated": len(g), "propagated masks used": int(g["used"].astype(bool).sum()),
                     "Dice vs own contour (n)": len(dice),
                     "Dice median": float(dice.median()) if len(dice) else float("nan"),
                     "Dice worst": float(dice.min()) if len(dice) else float("nan"),
                     "rigid rotation rejected": int(g["rigid_bounded"].astype(bool).sum()),
                     "Jacobian min": float(g["jacobian_min"].min()), "Jacobian max": float(g["jacobian_max"].max()),
                     "folding fraction (max)": float(g["jacobian_folding_fraction"].max())})
    return pd.DataFrame(rows)


def _comparison(perf: pd.DataFrame) -> pd.DataFrame:
    """Harrell's C (survival) or ROC AUC (binary endpoint) per model and the paired difference to
    baseline-only, each with its bootstrap CI."""
    def ci(r: pd.Series) -> str:
        return f"{r['estimate']:.3f} ({r['ci_low']:.3f} to {r['ci_high']:.3f})"

    metric, name = ("roc_auc", "ROC AUC") if (perf["metric"] == "roc_auc").any() else ("harrell_c", "Harrell's C")
    rows = []
    for model, label in MODEL_LABELS.items():
        p = perf[perf["model"] == model].set_index("metric")
        if metric not in p.index:
            continue
        diff = p.loc[f"delta_{metric}_vs_baseline"] if f"delta_{metric}_vs_baseline" in p.index else None
        rows.append({"model": label, f"{name} (95% bootstrap CI)": ci(p.loc[metric]),
                     "difference to baseline-only (paired 95% bootstrap CI)": "reference" if diff is None
                     else ci(diff)})
    return pd.DataFrame(rows)


def longitudinal_blocks(inputs: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The section's report blocks; empty when the run has no longitudinal study."""
    if not inputs.get("longitudinal_features"):
        return []
    ids = {"patient_id": str, "scan_id": str}
    f = pd.read_csv(inputs["longitudinal_features"], sep="\t", dtype=ids)
    prop = pd.read_csv(inputs["longitudinal_propagation"], sep="\t", dtype=ids)
    sel = pd.read_csv(inputs["longitudinal_selection"], sep="\t")
    lm = pd.read_csv(inputs["longitudinal_landmark"], sep="\t", dtype=ids)
    qc = pd.read_csv(inputs["longitudinal_qc"], sep="\t", dtype=str)
    counts = f.groupby(["timepoint_index", "timepoint", "role"]).size().rename("scans").reset_index()
    flags = [c for c in f.columns if c.endswith("__propagated")]
    used = f.melt(id_vars=["patient_id", "scan_id", "timepoint"], value_vars=flags, var_name="roi")
    used = used[used["value"] == 1].assign(roi=lambda d: d["roi"].str.replace("__propagated", ""))
    landmark = str(lm["landmark"].iloc[0]) if len(lm) else ""
    binary = "label" in lm.columns
    return [
        ("h2", *SECTION),
        ("p", "", f"{f['patient_id'].nunique()} patients, {len(f)} scans assigned to time points "
                  f"({int((f['role'] == 'retest').sum())} test-retest scans); {len(qc)} QC rows (scans fitting no "
                  "window or sharing one, absent ROIs, patients without planning scan or not at risk at the "
                  "landmark)."),
        ("table", counts.drop(columns="timepoint_index")),
        ("h3", "Contour propagation quality"),
        ("p", "", "Where a time point has no contour of its own, the planning contour is propagated (rigid, then "
                  "demons, inside a margin around the ROI). Dice is measured where the time point also has its own "
                  "contour; a Jacobian determinant <= 0 means folding."),
        ("table", propagation_quality(prop)),
        ("p", "", f"Propagated masks used for features ({len(used)}; marked <roi>__propagated = 1 in the "
                  "feature table):"),
        ("table", used[["patient_id", "scan_id", "timepoint", "roi"]].reset_index(drop=True)),
        ("h3", "Trajectories and volume change"),
        ("img", inputs["longitudinal_trajectories_png"], "ROI volume relative to planning by risk group"),
        ("img", inputs["longitudinal_waterfall_png"], "Waterfall of tumour volume change at the landmark, "
                                                        "coloured by the outcome after it"),
        ("h3", f"Model comparison (landmark {landmark}, {len(lm)} patients "
               f"{'with a label' if binary else 'at risk'})"),
        ("p", "", f"{int(sel['kept'].sum())} of {len(sel)} delta features change beyond the repeatability "
                  "coefficient in enough patients and enter the models. "
                  + (f"Binary endpoint ({int(lm['label'].sum())} of {len(lm)} patients with outcome 1); "
                     "out-of-fold probabilities" if binary else "Survival counted from the landmark; "
                     "out-of-fold risks") + " of repeated cross-validation, every step fit inside the training folds."),
        ("table", _comparison(pd.read_csv(inputs["longitudinal_performance"], sep="\t"))),
        ("links", [inputs[k] for k in ("longitudinal_features", "longitudinal_propagation", "longitudinal_selection",
                                       "longitudinal_performance", "longitudinal_qc")]),
    ]
