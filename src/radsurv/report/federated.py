"""The report's "Federated study" section and its Kaplan-Meier figure (issue #20).

:func:`federated_section` turns ``results/federated/`` (written by
:func:`radsurv.workflow.federated.federated_study`) into HTML: the sites and their
numbers (only counts a site shared, i.e. at least ``min_patients``; otherwise "< k"),
the privacy settings, the coefficients with the central check, per-site / pooled /
leave-one-site-out performance, the Kaplan-Meier figure from binned counts and the
effect of differential-privacy noise. It returns nothing when the run has no federated
study, so :mod:`radsurv.report.html` can always call it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

#: The report inputs of the federated section (``write_report``'s named inputs) and their files.
REPORT_INPUTS = {"federated_summary": "summary", "federated_coefficients": "coefficients",
                 "federated_performance": "performance", "federated_sites": "sites", "federated_km_png": "km_png",
                 "federated_dp": "dp_effect", "federated_audit": "audit", "federated_qc": "qc"}

#: Anchor and title of the section (for the report's navigation).
SECTION = ("federated", "Federated study")


def plot_federated_km(km: pd.DataFrame, path: str | Path, time_unit: str = "months") -> None:
    """Step curves of the pooled life-table survival per risk group (``km.tsv``), with the number
    at risk at each bin start; a figure saying "not available" when every binning was refused."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = [{"color": "#0072B2", "linestyle": "-"}, {"color": "#D55E00", "linestyle": "--"}]
    if km.empty:
        ax.text(0.5, 0.5, "Kaplan-Meier counts not available (a site refused every binning; see the QC table)",
                ha="center", va="center", wrap=True)
        ax.set_axis_off()
    else:
        for style, (group, part) in zip(styles, km.groupby("group", sort=False)):
            t = [0.0, *part["time"].tolist()]
            s = [1.0, *part["survival"].tolist()]
            ax.step(t, s, where="post", label=f"{group} (n at start {int(part['at_risk'].iloc[0])})", **style)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"time ({time_unit})")
        ax.set_ylabel("survival (life table from binned site counts)")
        ax.legend(loc="lower left")
        ax.set_title("Federated risk groups (all sites, apparent): split at the pooled mean risk")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _table(df: pd.DataFrame) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.4g}"
        return _esc(v)

    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: str | Path, alt: str) -> str:
    import base64

    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></figure>'


def _link(path: str | Path, rdir: Path) -> str:
    import os

    rel = os.path.relpath(Path(path).resolve(), rdir.resolve())
    return f'<a href="{_esc(rel)}">{_esc(Path(path).name)}</a>'


def federated_section(inputs: Mapping[str, Any], config: Mapping[str, Any], rdir: Path) -> list[str]:
    """HTML parts of the "Federated study" section; ``[]`` when ``inputs`` has no federated files."""
    if not inputs.get("federated_summary"):
        return []
    summary = json.loads(Path(inputs["federated_summary"]).read_text())
    fed = config.get("federated") or {}
    k = summary.get("min_patients", fed.get("min_patients"))
    dp = json.loads(Path(inputs["federated_dp"]).read_text())
    survival = summary.get("endpoint") == "survival"
    metric = "Harrell's C" if survival else "AUC"
    model = "Cox regression stratified by site (each site its own baseline hazard)" if survival else \
        "logistic regression"
    penalty = summary.get("penalty", {})
    parts = [f'<h2 id="{SECTION[0]}">{SECTION[1]}</h2>',
             f"<p>A {_esc(model)} fitted across {len(summary['sites_in_study'])} site(s) by Newton-Raphson on the "
             f"sum of the sites' gradients and Hessians ({summary['rounds']} rounds, "
             f"{'converged' if summary['converged'] else 'not converged'}; penalty {_esc(json.dumps(penalty))}). "
             "No patient-level value left any site: each site answered with aggregates of at least "
             f"k = {k} patients and refused anything computed from fewer. Transport: "
             f"{_esc(summary.get('transport'))}; every message is listed in {_link(inputs['federated_audit'], rdir)} "
             f"({summary.get('messages')} messages).</p>",
             "<h3>Sites</h3>",
             f"<p>Counts as the sites shared them; a count below k is never sent and shows as &lt; {k}.</p>",
             _table(pd.read_csv(inputs["federated_sites"], sep="\t", dtype=str, keep_default_na=False)),
             "<h3>Privacy settings</h3>",
             _table(pd.DataFrame([("minimum patients behind any shared number (k)", k),
                                  ("differential privacy", "on" if summary.get("differential_privacy") else "off"),
                                  ("noise SD (Gaussian, on every shared aggregate)", summary.get("dp_sigma") or "—")],
                                 columns=["setting", "value"])),
             "<h3>Coefficients</h3>"]
    check = summary.get("central_check") or {}
    coefs = pd.read_csv(inputs["federated_coefficients"], sep="\t")
    parts += [_table(coefs),
              f"<p>Check possible only because all sites' tables were on this machine: the pooled central fit "
              f"({_esc(check.get('reference', ''))}) differs from the federated fit by at most "
              f"{check.get('max_abs_coef_difference', float('nan')):.3g} in any coefficient"
              + (" (the federated fit on exact aggregates; the reported coefficients carry the DP noise)"
                 if dp.get("enabled") else "") + ".</p>"]
    perf = pd.read_csv(inputs["federated_performance"], sep="\t")
    parts += ["<h3>Performance</h3>",
              f"<p>{metric} per site and pooled over pairs of patients of the same site (patients of different "
              "sites are not compared: each site has its own baseline), from the pair counts each site computed. "
              "<em>apparent</em>: the model was fitted on these patients (optimistic); "
              "<em>leave_one_site_out</em>: each site scored by a model fitted on the other sites only "
              "(its patients never entered that model). Point estimates only: no interval is given, because a "
              "bootstrap over patients would need per-patient scores, which do not leave the sites.</p>",
              _table(perf)]
    if survival and inputs.get("federated_km_png"):
        parts += ["<h3>Risk groups: Kaplan-Meier from binned counts</h3>",
                  "<p>Patients split at the pooled mean linear predictor (all sites, apparent). Each site sent only "
                  "numbers at risk and events per time bin; bins were merged until every cell held 0 or at least "
                  "k patients. Survival is the life-table estimate at the bin ends.</p>",
                  _img(inputs["federated_km_png"], "Federated Kaplan-Meier curves by risk group")]
    parts.append("<h3>Differential privacy</h3>")
    if dp.get("enabled"):
        parts.append(f"<p>Gaussian noise of SD {dp['sigma']:.3g} on every shared aggregate. Over {dp['repeats']} "
                     f"noise draws the {_esc(dp['scale'])} changed by {dp['mean_abs_change']:.3g} on average "
                     f"(largest {dp['max_abs_change']:.3g}; relative L2 change "
                     f"{dp['mean_relative_l2_change']:.3g}) against the fit on exact aggregates.</p>")
    else:
        parts.append("<p>Off: the sites shared exact aggregates (each of at least k patients).</p>")
    files = ", ".join(_link(inputs[key], rdir) for key in ("federated_coefficients", "federated_performance",
                                                           "federated_sites", "federated_qc") if inputs.get(key))
    parts.append(f"<p>Files: {files}.</p>")
    return parts
