"""The study report: one self-contained HTML page for a reviewer.

Figures are embedded (base64 PNG) so the page can be mailed on its own; every
result table it summarises is also linked by a relative path so a reviewer
can open the numbers behind each section. No timestamp or host name is
written, so the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

#: Packages whose versions the report lists.
PACKAGES = ("radsurv", "pyradiomics-bhklab", "SimpleITK", "pydicom", "highdicom", "numpy", "pandas",
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


def sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of every file below a folder (names and bytes, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Installed versions of the packages that produced the results."""
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def median_followup(time: pd.Series, event: pd.Series) -> float:
    """Median follow-up by the reverse Kaplan-Meier method (censoring as the event)."""
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(time, 1 - event)
    return float(kmf.median_survival_time_)


def cohort_summary(scans: pd.DataFrame, features: pd.DataFrame, clinical: pd.DataFrame,
                   predictions: pd.DataFrame, robustness: Mapping[str, Any]) -> pd.DataFrame:
    """Key counts of the cohort as a two-column table."""
    pats = predictions["patient_id"].nunique()
    events = int(predictions["event"].sum())
    rows = [
        ("patients with a discovered scan", scans["patient_id"].nunique()),
        ("scans discovered", len(scans)),
        ("scans with features", len(features)),
        ("test-retest pairs used", robustness.get("pairs_used", 0)),
        ("patients in the clinical table (usable rows)", len(clinical)),
        ("patients modelled", pats),
        ("events among modelled patients", f"{events} ({100 * events / max(pats, 1):.0f}%)"),
        ("median follow-up (reverse Kaplan-Meier)",
         f"{median_followup(predictions['time'], predictions['event']):.1f}"),
    ]
    return pd.DataFrame(rows, columns=["quantity", "value"])


def _num(metrics: Mapping[str, Any], key: str) -> float | None:
    v = metrics.get(key)
    return None if v is None or (isinstance(v, float) and v != v) else float(v)


def headline(metrics: Mapping[str, Any]) -> str:
    """The model's main results in one sentence (held-out data first)."""
    parts = []
    c = _num(metrics, "c_index_test")
    if c is not None:
        lo, hi = _num(metrics, "c_index_test_ci_low"), _num(metrics, "c_index_test_ci_high")
        ci = f" (95% bootstrap CI {lo:.2f}-{hi:.2f})" if lo is not None and hi is not None else ""
        parts.append(f"Harrell's C-index on {metrics.get('n_test', '?')} held-out patients "
                     f"({metrics.get('events_test', '?')} events): {c:.3f}{ci}")
    cv = _num(metrics, "c_index_volume_test")
    if cv is not None:
        parts.append(f"tumour volume alone: {cv:.3f}")
    p = _num(metrics, "logrank_p_test")
    if p is not None:
        parts.append(f"log-rank p between held-out risk groups: {p:.3g}")
    hr = _num(metrics, "hr_high_vs_low_test")
    if hr is not None:
        lo, hi = _num(metrics, "hr_ci_low_test"), _num(metrics, "hr_ci_high_test")
        ci = f" (95% CI {lo:.2f}-{hi:.2f})" if lo is not None and hi is not None else ""
        parts.append(f"hazard ratio high vs low risk: {hr:.2f}{ci}")
    ct = _num(metrics, "c_index_train")
    if ct is not None:
        parts.append(f"training C-index (optimistic, for reference): {ct:.3f}")
    return "; ".join(parts) + "." if parts else "No model metrics could be computed."


def write_report(inputs: Mapping[str, str], config: Mapping[str, Any], out_path: str | Path) -> None:
    """Write ``results/report/report.html`` from the workflow's result files."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rdir = out.parent
    scans = pd.read_csv(inputs["scans"], sep="\t", dtype={"patient_id": str})
    clinical = pd.read_csv(inputs["clinical"], sep="\t", dtype={"patient_id": str})
    features = pd.read_csv(inputs["features"], sep="\t", dtype={"patient_id": str})
    qc = pd.read_csv(inputs["qc"], sep="\t", dtype=str, keep_default_na=False)
    icc = pd.read_csv(inputs["icc"], sep="\t")
    rob = json.loads(Path(inputs["robustness"]).read_text())
    pred = pd.read_csv(inputs["predictions"], sep="\t", dtype={"patient_id": str})
    metrics = json.loads(Path(inputs["metrics"]).read_text())
    coefs = pd.read_csv(inputs["coefficients"], sep="\t")
    selection = pd.read_csv(inputs["selection"], sep="\t")
    unit = config.get("cohort", {}).get("time_unit", "months")
    time_unit_note = f"Times are in {unit}."

    parts: list[str] = []
    add = parts.append
    title = config.get("cohort", {}).get("name") or "radsurv study"
    add(f"<h1>radsurv report: {_esc(title)}</h1>")
    sections = [("cohort", "Cohort"), ("qc", "Quality control"), ("settings", "Settings"),
                ("robustness", "Robustness"), ("model", "Model"), ("km", "Risk groups"),
                ("software", "Software and inputs")]
    add("<nav>" + "".join(f'<a href="#{a}">{_esc(t)}</a>' for a, t in sections) + "</nav>")

    # Cohort
    add('<h2 id="cohort">Cohort</h2>')
    add(_table(cohort_summary(scans, features, clinical, pred, rob)))
    add(f"<p>{_esc(time_unit_note)} Files: {_link(inputs['scans'], rdir)}, "
        f"{_link(inputs['clinical'], rdir)}, {_link(inputs['features'], rdir)}.</p>")

    # QC
    add('<h2 id="qc">Quality control</h2>')
    n_ex = int((qc["status"] == "excluded").sum())
    n_warn = int((qc["status"] == "warning").sum())
    box = "ok" if n_ex == 0 else "note"
    add(f'<p class="{box}">{n_ex} exclusion(s) and {n_warn} warning(s). Every case not listed here was '
        f"processed completely. Full table: {_link(inputs['qc'], rdir)}.</p>")
    add(_table(qc))

    # Settings
    add('<h2 id="settings">Settings</h2>')
    for key, label in (("preprocessing", "Preprocessing"), ("extraction", "Feature extraction")):
        sub = config.get(key, {})
        add(f"<h3>{label}</h3>")
        add(_table(pd.DataFrame([(k, json.dumps(v)) for k, v in sub.items()], columns=["setting", "value"])))

    # Robustness
    add('<h2 id="robustness">Robustness (test-retest)</h2>')
    if rob.get("assessed"):
        crit = "lower bound of the 95% CI" if rob["use_lower_bound"] else "point estimate"
        add(f"<p>{rob['n_robust']} of {rob['n_features']} features are robust: {_esc(rob['form'])} "
            f"{_esc(crit)} &ge; {rob['threshold']:.2f} over {rob['pairs_used']} test-retest pairs. "
            f"Only robust features are offered to the model. Table: {_link(inputs['icc'], rdir)}.</p>")
    else:
        add(f'<p class="note">Robustness was NOT assessed: {rob.get("pairs_used", 0)} complete test-retest '
            "pairs, fewer than the configured minimum. All features were offered to the model.</p>")
    add(_img(inputs["icc_plot"], "ICC by feature class"))
    by = pd.DataFrame(rob.get("by_class", []))
    if not by.empty:
        add(_table(by))

    # Model
    add('<h2 id="model">Model</h2>')
    add("<p>Every data-dependent step (standardisation, redundancy reduction, univariate screen, "
        "penalised Cox fit and the risk cut-off) was fitted on the training patients only and "
        "applied unchanged to the held-out patients.</p>")
    add(f'<p class="ok">{_esc(headline(metrics))}</p>')
    mrows = [(k, v) for k, v in sorted(metrics.items()) if not isinstance(v, (dict, list))]
    add(_table(pd.DataFrame(mrows, columns=["metric", "value"])))
    add("<h3>Feature selection (training patients)</h3>")
    add(_table(selection))
    add("<h3>Cox signature</h3>")
    add(_table(coefs))
    add(f"<p>Files: {_link(inputs['coefficients'], rdir)}, {_link(inputs['predictions'], rdir)}, "
        f"{_link(inputs['metrics'], rdir)}.</p>")

    # KM
    add('<h2 id="km">Risk groups: Kaplan-Meier curves</h2>')
    add("<h3>Held-out patients</h3>")
    add(_img(inputs["km_test"], "Kaplan-Meier curves of held-out patients by risk group"))
    add("<h3>Training patients</h3>")
    add(_img(inputs["km_train"], "Kaplan-Meier curves of training patients by risk group"))
    add(f"<p>Figures: {_link(inputs['km_test'], rdir)}, {_link(inputs['km_train'], rdir)}.</p>")

    # Software
    add('<h2 id="software">Software and inputs</h2>')
    add(_table(pd.DataFrame(sorted(versions().items()), columns=["package", "version"])))
    clin_path = config.get("cohort", {}).get("clinical_table")
    if clin_path and Path(clin_path).exists():
        add(_table(pd.DataFrame([("clinical table", Path(clin_path).name, sha256(clin_path))],
                                columns=["input", "file", "sha256"])))
    add("<h3>Configuration used</h3>")
    add(f"<pre>{_esc(yaml.safe_dump(json.loads(json.dumps(dict(config))), sort_keys=False))}</pre>")

    doc = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>radsurv report: {_esc(title)}</title><style>{CSS}</style></head><body>"
           + "\n".join(parts) + "</body></html>\n")
    out.write_text(doc, encoding="utf-8")
