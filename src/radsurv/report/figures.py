"""Figures of the review report drawn from the modelling and feature tables.

Each function reads result tables the workflow already wrote and draws one
PNG (matplotlib, Agg backend, axis labels with units, readable in print).
Nothing here fits a model: the report only shows what the analysis produced.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.cluster.hierarchy import leaves_list, linkage  # noqa: E402
from scipy.spatial.distance import squareform  # noqa: E402

MODEL_ORDER = ["radiomics", "volume", "clinical", "combined"]
COLOURS = {"radiomics": "tab:blue", "volume": "tab:orange", "clinical": "tab:green", "combined": "tab:purple"}


def _models(frame: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(frame["model"]))
    return [m for m in MODEL_ORDER if m in present] + [m for m in present if m not in MODEL_ORDER]


def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_td_auc(performance: pd.DataFrame, out_path: str | Path, time_unit: str) -> None:
    """Time-dependent AUC (cumulative/dynamic) per model at each horizon, with 95% CIs."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    main = performance[performance["set"].isin(["cross-validated", "validation"])]
    auc = main[main["metric"].str.fullmatch(r"auc_[0-9.]+")].copy()
    if auc.empty:
        _empty(ax, "no time-dependent AUC computed (no horizons configured)")
    else:
        auc["horizon"] = auc["metric"].str.slice(4).astype(float)
        models = _models(auc)
        width = 0.8 / max(len(models), 1)
        horizons = sorted(auc["horizon"].unique())
        span = (horizons[-1] - horizons[0]) / max(len(horizons) - 1, 1) if len(horizons) > 1 else 1.0
        for i, m in enumerate(models):
            d = auc[auc["model"] == m].sort_values("horizon")
            x = d["horizon"].to_numpy() + (i - (len(models) - 1) / 2) * width * span * 0.4
            err = np.vstack([d["estimate"] - d["ci_low"], d["ci_high"] - d["estimate"]])
            ax.errorbar(x, d["estimate"], yerr=np.clip(err, 0, None), marker="o", capsize=3,
                        label=m, color=COLOURS.get(m))
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_xticks(horizons)
        ax.set_ylim(0, 1)
        ax.legend(title="model", fontsize=8)
    ax.set_xlabel(f"horizon ({time_unit})")
    ax.set_ylabel("time-dependent AUC (95% CI)")
    ax.set_title("Discrimination over time (held-out predictions)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=150)
    plt.close(fig)


def plot_calibration(calibration: pd.DataFrame, out_path: str | Path, time_unit: str) -> None:
    """Predicted vs observed (Kaplan-Meier) survival per risk group, one panel per horizon."""
    horizons = sorted(calibration["horizon"].unique()) if not calibration.empty else []
    n = max(len(horizons), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
    if not horizons:
        _empty(axes[0, 0], "no calibration computed")
    for ax, h in zip(axes[0], horizons, strict=False):
        d = calibration[calibration["horizon"] == h]
        for m in _models(d):
            g = d[d["model"] == m].sort_values("predicted")
            err = np.vstack([g["observed"] - g["observed_ci_low"], g["observed_ci_high"] - g["observed"]])
            slope = g["slope"].iloc[0] if "slope" in g and pd.notna(g["slope"].iloc[0]) else None
            label = f"{m} (slope {slope:.2f})" if slope is not None else m
            ax.errorbar(g["predicted"], g["observed"], yerr=np.clip(err, 0, None), marker="o", capsize=3,
                        ls="-", label=label, color=COLOURS.get(m))
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="ideal")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel(f"predicted survival at {h:g} {time_unit}")
        ax.set_ylabel("observed survival (Kaplan-Meier, 95% CI)")
        ax.set_title(f"{h:g} {time_unit}")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Calibration by risk group (held-out predictions)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=150)
    plt.close(fig)


def plot_forest(coefficients: pd.DataFrame, out_path: str | Path, model: str = "radiomics",
                performance: pd.DataFrame | None = None) -> None:
    """Forest plot: the final model's hazard ratios, and every model's held-out C with its 95% CI.

    Left: hazard ratio per training SD of each feature of the final ``model`` (development
    cohort), with its 95% CI when ``coefficients`` has one (``hr_ci_low``/``hr_ci_high``).
    A penalised Cox fit has no valid CI for its coefficients, and none is invented: the
    panel then says that it shows point estimates only. Right (when ``performance`` is
    given): Harrell's C of every model on held-out patients with its paired bootstrap 95% CI,
    and the difference to the volume-only baseline, i.e. the intervals the analysis has.
    """
    d = coefficients[coefficients["model"] == model] if "model" in coefficients else coefficients
    perf = _held_out_c(performance) if performance is not None else pd.DataFrame()
    n_rows = max(len(d), len(perf), 3)
    ncols = 2 if not perf.empty else 1
    fig, axes = plt.subplots(1, ncols, figsize=(8 if ncols == 1 else 13, 0.45 * n_rows + 2.0), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2] if ncols == 2 else [1]})
    _hazard_ratio_panel(axes[0, 0], d, model)
    if ncols == 2:
        _held_out_c_panel(axes[0, 1], perf)
    fig.tight_layout()
    fig.savefig(out_path, dpi=150)
    plt.close(fig)


def _hazard_ratio_panel(ax: plt.Axes, d: pd.DataFrame, model: str) -> None:
    """Left panel of :func:`plot_forest`: hazard ratio per SD of each feature of the final model."""
    hr_col = "hr_per_sd" if "hr_per_sd" in d else "hr"
    has_ci = ({"hr_ci_low", "hr_ci_high"} <= set(d.columns) and not d.empty
              and d[["hr_ci_low", "hr_ci_high"]].notna().any().any())
    if d.empty or hr_col not in d:
        _empty(ax, f"the final {model} model has no features with a hazard ratio")
    else:
        d = d.sort_values(hr_col)
        y = np.arange(len(d))
        if has_ci:
            ax.hlines(y, d["hr_ci_low"], d["hr_ci_high"], color="grey", lw=2, zorder=2)
        ax.scatter(d[hr_col], y, color=COLOURS.get(model, "tab:blue"), zorder=3)
        ax.axvline(1.0, color="grey", ls=":")
        ax.set_yticks(y, [_short(f) for f in d["feature"]], fontsize=8)
        ax.set_xscale("log")
        from matplotlib.ticker import FormatStrFormatter
        for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
            axis(FormatStrFormatter("%.3g"))  # 0.8, 1, 1.05 rather than 8 x 10^-1
        ax.set_xlabel("hazard ratio per training standard deviation (log scale)")
    what = ("with 95% CI" if has_ci else
            "point estimates only: a penalised fit\nhas no valid CI for its coefficients")
    ax.set_title(f"Final {model} model, whole development cohort:\nhazard ratio per SD, {what}", fontsize=10)


def _held_out_c_panel(ax2: plt.Axes, perf: pd.DataFrame) -> None:
    """Right panel of :func:`plot_forest`: held-out C per model and its difference to volume alone."""
    y = np.arange(len(perf))[::-1]
    for yi, (_, r) in zip(y, perf.iterrows(), strict=True):
        colour = COLOURS.get(r["model"], "black") if r["kind"] == "C" else "black"
        if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
            ax2.hlines(yi, r["ci_low"], r["ci_high"], color=colour, lw=2)
        ax2.plot(r["estimate"], yi, "o" if r["kind"] == "C" else "D", color=colour)
    ax2.set_yticks(y, list(perf["label"]), fontsize=8)
    ax2.axvline(0.5, color="grey", ls=":", lw=1)
    ax2.axvline(0.0, color="grey", ls="--", lw=1)
    ax2.set_xlabel("Harrell's C (o) / difference in C to volume alone (◇)")
    ax2.set_title("Held-out discrimination, 95% paired bootstrap CI", fontsize=10)


def _held_out_c(performance: pd.DataFrame) -> pd.DataFrame:
    """Rows for the forest's performance panel: each model's held-out Harrell's C, then each
    model's difference to volume alone (columns label, model, kind, estimate, ci_low, ci_high)."""
    if performance is None or performance.empty:
        return pd.DataFrame()
    main = performance[performance["set"].isin(["cross-validated", "validation"])]
    rows = []
    for metric, kind, fmt in (("harrell_c", "C", "{m}: C"), ("delta_harrell_c_vs_volume", "delta", "{m} - volume")):
        for m in _models(main):
            r = main[(main["model"] == m) & (main["metric"] == metric)]
            if not r.empty:
                e, lo, hi = (float(r.iloc[0][k]) for k in ("estimate", "ci_low", "ci_high"))
                rows.append({"label": fmt.format(m=m), "model": m, "kind": kind, "estimate": e,
                             "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def _short(name: str, n: int = 48) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def plot_correlation_heatmap(features: pd.DataFrame, robust: list[str], highlight: list[str],
                             out_path: str | Path, max_features: int = 60) -> None:
    """|Spearman| among robust features (first scan per patient), clustered; model features marked.

    At most ``max_features`` are drawn: the model's features first, then the robust
    features in name order (a reproducible choice, not a data-driven one).
    """
    cols = [c for c in robust if c in features.columns]
    chosen = [c for c in highlight if c in cols]
    rest = [c for c in sorted(cols) if c not in chosen]
    cols = chosen + rest[: max(0, max_features - len(chosen))]
    fig, ax = plt.subplots(figsize=(9, 8))
    if len(cols) < 2:
        _empty(ax, "fewer than two robust features")
    else:
        rho = features[cols].rank().corr().abs().fillna(0).to_numpy()
        np.fill_diagonal(rho, 1.0)
        dist = squareform(1 - rho, checks=False)
        order = leaves_list(linkage(np.clip(dist, 0, None), method="average"))
        r = rho[np.ix_(order, order)]
        names = [cols[i] for i in order]
        im = ax.imshow(r, vmin=0, vmax=1, cmap="viridis")
        labels = [("★ " if n in chosen else "") + _short(n, 40) for n in names]
        fs = 5 if len(names) > 30 else 7
        ax.set_xticks(range(len(names)), labels, rotation=90, fontsize=fs)
        ax.set_yticks(range(len(names)), labels, fontsize=fs)
        fig.colorbar(im, ax=ax, label="|Spearman correlation|")
    ax.set_title(f"Robust features, clustered by correlation (★ = in the final model; {len(cols)} shown)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=150)
    plt.close(fig)


def model_comparison_table(performance: pd.DataFrame) -> pd.DataFrame:
    """Held-out metrics per model (rows) with 95% CIs as text (columns)."""
    main = performance[performance["set"].isin(["cross-validated", "validation"])]
    if main.empty:
        return pd.DataFrame()
    shown = r"harrell_c|uno_c|auc_[0-9.]+|ibs|delta_harrell_c_vs_volume"
    keep = [m for m in dict.fromkeys(main["metric"]) if re.fullmatch(shown, m)]
    rows = []
    for model in _models(main):
        row = {"model": model, "evaluation": main.loc[main["model"] == model, "set"].iloc[0]}
        for metric in keep:
            d = main[(main["model"] == model) & (main["metric"] == metric)]
            if d.empty:
                row[metric] = ""
                continue
            e, lo, hi = d.iloc[0][["estimate", "ci_low", "ci_high"]]
            row[metric] = f"{e:.3f} ({lo:.3f} to {hi:.3f})" if pd.notna(lo) else f"{e:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def draw_report_figures(performance_tsv: str | Path, calibration_tsv: str | Path, coefficients_tsv: str | Path,
                        features_tsv: str | Path, robust_txt: str | Path, td_auc_png: str | Path,
                        calibration_png: str | Path, forest_png: str | Path, heatmap_png: str | Path,
                        time_unit: str) -> None:
    """All report figures from the result tables (the ``report_figures`` rule)."""
    perf = pd.read_csv(performance_tsv, sep="\t")
    calib = pd.read_csv(calibration_tsv, sep="\t")
    coefs = pd.read_csv(coefficients_tsv, sep="\t")
    feats = pd.read_csv(features_tsv, sep="\t", dtype={"patient_id": str})
    first = feats.sort_values(["patient_id", "session"]).groupby("patient_id").head(1)
    robust = [ln.strip() for ln in Path(robust_txt).read_text().splitlines() if ln.strip()]
    in_model = coefs.loc[coefs.get("model", pd.Series("radiomics", index=coefs.index)) == "radiomics", "feature"]
    plot_td_auc(perf, td_auc_png, time_unit)
    plot_calibration(calib, calibration_png, time_unit)
    plot_forest(coefs, forest_png, performance=perf)
    plot_correlation_heatmap(first, robust, list(in_model), heatmap_png)
