"""Radiogenomics screen: association of every (robust) radiomic feature with biology columns.

For each biology column the test follows its type: binary -> Mann-Whitney U (effect:
AUC of the feature for the second level, 0.5 = none), categorical (> 2 levels) ->
Kruskal-Wallis H (effect: epsilon-squared), continuous -> Spearman rho. P-values are
corrected per column with Benjamini-Hochberg (scipy's ``false_discovery_control``).
With ``adjust_volume`` every feature is first residualised on log tumour volume
(ordinary least squares on the patients with that column recorded), so a feature that
only restates tumour size is not reported as biology; the volume feature itself is
reported unadjusted for reference.

This is a hypothesis-generating screen, not a predictive model: it uses every patient.
Called by rule ``radiogenomics_screen`` (:mod:`radsurv.workflow.biology`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["column_type", "residualise_on_volume", "radiogenomics_screen", "screen_columns", "plot_radiogenomics",
           "SCREEN_COLUMNS"]

#: Columns of the screen's table (also when no column could be screened).
SCREEN_COLUMNS = ["biology", "type", "feature", "n", "effect", "effect_name", "p", "q", "volume_adjusted"]

BIOLOGY_TYPES = ("binary", "categorical", "continuous")


def column_type(values: pd.Series) -> str:
    """``binary`` (2 distinct values), ``categorical`` (text or <= 6 integer levels) or
    ``continuous`` (numbers)."""
    v = values.dropna()
    n = v.nunique()
    if n < 2:
        raise ValueError(f"biology column {values.name!r} has fewer than two distinct values")
    if n == 2:
        return "binary"
    num = pd.to_numeric(v, errors="coerce")
    if num.notna().all():
        if n <= 6 and np.allclose(num, np.round(num)):
            return "categorical"
        return "continuous"
    return "categorical"


def residualise_on_volume(features: pd.DataFrame, volume: pd.Series) -> pd.DataFrame:
    """Features minus their least-squares fit on ``log(volume)`` (``volume`` as is when not
    all positive, e.g. an already standardised table), with the intercept kept so the
    residuals stay centred on each feature's mean."""
    v = pd.to_numeric(volume, errors="coerce").astype(float)
    if v.isna().any():
        raise ValueError("tumour volume is missing for some patients: cannot adjust for it")
    lv = np.log(v.to_numpy()) if (v > 0).all() else v.to_numpy()
    A = np.column_stack([np.ones(len(lv)), lv])
    F = features.to_numpy(float)
    out = np.full_like(F, np.nan)
    for j in range(F.shape[1]):
        ok = np.isfinite(F[:, j])
        if ok.sum() < 3:
            continue
        beta, *_ = np.linalg.lstsq(A[ok], F[ok, j], rcond=None)
        out[ok, j] = F[ok, j] - A[ok, 1] * beta[1]
    return pd.DataFrame(out, index=features.index, columns=features.columns)


def _test(x: np.ndarray, b: pd.Series, kind: str) -> tuple[float, float]:
    """(effect, p) of feature values ``x`` against biology ``b`` (aligned, no missing)."""
    if kind == "binary":
        levels = sorted(b.unique(), key=str)
        g0, g1 = x[(b == levels[0]).to_numpy()], x[(b == levels[1]).to_numpy()]
        u = stats.mannwhitneyu(g1, g0, alternative="two-sided")
        return float(u.statistic / (len(g0) * len(g1))), float(u.pvalue)
    if kind == "categorical":
        groups = [x[(b == lv).to_numpy()] for lv in sorted(b.unique(), key=str)]
        h = stats.kruskal(*groups)
        n, k = len(x), len(groups)
        eps2 = max(0.0, (h.statistic - k + 1) / (n - k))
        return float(eps2), float(h.pvalue)
    r = stats.spearmanr(x, pd.to_numeric(b).to_numpy(float))
    return float(r.statistic), float(r.pvalue)


def radiogenomics_screen(features: pd.DataFrame, biology: pd.DataFrame, volume_feature: str | None = None,
                         adjust_volume: bool = True, types: Mapping[str, str] | None = None,
                         min_per_group: int = 3) -> pd.DataFrame:
    """Association of every feature with every biology column, FDR-corrected per column.

    Args:
        features: robust radiomic features, one row per patient (index = patient id).
        biology: biology columns indexed by patient (HPV, IDH, Ki-67, grade ...); missing
            cells leave that patient out of that column only.
        volume_feature: column of ``features`` with tumour volume (needed to adjust).
        adjust_volume: residualise features on log volume first.
        types: optional type per column (``binary``/``categorical``/``continuous``);
            otherwise :func:`column_type`.
        min_per_group: fewest patients per level of a binary/categorical column.

    Returns:
        rows ``biology, type, feature, n, effect, effect_name, p, q, volume_adjusted``,
        sorted by column then q.
    """
    ids = [p for p in biology.index if p in features.index]
    if not ids:
        raise ValueError("no patient has both radiomic features and biology values (check the patient ids)")
    F = features.loc[ids].apply(pd.to_numeric, errors="coerce").astype(float)
    if adjust_volume and not volume_feature:
        raise ValueError("volume adjustment needs the tumour volume column (volume_feature)")
    rows = []
    for col in biology.columns:
        b_all = biology.loc[ids, col]
        ok = b_all.notna() & (b_all.astype(str).str.strip() != "")
        b = b_all[ok]
        kind = (types or {}).get(col) or column_type(b)
        if kind not in BIOLOGY_TYPES:
            raise ValueError(f"biology column {col!r}: type must be one of {BIOLOGY_TYPES}, got {kind!r}")
        if kind != "continuous":
            b = b.astype(str).str.strip()
            small = b.value_counts()[lambda c: c < min_per_group]
            if len(small):
                raise ValueError(f"biology column {col!r}: level(s) {dict(small)} have fewer than "
                                 f"{min_per_group} patients")
            if kind == "binary" and b.nunique() != 2:
                raise ValueError(f"biology column {col!r} is declared binary but has levels {sorted(b.unique())}")
        Fc = F.loc[b.index]
        if adjust_volume:
            adj = residualise_on_volume(Fc.drop(columns=[volume_feature]), Fc[volume_feature])
            adj[volume_feature] = Fc[volume_feature]
            Fc = adj[list(F.columns)]
        effect_name = {"binary": f"AUC for {sorted(b.unique(), key=str)[-1]}",
                       "categorical": "epsilon squared", "continuous": "Spearman rho"}[kind]
        part = []
        for feat in Fc.columns:
            x = Fc[feat].to_numpy(float)
            good = np.isfinite(x)
            if good.sum() < 3 or np.ptp(x[good]) == 0:
                continue
            eff, p = _test(x[good], b[good], kind)
            part.append({"biology": col, "type": kind, "feature": feat, "n": int(good.sum()), "effect": eff,
                         "effect_name": effect_name, "p": p,
                         "volume_adjusted": bool(adjust_volume and feat != volume_feature)})
        if not part:
            continue
        d = pd.DataFrame(part)
        d["p"] = d["p"].fillna(1.0)
        d["q"] = stats.false_discovery_control(d["p"].to_numpy(), method="bh")
        rows.append(d.sort_values(["q", "p", "feature"], kind="mergesort"))
    if not rows:
        raise ValueError("no feature could be tested against any biology column")
    return pd.concat(rows, ignore_index=True)[["biology", "type", "feature", "n", "effect", "effect_name", "p", "q",
                                               "volume_adjusted"]]


def screen_columns(features: pd.DataFrame, biology: pd.DataFrame, volume_feature: str | None = None,
                   adjust_volume: bool = True, types: Mapping[str, str] | None = None,
                   min_per_group: int = 3) -> tuple[pd.DataFrame, dict[str, str]]:
    """:func:`radiogenomics_screen` column by column, so that one unusable biology column (a
    single level, too few patients in a level, no patient with features) is reported rather
    than stopping the screen of the others.

    Returns:
        ``(the table of the columns screened, {column: reason} of those left out)``.
    """
    parts, skipped = [], {}
    for col in biology.columns:
        try:
            parts.append(radiogenomics_screen(features, biology[[col]], volume_feature, adjust_volume,
                                              {col: types[col]} if types and col in types else None,
                                              min_per_group))
        except ValueError as err:
            skipped[str(col)] = str(err)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SCREEN_COLUMNS)
    return table, skipped


def plot_radiogenomics(table: pd.DataFrame, path: str | Path, q_threshold: float = 0.05,
                       label_top: int = 5) -> Path:
    """Volcano plot per biology column: centred effect (AUC - 0.5, epsilon squared or rho)
    against -log10 q; features below ``q_threshold`` in red, the ``label_top`` strongest
    named. Written with matplotlib's Agg backend (no display needed)."""
    import matplotlib.pyplot as plt

    from radsurv.report.plots import save_figure  # sets the Agg backend

    cols = list(dict.fromkeys(table["biology"]))
    if not cols:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no biology column could be screened (see the QC table)", ha="center", va="center")
        ax.set_axis_off()
        return save_figure(fig, path, dpi=120)
    fig, axes = plt.subplots(1, len(cols), figsize=(4.5 * len(cols), 4), squeeze=False)
    for ax, col in zip(axes[0], cols, strict=True):
        d = table[table["biology"] == col]
        eff = d["effect"] - 0.5 if d["type"].iloc[0] == "binary" else d["effect"]
        y = -np.log10(np.clip(d["q"].to_numpy(float), 1e-300, 1))
        sig = d["q"].to_numpy(float) < q_threshold
        ax.scatter(eff[~sig], y[~sig], s=8, c="0.6", label=f"q >= {q_threshold}")
        ax.scatter(eff[sig], y[sig], s=10, c="tab:red", label=f"q < {q_threshold} ({int(sig.sum())})")
        ax.axhline(-np.log10(q_threshold), ls="--", c="0.4", lw=0.8)
        for _, r in d.head(label_top).iterrows():
            e = r["effect"] - 0.5 if r["type"] == "binary" else r["effect"]
            ax.annotate(str(r["feature"])[:28], (e, -np.log10(max(r["q"], 1e-300))), fontsize=6)
        xl = {"binary": "AUC - 0.5", "categorical": "epsilon squared", "continuous": "Spearman rho"}[d["type"].iloc[0]]
        adj = " (volume-adjusted)" if d["volume_adjusted"].any() else ""
        ax.set(xlabel=xl, ylabel="-log10 FDR q", title=f"{col}{adj}")
        ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path, dpi=120)
