"""Figures for the report (matplotlib, Agg backend, readable in print)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_icc_by_class(table: pd.DataFrame, out_path: str | Path, threshold: float,
                      use_lower_bound: bool) -> None:
    """ICC distribution per feature class (box + points), threshold marked."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data = table.dropna(subset=["icc"])
    classes = sorted(data["feature_class"].unique()) if not data.empty else []
    values = [data.loc[data["feature_class"] == c, "icc"].to_numpy() for c in classes]
    if classes:
        ax.boxplot(values, showfliers=False)
        ax.set_xticks(range(1, len(classes) + 1), classes)
        rng = np.random.default_rng(0)  # jitter only
        for i, v in enumerate(values, start=1):
            ax.scatter(i + rng.uniform(-0.18, 0.18, len(v)), v, s=4, alpha=0.35, color="tab:blue")
    else:
        ax.text(0.5, 0.5, "robustness not assessed (too few test-retest pairs)",
                ha="center", va="center", transform=ax.transAxes)
    ax.axhline(threshold, color="tab:red", ls="--",
               label=f"threshold {threshold:.2f} ({'lower 95% bound' if use_lower_bound else 'estimate'})")
    ax.set_ylabel("test-retest ICC (point estimate)")
    ax.set_xlabel("pyradiomics feature class (all image types)")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Test-retest reproducibility by feature class")
    fig.tight_layout()
    fig.savefig(out_path, dpi=150)
    plt.close(fig)
