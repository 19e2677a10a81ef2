"""Figures and report sections of categorical endpoints (issue #17): binary or multiclass
tumour biology, nodal status, response ...

Reads the files of rule ``fit_classifier`` (``results/endpoints/<name>/``):
``predictions.tsv`` (``patient_id, repeat, fold, model, label, threshold, p_<class>...,
set``), ``performance.tsv`` (the library's :func:`radsurv.modelling.classification.design.summarise`
table), ``metrics.json`` and ``qc.tsv``. Every curve is drawn from HELD-OUT predictions
(``set == "test"``: the cross-validated or validation patients); measures come from
:mod:`radsurv.modelling.classification.metrics` and scikit-learn, never recomputed here by hand.

The report's sections are returned as a list of *blocks* (``("h2", anchor, title)``,
``("h3", text)``, ``("p", css_class, text)``, ``("table", frame)``, ``("img", path, alt)``,
``("links", [paths])``) that :mod:`radsurv.report.html` renders, so this module needs no
HTML helper of its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FIGURES",
    "MODEL_ORDER",
    "comparison_table",
    "draw_classification_figures",
    "endpoint_blocks",
    "endpoint_files",
    "endpoint_headline",
    "held_out",
    "mean_probabilities",
    "radiogenomics_blocks",
]

#: The figures of one endpoint (rule ``classification_figures``): key -> file name.
FIGURES = {"roc": "roc.png", "calibration": "calibration.png", "decision_curve": "decision_curve.png",
           "confusion": "confusion.png"}
#: Models in the order the report lists them (others follow in file order).
MODEL_ORDER = ("radiomics", "volume", "clinical", "clinical+radiomics", "prevalence")
_COLOURS = {"radiomics": "tab:red", "volume": "tab:blue", "clinical": "tab:green",
            "clinical+radiomics": "tab:purple", "prevalence": "0.5"}


# --------------------------------------------------------------------------- reading


def held_out(predictions: pd.DataFrame) -> pd.DataFrame:
    """The held-out rows (``set == "test"``; all rows when there is no ``set`` column)."""
    if "set" in predictions.columns:
        return predictions[predictions["set"].astype(str) == "test"]
    return predictions


def _ordered_models(models: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(models))
    return [m for m in MODEL_ORDER if m in present] + [m for m in present if m not in MODEL_ORDER]


def _pcols(predictions: pd.DataFrame, classes: Sequence[Any] | None = None) -> list[str]:
    cols = [c for c in predictions.columns if c.startswith("p_")]
    if classes is None:
        return cols
    named = [f"p_{c}" for c in classes]
    return named if all(c in cols for c in named) else cols


def mean_probabilities(predictions: pd.DataFrame, model: str) -> pd.DataFrame:
    """Each held-out patient's probabilities of ``model`` averaged over the CV repeats, with its label."""
    d = held_out(predictions)
    d = d[d["model"] == model]
    pcols = _pcols(d)
    return d.groupby("patient_id", sort=False).agg({**{c: "mean" for c in pcols}, "label": "first"})


def _class_names(metrics: Mapping[str, Any], n: int) -> list[str]:
    """Display names of the labels 0..n-1 (binary) or of the classes (multiclass)."""
    classes = [str(c) for c in (metrics.get("classes") or [])]
    return classes if len(classes) == n else [str(i) for i in range(n)]


def _is_binary(metrics: Mapping[str, Any], predictions: pd.DataFrame) -> bool:
    if metrics.get("endpoint"):
        return str(metrics["endpoint"]) == "binary"
    return set(_pcols(predictions)) == {"p_0", "p_1"}


# --------------------------------------------------------------------------- figures


def _plot_roc_binary(ax: Any, predictions: pd.DataFrame) -> None:
    from sklearn.metrics import roc_curve

    from radsurv.modelling.classification.metrics import roc_auc

    for m in _ordered_models(held_out(predictions)["model"]):
        mp = mean_probabilities(predictions, m)
        y, p = mp["label"].astype(int).to_numpy(), mp["p_1"].to_numpy(float)
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color=_COLOURS.get(m), lw=2 if m == "radiomics" else 1.2,
                label=f"{m} (AUC {roc_auc(y, p):.2f})")


def _plot_roc_multiclass(ax: Any, predictions: pd.DataFrame, classes: Sequence[str], model: str) -> None:
    from sklearn.metrics import roc_curve

    from radsurv.modelling.classification.metrics import roc_auc

    mp = mean_probabilities(predictions, model)
    for c in classes:
        if f"p_{c}" not in mp.columns:
            continue
        y = (mp["label"].astype(str) == str(c)).astype(int).to_numpy()
        if len(np.unique(y)) < 2:
            continue
        p = mp[f"p_{c}"].to_numpy(float)
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, lw=1.5, label=f"{c} vs rest (AUC {roc_auc(y, p):.2f})")


def plot_roc(predictions: pd.DataFrame, metrics: Mapping[str, Any], path: str | Path) -> Path:
    """ROC curves of the held-out, repeat-averaged probabilities: every model (binary) or
    one-vs-rest per class of the radiomics model (multiclass); AUC of each curve in the legend."""
    import matplotlib.pyplot as plt

    from radsurv.report.plots import save_figure

    fig, ax = plt.subplots(figsize=(5.2, 5))
    if _is_binary(metrics, predictions):
        _plot_roc_binary(ax, predictions)
        title = "ROC, held-out patients (probabilities averaged over repeats)"
    else:
        classes = [str(c) for c in metrics.get("classes") or [c[2:] for c in _pcols(predictions)]]
        _plot_roc_multiclass(ax, predictions, classes, "radiomics")
        title = "One-vs-rest ROC of the radiomics model, held-out patients"
    ax.plot([0, 1], [0, 1], ls="--", c="0.6", lw=0.8)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    return save_figure(fig, path)


def _not_defined(path: str | Path, text: str) -> Path:
    """A figure holding only ``text`` (the rule's output exists for every endpoint)."""
    import matplotlib.pyplot as plt

    from radsurv.report.plots import save_figure

    fig, ax = plt.subplots(figsize=(5.2, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9)
    ax.set_axis_off()
    return save_figure(fig, path)


def plot_calibration(predictions: pd.DataFrame, metrics: Mapping[str, Any], path: str | Path,
                     n_bins: int = 5) -> Path:
    """Grouped calibration of the held-out, repeat-averaged probabilities (quantile groups of
    scikit-learn's ``calibration_curve``) with each model's calibration intercept and slope
    (:func:`~radsurv.modelling.classification.metrics.calibration_intercept_slope`)."""
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    from radsurv.modelling.classification.metrics import calibration_intercept_slope
    from radsurv.report.plots import save_figure

    if not _is_binary(metrics, predictions):
        return _not_defined(path, "Calibration plot: shown for binary endpoints only\n"
                                  "(a multiclass endpoint is judged by its one-vs-rest AUCs).")
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for m in _ordered_models(held_out(predictions)["model"]):
        mp = mean_probabilities(predictions, m)
        y, p = mp["label"].astype(int).to_numpy(), mp["p_1"].to_numpy(float)
        if len(np.unique(y)) < 2:
            continue
        bins = max(2, min(n_bins, len(y) // 8))
        obs, pred = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        if np.ptp(p) > 0:
            a, b = calibration_intercept_slope(y, p)
            lab = f"{m} (intercept {a:+.2f}, slope {b:.2f})"
        else:
            lab = f"{m} (one probability for all)"
        ax.plot(pred, obs, marker="o", color=_COLOURS.get(m), lw=1.2, label=lab)
    ax.plot([0, 1], [0, 1], ls="--", c="0.6", lw=0.8, label="ideal")
    ax.set(xlabel="predicted probability (group mean)", ylabel="observed fraction positive",
           xlim=(0, 1), ylim=(0, 1))
    ax.set_title(f"Calibration, held-out patients ({bins} quantile groups)", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    return save_figure(fig, path)


def plot_decision_curve(predictions: pd.DataFrame, metrics: Mapping[str, Any], path: str | Path) -> Path:
    """Net benefit of each model's held-out, repeat-averaged probabilities against treat-all
    and treat-none (:func:`~radsurv.modelling.classification.metrics.decision_curve`)."""
    import matplotlib.pyplot as plt

    from radsurv.modelling.classification.metrics import decision_curve
    from radsurv.report.plots import save_figure

    if not _is_binary(metrics, predictions):
        return _not_defined(path, "Decision curve: shown for binary endpoints only.")
    thresholds = np.linspace(0.02, 0.9, 45)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    base = None
    for m in _ordered_models(held_out(predictions)["model"]):
        mp = mean_probabilities(predictions, m)
        dc = decision_curve(mp["label"].astype(int), mp["p_1"], thresholds)
        base = dc
        ax.plot(dc["threshold"], dc["net_benefit"], color=_COLOURS.get(m), lw=2 if m == "radiomics" else 1.2,
                label=m)
    if base is not None:
        ax.plot(base["threshold"], base["treat_all"], c="k", ls=":", lw=1, label="treat all")
        ax.plot(base["threshold"], base["treat_none"], c="k", ls="--", lw=0.8, label="treat none")
        top = float(base["treat_all"].iloc[0])  # treat-all at the lowest threshold: about the prevalence
        ax.set_ylim(-0.05, max(0.05, top * 1.1 + 0.02))
    positive = metrics.get("positive_class") or "the positive class"
    ax.set(xlabel=f"threshold probability of {positive}", ylabel="net benefit")
    ax.set_title("Decision curve, held-out patients (probabilities averaged over repeats)", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def confusion_counts(predictions: pd.DataFrame, metrics: Mapping[str, Any],
                     model: str = "radiomics") -> tuple[np.ndarray, list[str], str]:
    """Confusion matrix (rows true, columns predicted) of ``model`` on the held-out patients of
    the first repeat, pooled over its folds, and a sentence saying how the calls were made.

    Binary: each patient is called positive when ``p_1 >= threshold``, the threshold chosen
    on the training patients of the fold that predicted them (Youden's J on inner
    out-of-fold predictions). Multiclass: the most probable class.
    """
    from sklearn.metrics import confusion_matrix

    d = held_out(predictions)
    d = d[d["model"] == model]
    first = d["repeat"].min()
    d = d[d["repeat"] == first]
    folds = d["fold"].nunique()
    if _is_binary(metrics, predictions):
        call = (d["p_1"].to_numpy(float) >= d["threshold"].to_numpy(float)).astype(int)
        cm = confusion_matrix(d["label"].astype(int), call, labels=[0, 1])
        names = _class_names(metrics, 2)
        how = (f"each patient called {names[1]} when its predicted probability reaches the threshold chosen on the "
               f"training patients of its own fold; counts pooled over the {folds} fold(s) of repeat 1")
        return cm, names, how
    pcols = _pcols(d, metrics.get("classes"))
    names = [c[2:] for c in pcols]
    call = np.asarray(names)[np.argmax(d[pcols].to_numpy(float), axis=1)]
    cm = confusion_matrix(d["label"].astype(str), call, labels=names)
    return cm, names, f"most probable class; counts pooled over the {folds} fold(s) of repeat 1"


def plot_confusion(predictions: pd.DataFrame, metrics: Mapping[str, Any], path: str | Path,
                   model: str = "radiomics") -> Path:
    """The confusion matrix of :func:`confusion_counts` (scikit-learn's ``ConfusionMatrixDisplay``)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    from radsurv.report.plots import save_figure

    cm, names, how = confusion_counts(predictions, metrics, model)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ConfusionMatrixDisplay(cm, display_labels=names).plot(ax=ax, cmap="Blues", colorbar=False)
    ax.set_title(f"{model} model, held-out: " + ("\n".join(_wrap(how, 60))), fontsize=7)
    return save_figure(fig, path)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def draw_classification_figures(predictions_tsv: str | Path, metrics_json: str | Path,
                                out: Mapping[str, str | Path]) -> None:
    """Write the four figures of one endpoint (``out`` keys: those of :data:`FIGURES`); when the
    endpoint has no held-out prediction (no model could be fitted), each figure says so."""
    pred = _read_or_empty(predictions_tsv, dtype={"patient_id": str})
    metrics = json.loads(Path(metrics_json).read_text())
    if pred.empty or held_out(pred).empty:
        for key in FIGURES:
            _not_defined(out[key], "No held-out predictions for this endpoint (see its QC rows and metrics.json).")
        return
    plot_roc(pred, metrics, out["roc"])
    plot_calibration(pred, metrics, out["calibration"])
    plot_decision_curve(pred, metrics, out["decision_curve"])
    plot_confusion(pred, metrics, out["confusion"])


# --------------------------------------------------------------------------- report sections

#: performance.tsv columns shown in the model comparison table, with their headings.
_COLUMNS = {"model": "model", "auc": "AUC", "ci_low": "AUC 95% CI low", "ci_high": "AUC 95% CI high",
            "diff_vs_volume": "AUC difference to volume", "diff_ci_low": "difference CI low",
            "diff_ci_high": "difference CI high", "delong_p_vs_volume": "DeLong p vs volume",
            "balanced_accuracy": "balanced accuracy", "sensitivity": "sensitivity", "specificity": "specificity",
            "brier": "Brier score", "cal_intercept": "calibration intercept", "cal_slope": "calibration slope",
            "macro_auc": "macro AUC (one-vs-rest)"}


def comparison_table(performance: pd.DataFrame) -> pd.DataFrame:
    """The model comparison table of the report: models in :data:`MODEL_ORDER`, the columns of
    ``performance.tsv`` under readable headings (values unchanged; one-vs-rest AUCs kept)."""
    if performance.empty:
        return performance
    perf = performance.set_index("model").loc[_ordered_models(performance["model"])].reset_index()
    cols = [c for c in _COLUMNS if c in perf.columns]
    cols += [c for c in perf.columns if c.startswith("auc_") and c not in cols]
    return perf[cols].rename(columns={**_COLUMNS, **{c: f"AUC {c[4:]} vs rest" for c in cols
                                                     if c.startswith("auc_")}})


def _row(performance: pd.DataFrame, model: str) -> Mapping[str, Any] | None:
    d = performance[performance["model"] == model]
    return None if d.empty else d.iloc[0].to_dict()


def _finite(*values: Any) -> bool:
    return all(v is not None and isinstance(v, (int, float)) and math.isfinite(float(v)) for v in values)


def endpoint_headline(performance: pd.DataFrame, metrics: Mapping[str, Any]) -> str:
    """The endpoint's main result in plain words: radiomics AUC with its paired bootstrap CI,
    volume's AUC, the CI of the difference and DeLong's p, each named for what it is."""
    if performance.empty or "model" not in performance.columns:
        return "No model could be fitted for this endpoint (see its QC rows)."
    rad, vol = _row(performance, "radiomics"), _row(performance, "volume")
    if rad is None:
        return "No radiomics model result for this endpoint."
    design = ("cross-validated (mean over the repeats of the nested cross-validation)"
              if metrics.get("design", "cv") == "cv" else "validation cohort")
    if "auc" not in rad:
        return f"Radiomics model, {design}: macro one-vs-rest AUC {rad.get('macro_auc', float('nan')):.3f}."
    parts = [f"Radiomics model, held-out patients, {design}: AUC {rad['auc']:.3f} "
             f"(95% paired bootstrap CI {rad['ci_low']:.3f}-{rad['ci_high']:.3f})"]
    if vol is None:
        reason = (metrics.get("missing_models") or {}).get("volume", "not fitted")
        parts.append(f"no volume-only baseline ({reason})")
        return "; ".join(parts) + "."
    parts.append(f"tumour volume alone: AUC {vol['auc']:.3f}")
    d, lo, hi = rad.get("diff_vs_volume"), rad.get("diff_ci_low"), rad.get("diff_ci_high")
    if _finite(d, lo, hi):
        verdict = ("better than" if lo > 0 else "WORSE than" if hi < 0 else "NOT significantly better than")
        parts.append(f"the radiomics model discriminates {verdict} volume alone (difference in AUC {d:+.3f}, "
                     f"95% paired bootstrap CI {lo:+.3f} to {hi:+.3f})")
    p = rad.get("delong_p_vs_volume")
    if _finite(p):
        parts.append(f"DeLong test of the two correlated AUCs (repeat-averaged probabilities): p = {p:.3g}")
    return "; ".join(parts) + "."


def endpoint_files(inputs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The report inputs named ``endpoint__<name>__<kind>`` grouped by endpoint, in input order."""
    out: dict[str, dict[str, Any]] = {}
    for key, path in inputs.items():
        if key.startswith("endpoint__"):
            name, _, kind = key[len("endpoint__"):].rpartition("__")
            out.setdefault(name, {})[kind] = path
    return out


def _read_or_empty(path: Any, **kwargs: Any) -> pd.DataFrame:
    """A TSV, or an empty frame when the file is empty (an endpoint whose model could not be fitted)."""
    try:
        return pd.read_csv(path, sep="\t", **kwargs)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _per_class(metrics: Mapping[str, Any]) -> pd.DataFrame:
    n = metrics.get("n_per_class") or {}
    return pd.DataFrame([(str(k), int(v)) for k, v in n.items()], columns=["class", "patients"])


def _qc_rows(path: Any) -> pd.DataFrame:
    if not path or not Path(path).exists():
        return pd.DataFrame()
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def endpoint_blocks(name: str, files: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The report blocks of one categorical endpoint (see the module docstring)."""
    metrics = json.loads(Path(files["metrics"]).read_text())
    if metrics.get("not_studied"):
        return [("h3", f"Endpoint {name}: {metrics.get('endpoint', '')} ({metrics.get('column', name)})"),
                ("p", "note", str(metrics["not_studied"])),
                ("links", [files[k] for k in ("metrics", "qc") if files.get(k)])]
    perf = _read_or_empty(files["performance"])
    kind = metrics.get("endpoint", "binary")
    pos = f", positive class {metrics['positive_class']!r}" if kind == "binary" and metrics.get("positive_class") \
        else ""
    blocks: list[tuple[Any, ...]] = [
        ("h3", f"Endpoint {name}: {kind} ({metrics.get('column', name)}{pos}), {metrics.get('n', '?')} patients"),
        ("p", "ok", endpoint_headline(perf, metrics)),
        ("p", "", "Every data-dependent step (quality filter, scaling, correlation clustering, univariate screen, "
                  "learner and hyperparameter choice, class-threshold choice, clinical imputation) was fitted on the "
                  "training patients of each fit only. Sensitivity and specificity are at the threshold chosen on "
                  "training patients (Youden's J); the AUC CIs are paired percentile bootstrap intervals over "
                  "patients; calibration and the Brier score use the repeat-averaged probabilities."),
        ("table", _per_class(metrics)),
        ("h3", f"Model comparison: {name} (held-out)"),
        ("table", comparison_table(perf)),
    ]
    for model, reason in (metrics.get("missing_models") or {}).items():
        blocks.append(("p", "note", f"The {model} baseline could not be fitted: {reason}"))
    for key, alt in (("roc", "ROC curves"), ("calibration", "Calibration"), ("decision_curve", "Decision curve"),
                     ("confusion", "Confusion matrix at the training-chosen threshold")):
        if files.get(key):
            blocks += [("h3", f"{alt}: {name}"), ("img", files[key], f"{alt} of endpoint {name}")]
    qc = _qc_rows(files.get("qc"))
    blocks.append(("p", "note" if len(qc) else "ok",
                   f"{len(qc)} patient(s) left out of this endpoint or flagged (QC table below)."))
    if len(qc):
        blocks.append(("table", qc))
    blocks.append(("links", [files[k] for k in ("predictions", "performance", "metrics", "qc") if files.get(k)]))
    return blocks


def radiogenomics_blocks(table_tsv: str | Path, figure_png: str | Path | None, top: int = 15,
                         q_threshold: float = 0.05) -> list[tuple[Any, ...]]:
    """The report blocks of the radiogenomics screen: per biology column the number of
    features with FDR q below ``q_threshold``, the ``top`` strongest associations and the figure."""
    t = pd.read_csv(table_tsv, sep="\t")
    blocks: list[tuple[Any, ...]] = [
        ("p", "", "Association of every robust radiomic feature with each biology column (Mann-Whitney for a "
                  "binary column, effect = AUC; Kruskal-Wallis for a categorical one, effect = epsilon squared; "
                  "Spearman for a continuous one), features first adjusted for log tumour volume; p-values "
                  "corrected per column with the Benjamini-Hochberg false discovery rate (q). A hypothesis-"
                  "generating screen on all patients, not a validated model.")]
    if t.empty:
        return blocks + [("p", "note", "No biology column could be screened (see the QC table).")]
    counts = t.groupby("biology", sort=False).agg(features=("feature", "size"),
                                                  significant=("q", lambda q: int((q < q_threshold).sum())))
    counts = counts.reset_index().rename(columns={"significant": f"features with q < {q_threshold}"})
    blocks += [("table", counts), ("h3", f"Strongest associations (top {top} per column by q)"),
               ("table", t.groupby("biology", sort=False).head(top).reset_index(drop=True))]
    if figure_png:
        blocks.append(("img", figure_png, "Radiogenomics screen volcano plot"))
    blocks.append(("links", [table_tsv]))
    return blocks
