"""Kaplan-Meier curves per risk group, with numbers at risk and the log-rank p.

Uses the non-interactive Agg backend; writes a PNG at 150 dpi that stays
readable in print (line styles differ per group, not only colours).
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from lifelines import KaplanMeierFitter  # noqa: E402
from lifelines.plotting import add_at_risk_counts  # noqa: E402
from lifelines.statistics import multivariate_logrank_test  # noqa: E402

__all__ = ["plot_km", "format_p", "wrap_title"]

GROUP_ORDER = ("low", "intermediate", "high")
# Okabe-Ito colours (colour-blind safe) + distinct line styles (greyscale print)
STYLE = {
    "low": {"color": "#0072B2", "linestyle": "-"},
    "intermediate": {"color": "#E69F00", "linestyle": "-."},
    "high": {"color": "#D55E00", "linestyle": "--"},
}
DPI = 150
#: characters per title line: a 12 pt title over the 7-inch figure holds about 65
TITLE_WIDTH = 58


def wrap_title(title: str, width: int = TITLE_WIDTH) -> str:
    """``title`` broken into lines of at most ``width`` characters (at word boundaries), so
    that no title is cut off at the figure's edges."""
    return "\n".join(textwrap.wrap(title, width=width, break_long_words=False)) or title


def format_p(p: float | None) -> str:
    """``p = 0.032`` / ``p < 0.001`` / ``p = n/a``."""
    if p is None or not np.isfinite(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}"


def plot_km(
    predictions: pd.DataFrame,
    out_path: Path | str,
    subset: str = "test",
    title: str | None = None,
    time_unit: str = "months",
) -> None:
    """Plot Kaplan-Meier curves per risk group of one subset and save a PNG.

    Args:
        predictions: ``ModelResult.predictions`` (columns ``set, time, event, risk_group``).
        out_path: PNG path (parent directories are created).
        subset: ``"test"``, ``"train"`` or ``"all"`` (every row).
        title: figure title; default names the subset.
        time_unit: unit of ``time`` for the x-axis label (no conversion is done).

    Each group gets a KM curve with its 95% confidence band; the numbers at risk
    are tabulated under the x-axis (``lifelines.plotting.add_at_risk_counts``)
    and the log-rank p between groups is shown in the legend title.

    Raises:
        ValueError: required columns missing or the subset has no rows.
    """
    need = {"time", "event", "risk_group"} | ({"set"} if subset != "all" else set())
    missing = sorted(need - set(predictions.columns))
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}")
    df = predictions if subset == "all" else predictions[predictions["set"] == subset]
    if df.empty:
        raise ValueError(f"no rows in subset {subset!r}")
    df = df.assign(time=df["time"].astype(float), event=df["event"].astype(int))

    present = [g for g in GROUP_ORDER if (df["risk_group"] == g).any()]
    present += sorted(set(df["risk_group"].astype(str)) - set(GROUP_ORDER))

    p_value: float | None = None
    if len(present) >= 2 and df["event"].sum() > 0:
        p_value = float(multivariate_logrank_test(df["time"], df["risk_group"], df["event"]).p_value)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11}):
        fig, ax = plt.subplots(figsize=(7.0, 6.0))
        try:
            fitters = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # CI of tiny / event-free groups
                for g in present:
                    d = df[df["risk_group"] == g]
                    kmf = KaplanMeierFitter(label=f"{g} risk (n={len(d)}, events={int(d['event'].sum())})")
                    kmf.fit(d["time"], d["event"])
                    kmf.plot_survival_function(
                        ax=ax, ci_show=True, ci_alpha=0.15, show_censors=True,
                        censor_styles={"ms": 5, "marker": "|"}, linewidth=2,
                        **STYLE.get(g, {}),
                    )
                    fitters.append(kmf)
                ax.set_xlim(left=0)
                ax.set_ylim(0, 1.02)
                ax.set_xlabel(f"Time ({time_unit})")
                ax.set_ylabel("Overall survival probability")
                ax.grid(alpha=0.3)
                ax.legend(loc="upper right", title=f"Log-rank {format_p(p_value)}", frameon=True)
                ax.set_title(wrap_title(title or f"Kaplan-Meier by risk group ({subset} set, n={len(df)})"))
                add_at_risk_counts(*fitters, ax=ax, fig=fig, rows_to_show=["At risk"],
                                   labels=[f"{g}" for g in present])
            fig.tight_layout()
            fig.savefig(out_path, dpi=DPI)
        finally:
            plt.close(fig)
