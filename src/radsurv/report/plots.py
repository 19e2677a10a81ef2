"""Figures for the report (matplotlib, Agg backend, readable in print)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Image-type families shown apart: fine (detail-band) wavelet texture behaves
#: differently from the low-pass wavelet and the original image.
FAMILIES = ("original", "LoG", "wavelet LLL", "wavelet detail")
_FAMILY_COLOURS = {"original": "tab:blue", "LoG": "tab:green", "wavelet LLL": "tab:orange",
                   "wavelet detail": "tab:red"}


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 150) -> Path:
    """Lay ``fig`` out, write it to ``path`` (PNG; the folder is created) and close it; returns the path."""
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def image_family(image_type: str) -> str:
    """``original``, ``LoG``, ``wavelet LLL`` (low-pass) or ``wavelet detail`` (any H band)."""
    t = str(image_type).lower()
    if t.startswith("log"):
        return "LoG"
    if t.startswith("wavelet"):
        return "wavelet LLL" if t.endswith("lll") else "wavelet detail"
    return "original" if t == "original" else str(image_type)


def plot_icc_by_class(tables: pd.DataFrame | Mapping[str, pd.DataFrame], out_path: str | Path,
                      threshold: float, use_lower_bound: bool, ylabel: str | None = None,
                      title: str | None = None) -> None:
    """ICC distribution per feature class and image family (box + points), one panel per analysis.

    ``tables`` maps an analysis name (``test-retest``, ``perturbation`` ...) to
    its table (``feature_class``, ``image_type``, ``icc``); a single frame is
    shown as ``test-retest``. The dashed line is the robustness threshold.
    """
    if isinstance(tables, pd.DataFrame):
        tables = {"test-retest": tables}
    tables = {k: v.dropna(subset=["icc"]) for k, v in tables.items()}
    tables = {k: v for k, v in tables.items() if not v.empty}
    n_panels = max(len(tables), 1)
    fig, axes = plt.subplots(n_panels, 1, figsize=(11, 3.8 * n_panels), squeeze=False)
    crit = "lower 95% bound" if use_lower_bound else "estimate"
    if not tables:
        ax = axes[0, 0]
        ax.text(0.5, 0.5, "robustness not assessed (too few patients / pairs)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    rng = np.random.default_rng(0)  # jitter only
    for ax, (name, data) in zip(axes[:, 0], tables.items()):
        data = data.assign(family=[image_family(t) for t in data["image_type"]])
        classes = sorted(data["feature_class"].unique())
        fams = [f for f in FAMILIES if f in set(data["family"])] + sorted(set(data["family"]) - set(FAMILIES))
        width = 0.8 / len(fams)
        for j, fam in enumerate(fams):
            _family_boxes(ax, data, classes, fam, width, j, rng)
        ax.set_xticks(range(1, len(classes) + 1), classes)
        ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.2f} (on the {crit})")
        ax.set_ylabel(ylabel or f"{name} ICC (estimate)")
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(title or f"{name}: {data['form'].iloc[0]}, n = {int(data['n'].iloc[0])}, "
                     f"k = {int(data['k'].iloc[0])}", fontsize=10)
        ax.legend(loc="lower left", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("pyradiomics feature class")
    fig.tight_layout()
    fig.savefig(out_path, dpi=150)
    plt.close(fig)


def _family_boxes(ax: plt.Axes, data: pd.DataFrame, classes: list[str], fam: str, width: float, j: int,
                  rng: np.random.Generator) -> None:
    """One image family's ICC box and jittered points per feature class (``j``: its slot in a class)."""
    pos, vals = [], []
    for i, c in enumerate(classes):
        v = data.loc[(data["feature_class"] == c) & (data["family"] == fam), "icc"].to_numpy()
        if len(v):
            pos.append(i + 1 - 0.4 + width * (j + 0.5))
            vals.append(v)
    if not vals:
        return
    colour = _FAMILY_COLOURS.get(fam, "tab:gray")
    ax.boxplot(vals, positions=pos, widths=width * 0.85, showfliers=False, patch_artist=True,
               boxprops={"facecolor": colour, "alpha": 0.25}, medianprops={"color": colour})
    for p, v in zip(pos, vals):
        ax.scatter(p + rng.uniform(-width / 3, width / 3, len(v)), v, s=3, alpha=0.4, color=colour)
    n_rob = int(data.loc[data["family"] == fam, "robust"].sum()) if "robust" in data else 0
    ax.scatter([], [], color=colour, label=f"{fam} ({n_rob}/{int((data['family'] == fam).sum())} robust)")


def plot_bland_altman(long: pd.DataFrame, table: pd.DataFrame, out_path: str | Path, replicate: str,
                      title: str, n_each: int = 3) -> None:
    """Bland-Altman plots of the ``n_each`` most and least reproducible features.

    ``long`` has ``patient_id``, the ``replicate`` column (scan or perturbation)
    and the feature columns; ``table`` the ICC per feature. With two replicates
    (test-retest): difference (second - first) against the mean, with the bias
    and the 95% limits of agreement (bias +- 1.96 SD). With more
    (perturbations): each replicate's deviation from the patient's mean
    against that mean, limits +- 1.96 within-patient SD (sqrt of the one-way
    ANOVA within mean square).
    """
    ranked = table.dropna(subset=["icc"]).sort_values("icc", ascending=False)
    chosen = []
    if len(ranked):
        top = ranked.head(n_each)
        bottom = ranked.tail(min(n_each, max(len(ranked) - len(top), 0)))
        chosen = [(r.feature, r.icc, "most") for r in top.itertuples()] + \
                 [(r.feature, r.icc, "least") for r in bottom.itertuples()]
    ncols = max(min(n_each, len(chosen)), 1)
    nrows = max(int(np.ceil(len(chosen) / ncols)), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    if not chosen:
        axes[0, 0].text(0.5, 0.5, f"{title}: not assessed", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
    reps = list(dict.fromkeys(long[replicate])) if len(long) else []
    for ax, (feature, value, which) in zip(axes.ravel(), chosen):
        ax.set_axis_on()
        wide = long.pivot_table(index="patient_id", columns=replicate, values=feature, aggfunc="first")
        wide = wide[[r for r in reps if r in wide.columns]].dropna()
        mean = wide.mean(axis=1)
        if wide.shape[1] == 2:
            diff = wide.iloc[:, 1] - wide.iloc[:, 0]
            ax.scatter(mean, diff, s=12, color="tab:blue")
            bias, sd = float(diff.mean()), float(diff.std(ddof=1))
            ylab = f"{wide.columns[1]} - {wide.columns[0]}"
        else:
            dev = wide.sub(mean, axis=0)
            for col in dev.columns:
                ax.scatter(mean, dev[col], s=6, alpha=0.6, color="tab:blue")
            bias, sd = 0.0, float(np.sqrt(np.square(dev.to_numpy()).sum() / max(dev.size - len(dev), 1)))
            ylab = "replicate - patient mean"
        ax.axhline(bias, color="black", lw=1)
        for sign in (-1, 1):
            ax.axhline(bias + sign * 1.96 * sd, color="tab:red", ls="--", lw=1)
        short = feature if len(feature) <= 42 else feature[:40] + ".."
        ax.set_title(f"{which} reproducible: ICC {value:.2f}\n{short}", fontsize=8)
        ax.set_xlabel("patient mean", fontsize=8)
        ax.set_ylabel(ylab, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{title}: Bland-Altman (bias black, 95% limits of agreement red)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=130)
    plt.close(fig)
