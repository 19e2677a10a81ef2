"""The study report: one self-contained HTML page for a reviewer.

Figures are embedded (base64 PNG) so the page can be mailed on its own; every
result table it summarises is also linked by a relative path so a reviewer
can open the numbers behind each section. No timestamp or host name is
written, so the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from radsurv.report.harmonisation import multicentre_sections
from radsurv.report.provenance import input_checks
from radsurv.report.summaries import (
    cohort_summary,
    cv_repeats,
    headline,
    robust_counts_pivot,
    study_facts,
    versus_volume,
    volume_surrogates_in_model,
)
from radsurv.schema import default

#: Packages whose versions the report lists.
PACKAGES = ("radsurv", "pyradiomics-bhklab", "pictologics", "SimpleITK", "pydicom", "highdicom", "numpy", "pandas",
            "scipy", "scikit-learn", "scikit-survival", "lifelines", "matplotlib", "snakemake")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1b1b1b;line-height:1.45}
h1{border-bottom:2px solid #2b5d8a;padding-bottom:.2em}h2{color:#2b5d8a;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#eef3f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}.note{background:#fff8e1;border-left:4px solid #f0b400;
padding:.4em .8em}.ok{background:#e8f5e9;border-left:4px solid #43a047;padding:.4em .8em}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}nav a{margin-right:1em}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "" if pd.isna(x) else f"{x:.3g}" if abs(x) < 1e4 else f"{x:.4g}"
    return _esc(x)


def _table(df: pd.DataFrame, max_rows: int = 200) -> str:
    if df.empty:
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    rows = []
    for _, r in df.head(max_rows).iterrows():
        cells = "".join(
            f'<td class="num">{_fmt(v)}</td>' if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{_esc(v)}</td>" for v in r)
        rows.append(f"<tr>{cells}</tr>")
    more = f"<p><em>{len(df) - max_rows} more rows in the linked file.</em></p>" if len(df) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _img(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _link(path: str | Path, report_dir: Path, label: str | None = None) -> str:
    rel = os.path.relpath(Path(path).resolve(), report_dir.resolve())
    return f'<a href="{_esc(rel)}">{_esc(label or Path(path).name)}</a>'


def shareable_config(config: Any) -> Any:
    """``config`` with every absolute path cut to ``<path withheld>/<its last name>``.

    The report is meant to be mailed; the folders above a cohort's input files are the
    user's own (and exports are often foldered by patient). Relative paths (to the
    analysis folder) are kept; the inputs themselves are identified by SHA-256 below.
    """
    if isinstance(config, Mapping):
        return {k: shareable_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [shareable_config(v) for v in config]
    if isinstance(config, str) and (os.path.isabs(config) or config.startswith("~")):
        return f"<path withheld>/{Path(config).name}"
    return config


def versions() -> dict[str, str]:
    """Installed versions of the packages that produced the results."""
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _read_tsv(path: str | None, **kwargs: Any) -> pd.DataFrame:
    if not path or not Path(path).exists():
        return pd.DataFrame()
    return pd.read_csv(path, sep="\t", **kwargs)


@dataclass(frozen=True)
class _Run:
    """The result files of one run, read once, and where the report goes."""

    inputs: Mapping[str, Any]
    config: Mapping[str, Any]
    rdir: Path
    scans: pd.DataFrame
    clinical: pd.DataFrame
    features: pd.DataFrame
    qc: pd.DataFrame
    rob: Mapping[str, Any]
    pred: pd.DataFrame
    metrics: Mapping[str, Any]
    coefs: pd.DataFrame
    selection: pd.DataFrame
    perf: pd.DataFrame
    calib: pd.DataFrame
    freq: pd.DataFrame
    published: pd.DataFrame
    volcorr: pd.DataFrame

    @property
    def survival(self) -> bool:
        """Whether the study has a survival endpoint (its model's files are inputs)."""
        return bool(self.inputs.get("predictions"))

    @property
    def repeats(self) -> int:
        return cv_repeats(self.metrics, self.config)

    @property
    def surrogate_rho(self) -> float:
        """|Spearman| with volume from which a feature is flagged a volume surrogate (config or schema)."""
        rho = self.config.get("modelling", {}).get("volume_surrogate_rho")
        return float(default("modelling", "volume_surrogate_rho") if rho is None else rho)

    def link(self, key: str) -> str:
        return _link(self.inputs[key], self.rdir)


def _read_run(inputs: Mapping[str, Any], config: Mapping[str, Any], rdir: Path) -> _Run:
    """Read every result table and summary the report shows (optional ones empty when absent)."""
    return _Run(
        inputs=inputs, config=config, rdir=rdir,
        scans=pd.read_csv(inputs["scans"], sep="\t", dtype={"patient_id": str}),
        clinical=pd.read_csv(inputs["clinical"], sep="\t", dtype={"patient_id": str}),
        features=pd.read_csv(inputs["features"], sep="\t", dtype={"patient_id": str}),
        qc=pd.read_csv(inputs["qc"], sep="\t", dtype=str, keep_default_na=False),
        rob=json.loads(Path(inputs["robustness"]).read_text()),
        pred=_read_tsv(inputs.get("predictions"), dtype={"patient_id": str}),
        metrics=json.loads(Path(inputs["metrics"]).read_text()) if inputs.get("metrics") else {},
        coefs=_read_tsv(inputs.get("coefficients")),
        selection=_read_tsv(inputs.get("selection")),
        perf=_read_tsv(inputs.get("performance")),
        calib=_read_tsv(inputs.get("calibration")),
        freq=_read_tsv(inputs.get("selection_frequency")),
        published=_read_tsv(inputs.get("published")),
        volcorr=_read_tsv(inputs.get("volume_correlation")),
    )


#: The report's sections: anchor and title, in page order.
SECTIONS = [("cohort", "Cohort"), ("qc", "Quality control"), ("settings", "Settings"),
            ("features", "Features"), ("robustness", "Robustness"), ("model", "Model"),
            ("harmonisation", "Multi-centre"), ("negative-controls", "Confound controls"), ("km", "Risk groups"),
            ("endpoints", "Categorical endpoints"), ("radiogenomics", "Radiogenomics"), ("federated", "Federated"),
            ("longitudinal", "Delta radiomics"),
            ("checklist", "Checklist"), ("software", "Software and inputs")]


def _cohort_section(run: _Run) -> list[str]:
    unit = run.config.get("cohort", {}).get("time_unit", "months")
    summary = cohort_summary(run.scans, run.features, run.clinical, run.pred, run.rob)
    if run.survival:
        summary.loc[summary["quantity"].str.startswith("median follow-up"), "value"] += f" {unit}"
    return ['<h2 id="cohort">Cohort</h2>', _table(summary),
            f"<p>Files: {run.link('scans')}, {run.link('clinical')}, {run.link('features')}.</p>"]


def _qc_section(run: _Run) -> list[str]:
    qc = run.qc
    n_ex = int((qc["status"] == "excluded").sum())
    n_warn = int((qc["status"] == "warning").sum())
    box = "ok" if n_ex == 0 else "note"
    return ['<h2 id="qc">Quality control</h2>',
            f'<p class="{box}">{n_ex} exclusion(s) and {n_warn} warning(s). Every case not listed here was '
            f"processed completely. Full table: {run.link('qc')}.</p>",
            _table(qc)]


def _settings_section(run: _Run) -> list[str]:
    config = run.config
    parts = ['<h2 id="settings">Settings</h2>']
    if config.get("site"):
        parts.append(f"<p>Site preset: <code>{_esc(config['site'])}</code> (config/sites/), "
                     "with the study's overrides.</p>")
    for key, label in (("preprocessing", "Preprocessing"), ("extraction", "Feature extraction")):
        sub = config.get(key, {})
        parts.append(f"<h3>{label}</h3>")
        parts.append(_table(pd.DataFrame([(k, json.dumps(v)) for k, v in sub.items()], columns=["setting", "value"])))
    return parts


def _features_section(run: _Run) -> list[str]:
    from radsurv.features.engines import engine_of, texture_aggregation

    n_feat = len([c for c in run.features.columns if c not in ("scan_id", "patient_id", "session")])
    extraction = run.config.get("extraction", {}) or {}
    parts = ['<h2 id="features">Features</h2>',
             f"<p>{n_feat} features per scan ({engine_of(extraction)}; IBSI-conformant preprocessing by radsurv). "
             f"Texture aggregation: GLCM and GLRLM features {texture_aggregation(extraction)} over the 13 3D "
             "directions (averaged: one value per direction, then the mean; merged: one matrix summed over the "
             "directions).</p>"]
    volcorr = run.volcorr
    if not volcorr.empty:
        flag = next((c for c in volcorr.columns if "surrogate" in c or c == "flag"), None)
        n_flag = int(volcorr[flag].astype(bool).sum()) if flag else 0
        parts.append(f"<p>{n_flag} features correlate with tumour volume at |Spearman| &ge; {run.surrogate_rho:g} "
                     "across patients "
                     f"and are flagged as volume surrogates: {run.link('volume_correlation')}.</p>")
    if run.inputs.get("heatmap_png"):
        parts.append(_img(run.inputs["heatmap_png"], "Correlation heatmap of robust features"))
    return parts


def _robustness_section(run: _Run) -> list[str]:
    rob, inputs = run.rob, run.inputs
    parts = ['<h2 id="robustness">Robustness</h2>']
    if rob.get("assessed"):
        desc = rob.get("description") or (
            f"{_esc(rob['form'])} {'lower bound of the 95% CI' if rob.get('use_lower_bound') else 'estimate'} "
            f"&ge; {rob['threshold']:.2f}")
        parts.append(f"<p>{rob['n_robust']} of {rob['n_features']} features are robust. {_esc(desc)} Only robust "
                     f"features are offered to the model. Table: {run.link('icc')}.</p>")
    else:
        parts.append('<p class="note">Robustness was NOT assessed (too few test-retest pairs and no perturbation '
                     "analysis): all features were offered to the model.</p>")
    parts.append(_img(inputs["icc_plot"], "ICC by feature class"))
    by = pd.DataFrame(rob.get("by_class", []))
    if not by.empty:
        parts.append("<p>Robust / total features per image type (rows) and feature class (columns):</p>")
        parts.append(_table(robust_counts_pivot(by)))
    for key in sorted(k for k in inputs if k.startswith("rob_fig_")):
        label = key[len("rob_fig_"):].replace("_", " ")
        parts.append(f"<h3>{_esc(label)}</h3>")
        parts.append(_img(inputs[key], label))
    return parts


def _model_headline(run: _Run, primary: str) -> list[str]:
    """The model's results in one boxed sentence, the repeats note and the volume-surrogate warning."""
    repeats = run.repeats
    vs_volume = versus_volume(run.perf, primary)
    box = "ok" if vs_volume.startswith(f"the {primary} model discriminates better") else ("note" if vs_volume else "ok")
    parts = [f'<p class="{box}">{_esc(headline(run.metrics, run.perf, repeats))}</p>']
    if repeats > 1:
        parts.append(f"<p>Each held-out metric is the mean over the {repeats} repeats of the cross-validation (its "
                     "bootstrap CI covers patient sampling and the variation between repeats); the held-out risk "
                     "groups, their log-rank p and hazard ratio, and the held-out Kaplan-Meier "
                     "figure are those of repeat 1 only (one out-of-fold risk group per patient).</p>")
    surrogates = volume_surrogates_in_model(run.coefs, run.volcorr, primary)
    if not surrogates.empty:
        listed = ", ".join(f"{f} (Spearman rho {r:+.2f})" for f, r in surrogates.itertuples(index=False))
        parts.append(f'<p class="note">{len(surrogates)} of the final {_esc(primary)} model\'s features '
                     f"{'is a volume surrogate' if len(surrogates) == 1 else 'are volume surrogates'} "
                     f"(|Spearman| with tumour volume &ge; {run.surrogate_rho:g} across patients): {_esc(listed)}. "
                     "What they add "
                     "may be tumour size; compare with the volume-only baseline.</p>")
    return parts


def _model_tables(run: _Run) -> list[str]:
    """Model comparison, figures, selection frequency, coefficients, selection, published signatures."""
    from radsurv.report.figures import model_comparison_table

    parts = []
    comp = model_comparison_table(run.perf) if not run.perf.empty else pd.DataFrame()
    if not comp.empty:
        parts += ["<h3>Model comparison (held-out, 95% bootstrap CI)</h3>", _table(comp),
                  f"<p>All metrics: {run.link('performance')}. Harrell's and Uno's C, time-dependent AUC "
                  "and the integrated Brier score are scikit-survival's.</p>"]
    for key, alt in (("td_auc_png", "Time-dependent AUC"), ("calibration_png", "Calibration"),
                     ("forest_png", "Forest plot of the final model")):
        if run.inputs.get(key):
            parts += [f"<h3>{_esc(alt)}</h3>", _img(run.inputs[key], alt)]
    if not run.freq.empty:
        parts += ["<h3>Selection frequency across outer folds (top 15)</h3>",
                  _table(run.freq.sort_values("fraction_of_fits", ascending=False).head(15))]
    parts += ["<h3>Final model coefficients</h3>", _table(run.coefs),
              "<h3>Feature selection (training patients)</h3>", _table(run.selection)]
    if not run.published.empty:
        parts += ["<h3>Published signatures</h3>", _table(run.published)]
    return parts


def _model_section(run: _Run) -> list[str]:
    primary = str(run.metrics.get("primary_model", "radiomics"))
    return (['<h2 id="model">Model</h2>',
             "<p>Every data-dependent step (scaling, redundancy reduction, selection, tuning, imputation and the "
             "risk cut-off) was fitted on training patients only and applied unchanged to held-out patients. "
             f"{_esc(run.metrics.get('design_description', ''))}</p>"]
            + _model_headline(run, primary) + _model_tables(run)
            + [f"<p>Files: {run.link('coefficients')}, {run.link('predictions')}, {run.link('metrics')}.</p>"])


def _harmonisation_section(run: _Run) -> list[str]:
    """Multi-centre harmonisation and negative controls (radsurv.report.harmonisation; empty unless run)."""
    return multicentre_sections(run.inputs, run.metrics, run.config)


def _km_section(run: _Run) -> list[str]:
    repeats = run.repeats
    parts = ['<h2 id="km">Risk groups: Kaplan-Meier curves</h2>', "<h3>Held-out patients</h3>"]
    if repeats > 1:
        parts.append(f"<p>Out-of-fold risk groups of repeat 1 of the {repeats} cross-validation repeats (the "
                     f"C-index above is the mean over all {repeats}).</p>")
    return parts + [
        _img(run.inputs["km_test"], "Kaplan-Meier curves of held-out patients by risk group"),
        "<h3>Development cohort (final model, apparent)</h3>",
        _img(run.inputs["km_train"], "Kaplan-Meier curves of development patients by risk group"),
        f"<p>Figures: {run.link('km_test')}, {run.link('km_train')}.</p>"]


def _federated_section(run: _Run) -> list[str]:
    """Issue #20's "Federated study" section (:mod:`radsurv.report.federated`); empty without one."""
    from radsurv.report.federated import federated_section

    return federated_section(run.inputs, run.config, run.rdir)


def _longitudinal_section(run: _Run) -> list[str]:
    from radsurv.report.longitudinal import longitudinal_blocks

    return _blocks_html(longitudinal_blocks(run.inputs), run.rdir)


def _checklist_section(run: _Run) -> list[str]:
    from radsurv.report.checklist import rqs_items, rqs_total

    inputs = run.inputs
    pert_summary = None
    if inputs.get("rob_summary_perturbation") and Path(inputs["rob_summary_perturbation"]).exists():
        pert_summary = json.loads(Path(inputs["rob_summary_perturbation"]).read_text())
    rows = rqs_items(study_facts(run.rob, run.metrics, run.calib, pert_summary))
    earned, open_max = rqs_total(rows)
    return ['<h2 id="checklist">Checklist: Radiomics Quality Score</h2>',
            f"<p>Items of the RQS (Lambin et al., Nat Rev Clin Oncol 2017) that this run can answer earn {earned} "
            f"points; items marked <em>supply yourself</em> (up to {open_max} more points) depend on what the "
            "pipeline cannot know. Points are only claimed for what this run did.</p>",
            _table(pd.DataFrame(rows))]


def _no_survival_section(run: _Run) -> list[str]:
    endpoint = _esc((run.config.get("modelling") or {}).get("endpoint", "survival"))
    return ['<h2 id="model">Survival model</h2>', f'<p class="note">This study has no survival endpoint (modelling.'
            f"endpoint is {endpoint}): no survival model, risk groups, Kaplan-Meier curves or RQS checklist.</p>"]


def _blocks_html(blocks: Sequence[tuple[Any, ...]], rdir: Path) -> list[str]:
    """HTML of the report blocks of :mod:`radsurv.report.classification` (its docstring)."""
    render = {"h2": lambda b: f'<h2 id="{_esc(b[1])}">{_esc(b[2])}</h2>', "h3": lambda b: f"<h3>{_esc(b[1])}</h3>",
              "p": lambda b: f'<p class="{_esc(b[1])}">{_esc(b[2])}</p>' if b[1] else f"<p>{_esc(b[2])}</p>",
              "table": lambda b: _table(b[1]), "img": lambda b: _img(b[1], b[2]),
              "links": lambda b: "<p>Files: " + ", ".join(_link(p, rdir) for p in b[1]) + ".</p>"}
    return [render[b[0]](b) for b in blocks]


def _endpoints_section(run: _Run) -> list[str]:
    from radsurv.report.classification import endpoint_blocks, endpoint_files, radiogenomics_blocks

    blocks: list[tuple[Any, ...]] = []
    for i, (name, files) in enumerate(endpoint_files(run.inputs).items()):
        blocks += ([("h2", "endpoints", "Categorical endpoints")] if i == 0 else []) + endpoint_blocks(name, files)
    if run.inputs.get("radiogenomics_tsv"):
        blocks += [("h2", "radiogenomics", "Radiogenomics screen")] + radiogenomics_blocks(
            run.inputs["radiogenomics_tsv"], run.inputs.get("radiogenomics_png"))
    return _blocks_html(blocks, run.rdir)


def _software_section(run: _Run) -> list[str]:
    parts = ['<h2 id="software">Software and inputs</h2>',
             _table(pd.DataFrame(sorted(versions().items()), columns=["package", "version"]))]
    checks = input_checks(run.config.get("cohort", {}), run.inputs.get("converted") or [])
    if checks:
        parts.append(_table(pd.DataFrame(checks, columns=["input", "file", "sha256"])))
    config = shareable_config(json.loads(json.dumps(dict(run.config))))
    parts += ["<h3>Configuration used</h3>", f"<pre>{_esc(yaml.safe_dump(config, sort_keys=False))}</pre>"]
    return parts


def write_report(inputs: Mapping[str, str], config: Mapping[str, Any], out_path: str | Path) -> None:
    """Write ``results/report/report.html`` from the workflow's result files.

    Required inputs: scans, clinical, features, qc, icc, robustness, icc_plot; with a survival endpoint
    predictions, metrics, coefficients, selection, km_test, km_train (else one sentence replaces the survival
    sections). Optional: performance, calibration, selection_frequency, published, volume_correlation,
    td_auc_png, calibration_png, forest_png, heatmap_png, ``rob_fig_*`` / ``rob_summary_*``, each categorical
    endpoint's ``endpoint__<name>__<kind>`` and ``radiogenomics_tsv`` / ``_png`` (report.classification).
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    run = _read_run(inputs, config, out.parent)
    title = config.get("cohort", {}).get("name") or "radsurv study"
    parts = [f"<h1>radsurv report: {_esc(title)}</h1>"]
    # the RQS checklist scores the survival study; it closes the results, after every endpoint's sections
    survival = (_model_section, _harmonisation_section, _km_section) if run.survival else (_no_survival_section,)
    checklist = (_checklist_section,) if run.survival else ()
    body = [p for section in (_cohort_section, _qc_section, _settings_section, _features_section, _robustness_section,
                              *survival, _endpoints_section, _federated_section, _longitudinal_section, *checklist,
                              _software_section)
            for p in section(run)]
    parts += ["<nav>" + "".join(f'<a href="#{a}">{_esc(t)}</a>' for a, t in SECTIONS
                                if f'<h2 id="{a}">' in "".join(body)) + "</nav>"] + body
    doc = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>radsurv report: {_esc(title)}</title><style>{CSS}</style></head><body>"
           + "\n".join(parts) + "</body></html>\n")
    out.write_text(doc, encoding="utf-8")
