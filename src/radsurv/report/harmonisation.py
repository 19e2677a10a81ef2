"""The report's "Multi-centre harmonisation" section (issue #19).

Shown when the run harmonised (``harmonisation.enabled``): the batch definition, patients
per batch, the stated unseen-batch policy, the cross-validated site-prediction AUC before
and after in-fold ComBat, the number of features with a batch difference (Kruskal-Wallis,
Benjamini-Hochberg FDR) before and after, the PCA figure, and the survival model's
C-index (the model was fit with ComBat inside every fold). Empty when the inputs are absent.

And the "Confound controls" section: the features' association with tumour volume (Spearman,
BH FDR), whether the radiomic features were volume-adjusted inside the folds, and one table of
held-out C-indices with CIs: the real model, the volume-only model and every negative control.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["INPUTS", "control_verdicts", "harmonisation_section", "negative_controls_section", "multicentre_sections"]

#: The report's optional inputs of this section (rule ``write_report`` names them so).
INPUTS = ("harmonisation_counts", "harmonisation_site_auc", "harmonisation_kruskal", "harmonisation_pca",
          "harmonisation_summary", "harmonisation_settings")


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _f(x: Any, nd: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(v) else f"{v:.{nd}f}"


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in r) + "</tr>" for r in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def harmonisation_section(inputs: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    """HTML parts of the section; ``[]`` when the run did not harmonise."""
    if not inputs.get("harmonisation_settings"):
        return []
    settings = json.loads(Path(inputs["harmonisation_settings"]).read_text())
    desc = settings.get("description", {})
    what = " and ".join(x for x in (
        f"clinical column <code>{_esc(desc['batch_column'])}</code>" if desc.get("batch_column") else "",
        ("acquisition facts " + ", ".join(_esc(a) for a in desc.get("acquisition", [])))
        if desc.get("acquisition") else "") if x)
    parts = ['<h2 id="harmonisation">Multi-centre harmonisation</h2>',
             f"<p>{_esc(desc.get('method', 'ComBat'))}: the batch of a patient is its {what}. ComBat is the first "
             "step of the radiomics branch of every survival model and is fit on the training patients of every "
             "outer and inner cross-validation fold (and of the final model) only, then applied unchanged to the "
             "held-out and external patients; harmonising the whole cohort first would let the held-out patients "
             "shape the correction. "
             + ("Shape features are not harmonised (they do not depend on the scanner). "
                if desc.get("exclude_shape") else "")
             + (f"Protected covariates: {', '.join(_esc(p) for p in desc['protect'])}. " if desc.get("protect")
                else "No covariate protected. ")
             + "</p>",
             f'<p class="note"><strong>Unseen or too-small batch:</strong> {_esc(desc.get("policy", ""))}</p>']
    if inputs.get("harmonisation_counts"):
        parts += ["<h3>Patients per batch</h3>",
                  _table(pd.read_csv(inputs["harmonisation_counts"], sep="\t", keep_default_na=False))]
    if inputs.get("harmonisation_site_auc"):
        site = pd.read_csv(inputs["harmonisation_site_auc"], sep="\t")
        rows = [(r["data"], f"{_f(r['estimate'])} (95% CI {_f(r['ci_low'])}-{_f(r['ci_high'])})",
                 int(r["n_patients"]), int(r["n_batches"])) for _, r in site.iterrows()]
        parts += ["<h3>Can the batch be predicted from the features?</h3>",
                  "<p>Cross-validated site-prediction AUC from the robust candidate features that ComBat "
                  "harmonises (0.5: no trace of the batch; shape features, which it leaves alone, on their own row: "
                  "there the AUC measures the centres' case mix). "
                  + _esc(site["ci_method"].iloc[0] if len(site) else "") + ".</p>",
                  _table(pd.DataFrame(rows, columns=["features", "site-prediction AUC", "patients", "batches"]))]
    if inputs.get("harmonisation_summary"):
        s = json.loads(Path(inputs["harmonisation_summary"]).read_text())
        parts.append(f"<p>Per-feature Kruskal-Wallis test of a batch difference (Benjamini-Hochberg FDR 5%): "
                     f"{s['n_significant_before']} of {s['n_features']} features differ between batches before, "
                     f"{s['n_significant_after']} after in-fold ComBat (cross-fitted). "
                     f"{s['n_unlabelled']} patient(s) without a batch are not in the diagnostics.</p>")
    if inputs.get("harmonisation_pca"):
        data = base64.b64encode(Path(inputs["harmonisation_pca"]).read_bytes()).decode("ascii")
        parts.append(f'<img alt="PCA of the features coloured by batch" src="data:image/png;base64,{data}">')
    c, lo, hi = (metrics.get(k) for k in ("c_index_test", "c_index_test_ci_low", "c_index_test_ci_high"))
    if c is not None:
        parts.append(f"<p>The radiomics model with in-fold ComBat: held-out Harrell's C {_f(c)} "
                     f"(95% CI {_f(lo)}-{_f(hi)}); tumour volume alone {_f(metrics.get('c_index_volume_test'))}.</p>")
    return parts


def _volume_association_part(path: str | None) -> list[str]:
    """The per-feature association with tumour volume (``volume_correlation.tsv``: Spearman, BH FDR)."""
    if not path:
        return []
    vc = pd.read_csv(path, sep="\t")
    if "q_bh" not in vc.columns:
        return []
    tested = vc[vc["p"].notna()]
    assoc = tested["volume_associated"].astype(str).str.lower().isin(["true", "1"])
    top = tested.sort_values("abs_rho", ascending=False).head(10)
    rows = [(r["feature"], _f(r["spearman_rho"]), f"{float(r['q_bh']):.2g}") for _, r in top.iterrows()]
    return ["<h3>Association with tumour volume</h3>",
            f"<p>{int(assoc.sum())} of {len(tested)} features are associated with tumour volume (Spearman rank "
            "correlation across the patients' first scans, the same for log volume; Benjamini-Hochberg FDR 5%). "
            "This table describes the cohort; it is not a modelling step. The strongest:</p>",
            _table(pd.DataFrame(rows, columns=["feature", "Spearman rho", "BH q"]))]


def _delta(d: Mapping[str, Any] | None) -> tuple[float, float, float] | None:
    """``(estimate, ci_low, ci_high)`` of a paired difference, or ``None`` when absent."""
    try:
        vals = tuple(float((d or {})[k]) for k in ("estimate", "ci_low", "ci_high"))
    except (KeyError, TypeError, ValueError):
        return None
    return vals if all(math.isfinite(v) for v in vals) else None


def control_verdicts(real_c: float | None, real_delta: Mapping[str, Any] | None,
                     controls: Mapping[str, tuple[float | None, Mapping[str, Any] | None]]) -> list[str]:
    """What the negative controls say, in plain sentences for the report.

    ``real_c`` / ``real_delta``: the real radiomics model's held-out C and its paired difference
    to the volume-only model (``estimate``, ``ci_low``, ``ci_high``); ``controls``: per control,
    its C and its paired difference to volume. A control *fell to the volume-only level* when the
    lower end of its difference's 95% CI is at or below 0; it *kept an advantage over volume*
    when that interval lies above 0; it *matches the real model* when its C is at least the real
    model's.
    """
    out: list[str] = []
    rd = _delta(real_delta)
    if rd is not None and rd[1] <= 0:
        out.append(f"The real radiomics model itself cannot be told from tumour volume ({rd[0]:+.3f}, "
                   f"{rd[1]:+.3f} to {rd[2]:+.3f}), so the controls cannot show much: falling to volume is "
                   "expected whatever the model learned.")
    fell, kept, matched = [], [], []
    for name, (c, d) in sorted(controls.items()):
        dd = _delta(d)
        if dd is None:
            continue
        (fell if dd[1] <= 0 else kept).append(f"{name} ({dd[0]:+.3f}, {dd[1]:+.3f} to {dd[2]:+.3f})")
        if real_c is not None and c is not None and math.isfinite(float(c)) and float(c) >= float(real_c):
            matched.append(f"{name} ({float(c):.3f} against {float(real_c):.3f})")
    if fell:
        out.append("Fell to the volume-only level (the paired CI of the difference to volume reaches 0): "
                   + ", ".join(fell) + ".")
    if kept:
        out.append("Kept an advantage over volume (CI above 0): " + ", ".join(kept) + ". What such a control "
                   "keeps of the image (see its definition) carries outcome information.")
    if matched:
        out.append("At or above the real model's C: " + ", ".join(matched) + ". What the real model learned "
                   "is also in these control images, so its advantage cannot be credited to the tumour's "
                   "texture beyond what the control keeps.")
    return out


def negative_controls_section(inputs: Mapping[str, Any], metrics: Mapping[str, Any],
                              config: Mapping[str, Any] | None = None) -> list[str]:
    """The confound controls: per-feature association with volume, whether the radiomic features
    were volume-adjusted in the folds, and one table of held-out C-indices (95% CI): the real
    radiomics model, the volume-only model and each negative control (inputs ``control_metrics_<name>``).
    ``[]`` when there is nothing to show (no control, no association table, no adjustment)."""
    from radsurv.robustness.controls import CONTROLS

    keys = sorted(k for k in inputs if k.startswith("control_metrics_"))
    volume_part = _volume_association_part(inputs.get("volume_correlation"))
    adjusted = bool(((config or {}).get("modelling") or {}).get("volume_adjust"))
    if not keys and not volume_part and not adjusted:
        return []
    by_model = metrics.get("by_model", {})

    def ci(d: Mapping[str, Any] | None) -> tuple[str, str]:
        d = d or {}
        return _f(d.get("estimate")), f"{_f(d.get('ci_low'))}-{_f(d.get('ci_high'))}"

    def diff(d: Mapping[str, Any] | None) -> str:
        d = d or {}
        if not _f(d.get("estimate")):
            return ""
        return f"{float(d['estimate']):+.3f} ({_f(d.get('ci_low'))} to {_f(d.get('ci_high'))})"

    real = "radiomics model (real images" + (", volume-adjusted features)" if adjusted else ")")
    radiomics = by_model.get("radiomics", {})
    rows = [(real, *ci(radiomics.get("harrell_c")), diff(radiomics.get("delta_harrell_c_vs_volume")))]
    if "volume" in by_model:
        rows.append(("tumour volume alone", *ci(by_model["volume"].get("harrell_c")), ""))
    results: dict[str, tuple[float | None, Mapping[str, Any] | None]] = {}
    for k in keys:
        m = json.loads(Path(inputs[k]).read_text())
        name = k.removeprefix("control_metrics_")
        results[name] = (m.get("c_index_test"), m.get("delta_harrell_c_vs_volume"))
        rows.append((f"control {name}: {CONTROLS.get(name, name)}", _f(m.get("c_index_test")),
                     f"{_f(m.get('c_index_test_ci_low'))}-{_f(m.get('c_index_test_ci_high'))}",
                     diff(m.get("delta_harrell_c_vs_volume"))))
    parts = ['<h2 id="negative-controls">Confound controls</h2>', *volume_part]
    if adjusted:
        parts.append("<p><strong>Volume-adjusted radiomics</strong> (<code>modelling.volume_adjust</code>): every "
                     "radiomic feature was replaced by its residual on log tumour volume, a least-squares line fit "
                     "on the training patients of every outer and inner fold and of the final model and applied "
                     "unchanged to held-out patients; the radiomics model can only use what is not tumour size.</p>")
    parts.append("<h3>Negative controls</h3>")
    if keys:
        parts.append("<p>The same study (same candidate features, design, seeds and harmonisation) re-run on "
                     "features extracted from control images of each patient's first scan (READII definitions). A "
                     "model that learned tumour biology should lose its advantage on the controls and fall to the "
                     "volume-only level (shape is kept) or to 0.5; a control that keeps the real model's C-index "
                     "means the model learned something other than the tumour's texture. The last column is each "
                     "model's C minus the volume-only model's on the same patients and folds, with its paired "
                     "patient-bootstrap 95% CI: an interval that contains 0 cannot tell the model from tumour "
                     "volume, one that lies above 0 says it learned more than volume. A control that keeps the "
                     "ROI's values (shuffled, sampled) or their range (randomized) keeps what those carry.</p>")
    else:
        parts.append("<p>No negative control was run (<code>harmonisation.negative_controls</code>).</p>")
    parts.append(_table(pd.DataFrame(rows, columns=["model", "held-out Harrell's C", "95% CI",
                                                    "minus volume-only C (paired 95% CI)"])))
    real_c = (radiomics.get("harrell_c") or {}).get("estimate")
    verdicts = control_verdicts(real_c, radiomics.get("delta_harrell_c_vs_volume"), results) if keys else []
    if verdicts:
        parts.append("<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>")
    return parts


def multicentre_sections(inputs: Mapping[str, Any], metrics: Mapping[str, Any],
                         config: Mapping[str, Any] | None = None) -> list[str]:
    """The multi-centre harmonisation and confound-control sections (each empty when not run)."""
    return harmonisation_section(inputs, metrics) + negative_controls_section(inputs, metrics, config)
