"""Entry point of the federated study rule (issue #20): the config's ``federated`` block on this machine.

:func:`federated_study` reads every site's feature and clinical tables, builds one
:class:`~radsurv.federated.site.Site` per hospital (its patients never leave it: the
study asks it for aggregates only), runs :func:`radsurv.federated.study.run_federated_study`
over the configured transport and writes ``results/federated/``. Because all sites are on
this machine (a consortium's test run, a tutorial), it also fits the pooled central model as
a check of exactness; in a real deployment each hospital runs a Flower SuperNode with its own
table instead (:mod:`radsurv.federated.flower`, ``write_flower_app``).

No patient identifier reaches any output: sites are named by the config, QC rows of a site
hold counts (only when at least ``min_patients``) and the site's reason, never an id.
"""

from __future__ import annotations

import json
import logging
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radsurv.workflow._io import json_safe, write_tsv

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from radsurv.federated.privacy import NoiseConfig
    from radsurv.federated.site import Site
    from radsurv.federated.study import FederatedSettings, FederatedStudyResult

log = logging.getLogger(__name__)

#: The files :func:`federated_study` writes (keyword -> name in ``results/federated/``).
FEDERATED_OUTPUTS = {
    "coefficients": "coefficients.tsv", "performance": "performance.tsv", "sites": "sites.tsv", "km": "km.tsv",
    "km_png": "km.png", "audit": "audit.jsonl", "dp_effect": "dp_effect.json", "summary": "summary.json",
    "qc": "qc.tsv",
}

@dataclass
class SiteData:
    """One site's patients as read from its tables (kept in this process: the site's side)."""

    name: str
    features: pd.DataFrame           # patients x features (index: patient id, never shared)
    time: np.ndarray | None = None
    event: np.ndarray | None = None
    label: np.ndarray | None = None
    icc_data: np.ndarray | None = None  # (features, retest patients, 2) over ``icc_columns``
    icc_columns: list[str] | None = None


def federated_files(out_dir: str | Path) -> dict[str, Path]:
    """The output keywords of :func:`federated_study` with their files in ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {k: out / v for k, v in FEDERATED_OUTPUTS.items()}


# --- reading a site's tables ---------------------------------------------------------------------

def _read_site_features(path: str | Path, modelling: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(features by patient, pipeline table or None)``: the pipeline's ``features.tsv`` (one row
    per scan: each patient's first scan; the table is kept for test-retest pairs) or a user's table."""
    import pandas as pd

    from radsurv.features.table import modelling_matrix, read_feature_table
    from radsurv.schema import default

    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip("\n")
    if {"scan_id", "patient_id", "session"} <= set(first.split("\t")):
        scans = pd.read_csv(path, sep="\t", dtype={"patient_id": str})
        return modelling_matrix(scans.set_index("scan_id")), scans

    def get(key: str) -> Any:
        return modelling.get(key, default("modelling", key))

    frame = read_feature_table(path, get("features_id_column"), get("features_header_rows"),
                               get("features_id_pattern"))
    return frame, None


def _retest_array(scans: pd.DataFrame | None, columns: Sequence[str]) -> np.ndarray | None:
    """``(features, patients, 2)``: the first two sessions of each patient who has two (test-retest)."""
    import numpy as np

    if scans is None:
        return None
    ordered = scans.sort_values(["patient_id", "session"])
    pairs = ordered.groupby("patient_id").head(2)
    counts = pairs.groupby("patient_id").size()
    keep = counts[counts == 2].index
    if len(keep) == 0:
        return None
    pairs = pairs[pairs["patient_id"].isin(keep)]
    first = pairs.groupby("patient_id").nth(0).set_index("patient_id")[list(columns)]
    second = pairs.groupby("patient_id").nth(1).set_index("patient_id")[list(columns)].loc[first.index]
    return np.stack([first.to_numpy(float).T, second.to_numpy(float).T], axis=2)


def _binary_outcome(path: str | Path, id_col: str, label_col: str, positive: Any) -> pd.Series:
    """Each patient's binary outcome (1 = ``positive``) from the clinical table; empty cells dropped."""
    from radsurv.ingest.clinical import read_clinical_tables

    raw, name = read_clinical_tables(path, id_col)
    if label_col not in raw.columns:
        raise ValueError(f"the clinical table {name} has no column {label_col!r} (federated.label)")
    values = raw.set_index(id_col)[label_col].astype(str).str.strip()
    values = values[values != ""]
    classes = sorted(values.unique())
    if len(classes) != 2:
        raise ValueError(f"federated.label: column {label_col!r} must hold exactly two classes at every site; "
                         f"this site has {len(classes)}")
    pos = str(positive) if positive is not None else classes[1]
    if pos not in classes:
        raise ValueError(f"federated.positive_class {pos!r} is not one of the column's classes")
    return (values == pos).astype(int)


def read_site(site: Mapping[str, Any], settings: FederatedSettings, modelling: Mapping[str, Any],
              columns: Mapping[str, Any], label: str | None, positive: Any,
              qc: list[dict[str, str]]) -> SiteData:
    """Read one site's tables (the site's own step): features joined to the outcome, one row per
    patient with the outcome; patients without an outcome are counted in one QC row (no ids)."""
    import numpy as np

    from radsurv.federated.study import qc_site_row
    from radsurv.ingest.clinical import load_clinical

    name = str(site["name"])
    feats, scans = _read_site_features(site["features_table"], modelling)
    feats.index = feats.index.astype(str)
    k = settings.min_patients
    if settings.endpoint == "survival":
        clin, _ = load_clinical(site["clinical_table"], columns, image_ids=sorted(feats.index),
                                image_source="feature table")
        clin = clin.set_index(clin["patient_id"].astype(str))
        ids = sorted(set(feats.index) & set(clin.index))
        out = SiteData(name, feats.loc[ids], time=clin.loc[ids, "time"].to_numpy(float),
                       event=clin.loc[ids, "event"].to_numpy(int))
    else:
        y = _binary_outcome(site["clinical_table"], columns["id"], str(label), positive)
        y.index = y.index.astype(str)
        ids = sorted(set(feats.index) & set(y.index))
        out = SiteData(name, feats.loc[ids], label=y.loc[ids].to_numpy(int))
    unmatched = len(feats) - len(ids)
    if unmatched:
        qc.append(qc_site_row(name, "the join of its feature and clinical tables",
                              f"{unmatched if unmatched >= k else f'fewer than {k}'} patient(s) with features but "
                              "no usable outcome are not part of the study", status="warning"))
    if scans is not None:
        numeric = [c for c in feats.columns if np.issubdtype(feats[c].dtype, np.number)]
        out.icc_data, out.icc_columns = _retest_array(scans, numeric), numeric
    return out


def _complete_cases(data: SiteData, features: Sequence[str], min_patients: int,
                    qc: list[dict[str, str]]) -> SiteData:
    """The site's patients with every study feature present (others: one QC row with their count)."""
    import numpy as np

    from radsurv.federated.study import qc_site_row

    x = data.features[list(features)].apply(lambda c: c.astype(float))
    ok = np.isfinite(x.to_numpy()).all(axis=1)
    if ok.all():
        return replace(data, features=x)
    dropped = int((~ok).sum())
    qc.append(qc_site_row(data.name, "the study's features",
                          f"{dropped if dropped >= min_patients else f'fewer than {min_patients}'} patient(s) with a "
                          "missing feature value are not part of the study", status="warning"))

    def sub(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[ok]

    return replace(data, features=x[ok], time=sub(data.time), event=sub(data.event), label=sub(data.label))


# --- the study ---------------------------------------------------------------------------------

class _Sites:
    """Builds the in-process sites (with or without DP noise) and remembers every one for the audit."""

    def __init__(self, data: Sequence[SiteData], settings: FederatedSettings, icc_columns: Sequence[str] | None,
                 first_run: int = 0):
        self.data, self.settings, self.icc_columns = list(data), settings, icc_columns
        self.first_run = first_run
        self.built: list[tuple[int, Site]] = []

    def site(self, d: SiteData, noise: NoiseConfig | None, index: int) -> Site:
        from radsurv.federated.privacy import NoiseConfig
        from radsurv.federated.site import Site
        from radsurv.modelling.config import derive_seed

        site_noise = None if noise is None else NoiseConfig(sigma=noise.sigma, seed=derive_seed(noise.seed, index))
        icc = None
        if self.icc_columns is not None and d.icc_data is not None and d.icc_columns is not None:
            pos = [d.icc_columns.index(c) for c in self.icc_columns]
            icc = d.icc_data[pos]
        return Site(d.name, d.features, time=d.time, event=d.event, label=d.label, icc_data=icc,
                    min_patients=self.settings.min_patients, noise=site_noise)

    def __call__(self, noise: NoiseConfig | None) -> Any:
        from radsurv.federated.site import LocalFederation

        run = self.first_run + len({r for r, _ in self.built})
        sites = [self.site(d, noise, i) for i, d in enumerate(self.data)]
        self.built += [(run, s) for s in sites]
        return LocalFederation(sites)

    def audit_lines(self) -> list[str]:
        """Every message every site sent, one JSON line each: site, run, kind, counts, field shapes."""
        from radsurv.federated.privacy import audit_record

        return [json.dumps(json_safe(audit_record(s.name, msg, run=run, message=i)), sort_keys=True)
                for run, s in self.built for i, msg in enumerate(s.sent)]


def _common_columns(data: Sequence[SiteData]) -> list[str]:
    """Feature names every site holds, in the first site's order (names only)."""
    import numpy as np

    first = data[0].features
    numeric = [c for c in first.columns if np.issubdtype(first[c].dtype, np.number)]
    return [c for c in numeric if all(c in d.features.columns for d in data[1:])]


def central_check(data: Sequence[SiteData], result: FederatedStudyResult, settings: FederatedSettings,
                  sites: Sequence[str]) -> tuple[pd.Series, dict[str, Any]]:
    """The pooled central fit of the same model on the admitted sites' patients (possible only
    because every site is on this machine): lifelines ``CoxPHFitter(penalizer, strata=site)``
    or scikit-learn ``LogisticRegression(C)`` on the pooled table standardised with the same
    pooled means and SDs. Returns its coefficients per original unit (index: the features, and
    ``(intercept)`` for a binary endpoint) and the largest differences from the federated fit
    on exact aggregates."""
    import numpy as np
    import pandas as pd

    model = result.exact_model
    feats = list(model.features)
    parts = [d for d in data if d.name in sites]
    x = pd.concat([d.features[feats] for d in parts], ignore_index=True)
    site = np.concatenate([[d.name] * len(d.features) for d in parts])
    if settings.endpoint == "survival":
        from lifelines import CoxPHFitter
        from sksurv.metrics import concordance_index_censored

        df = x.assign(time=np.concatenate([d.time for d in parts]), event=np.concatenate([d.event for d in parts]),
                      site=site)
        cph = CoxPHFitter(penalizer=settings.penalizer).fit(
            df, "time", "event", strata=["site"],
            fit_options={"precision": 1e-14, "r_precision": 0.0, "max_steps": 500})
        central = cph.params_[feats].astype(float)
        risk = x.to_numpy(float) @ central.to_numpy()
        num = den = 0.0
        for name in sites:
            m = site == name
            _, c, dsc, tr, _ = concordance_index_censored(df["event"].to_numpy(bool)[m], df["time"].to_numpy()[m],
                                                          risk[m])
            num += c + 0.5 * tr
            den += c + dsc + tr
        perf = result.performance
        pooled = perf[(perf["scope"] == "apparent") & perf["site"].astype(str).str.startswith("pooled")]["estimate"]
        check = {"reference": "lifelines CoxPHFitter(penalizer, strata=site) on the pooled patients",
                 "max_abs_coef_difference": float(np.max(np.abs(central.to_numpy() - model.coef))),
                 "central_pooled_c_index": num / den if den else None,
                 "federated_pooled_c_index": float(pooled.iloc[0]) if len(pooled) else None,
                 "scale": "per unit of each feature"}
        return central, check
    from sklearn.linear_model import LogisticRegression

    mean, sd = model.moments.mean, model.moments.sd
    z = (x.to_numpy(float) - mean) / sd
    y = np.concatenate([d.label for d in parts])
    sk = LogisticRegression(C=settings.C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(z, y)
    w, b = sk.coef_[0], float(sk.intercept_[0])
    central = pd.Series([*(w / sd), b - float(np.sum(w * mean / sd))], index=[*feats, "(intercept)"])
    check = {"reference": "scikit-learn LogisticRegression(C) on the pooled patients, standardised alike",
             "max_abs_coef_difference": float(np.max(np.abs(w - model.coef_std))),
             "intercept_abs_difference": float(abs(b - model.intercept_std)),
             "scale": "per pooled SD (standardised features)"}
    return central, check


def federated_study(*, federated: Mapping[str, Any], modelling: Mapping[str, Any], robustness: Mapping[str, Any],
                    columns: Mapping[str, Any], seed: int, time_unit: str = "months",
                    **files: str | Path) -> None:
    """Run the config's federated study and write ``results/federated/`` (keys of :data:`FEDERATED_OUTPUTS`).

    ``files`` also holds the sites' tables as the rule names them (``features_<i>``,
    ``clinical_<i>``, so that Snakemake tracks them); they are read through ``federated.sites``.
    """
    from radsurv.federated.study import FederatedSettings, resolve_features, run_federated_study
    from radsurv.qc import write_qc
    from radsurv.report.federated import plot_federated_km

    start = _time.perf_counter()
    out = {k: Path(files[k]) for k in FEDERATED_OUTPUTS}
    settings = FederatedSettings.from_config(federated, modelling, robustness, seed)
    if len(federated.get("sites") or []) < 1:
        raise ValueError("federated.sites: list the study's sites (name, features_table, clinical_table)")
    label = federated.get("label") or (modelling.get("label") or {}).get("column")
    positive = federated.get("positive_class")
    if positive is None:
        positive = (modelling.get("label") or {}).get("positive_class")
    if settings.endpoint == "binary" and not label:
        raise ValueError("federated.label: a binary federated study needs the clinical column of the class "
                         "(federated.label or modelling.label.column)")
    qc: list[dict[str, str]] = []
    data = []
    for site in federated["sites"]:  # a site whose tables cannot be read is left out, never the study
        try:
            data.append(read_site(site, settings, modelling, columns, label, positive, qc))
        except (ValueError, KeyError, OSError) as exc:
            from radsurv.federated.study import qc_site_row

            qc.append(qc_site_row(str(site["name"]), "the reading of its tables", f"{exc}; the site is left out "
                                  "of the study"))
    if not data:
        write_qc(qc, out["qc"])
        raise ValueError("federated.sites: no site's tables could be read (see results/federated/qc.tsv)")
    names = _common_columns(data)
    icc_table, audit = None, []
    if settings.features == "robust":  # the federated test-retest ICC (run 0 of the audit)
        icc_sites = _Sites(data, settings, _common_icc_columns(data, names))
        fed = icc_sites(settings.noise)
        chosen, icc_table = resolve_features(settings, icc_sites.icc_columns or [], fed, fed.site_names, qc)
        audit = icc_sites.audit_lines()
    else:
        chosen, _ = resolve_features(settings, names)
    settings = replace(settings, features=list(chosen))
    data = [_complete_cases(d, chosen, settings.min_patients, qc) for d in data]
    transport = str(federated.get("transport", "inprocess"))
    sites = _Sites(data, settings, None, first_run=1 if audit else 0)
    if transport == "simulation":
        result, sent = _flower_study(data, settings, chosen, out["audit"].parent)
    else:
        result = run_federated_study(sites, settings, chosen)
        sent = sites.audit_lines()
    audit += sent
    qc += result.qc
    central, check = central_check(data, result, settings, result.summary["sites_in_study"])
    coefs = result.coefficients.copy()
    coefs["central_coef"] = coefs["feature"].map(central)  # per unit, as coef
    coefs["abs_difference"] = (coefs["coef"] - coefs["central_coef"]).abs()
    write_tsv(coefs, out["coefficients"])
    write_tsv(result.performance, out["performance"])
    write_tsv(result.sites, out["sites"])
    write_tsv(result.km, out["km"])
    plot_federated_km(result.km, out["km_png"], time_unit)
    out["audit"].write_text("".join(line + "\n" for line in audit))
    out["dp_effect"].write_text(json.dumps(json_safe(result.dp), indent=2, sort_keys=True))
    summary = {**result.summary, "transport": transport, "central_check": check,
               "messages": len(audit), "robust_icc": icc_table.to_dict(orient="records")
               if icc_table is not None and len(icc_table) else None}
    out["summary"].write_text(json.dumps(json_safe(summary), indent=2, sort_keys=True))
    write_qc(qc, out["qc"])
    log.info("federated %s study: %d site(s) in the study of %d, %d features, %d Newton rounds, %d messages; "
             "largest coefficient difference from the pooled central fit %.3g; %.1f s", settings.endpoint,
             len(result.summary["sites_in_study"]), len(data), len(chosen), result.summary["rounds"], len(audit),
             check["max_abs_coef_difference"], _time.perf_counter() - start)


def _common_icc_columns(data: Sequence[SiteData], names: Sequence[str]) -> list[str] | None:
    """Candidate features with test-retest values at every site that has retest pairs."""
    with_icc = [d for d in data if d.icc_data is not None and d.icc_columns is not None]
    if not with_icc:
        return None
    return [c for c in names if all(c in (d.icc_columns or []) for d in with_icc)]


def _flower_study(data: Sequence[SiteData], settings: FederatedSettings, features: Sequence[str],
                  workdir: Path) -> tuple[FederatedStudyResult, list[str]]:
    """The same study over Flower's Simulation Engine (``transport: simulation``)."""
    from radsurv.federated.flower import run_flower_study_simulation

    if settings.noise is not None:
        raise ValueError("federated.differential_privacy: noise is applied by in-process sites only; use "
                         "transport: inprocess with differential privacy")
    return run_flower_study_simulation(data, settings, list(features), workdir)
