"""``radsurv init DICOM_DIR [CLINICAL_TABLE]``: survey the data, build the commented config, write it.

:func:`build` combines the proposals of :mod:`radsurv.init.survey` (the DICOM folder) and
:mod:`radsurv.init.clinical` (the clinical table) into a complete config with a comment on
every choice (:func:`render_yaml`), validates it against the schema and returns it with
what it found and could not decide (:class:`InitResult`); :func:`main` is the command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from radsurv.ingest.clinical import load_clinical
from radsurv.init.clinical import ClinicalProposal, propose_clinical, read_table
from radsurv.init.survey import (
    MIN_PAIRS,
    RETEST_MAX_DAYS,
    DicomSurvey,
    propose_robustness,
    propose_roi,
    propose_site,
    survey_dicom,
)
from radsurv.schema import load_schema, problems

__all__ = ["InitResult", "build", "main", "render_yaml"]

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
#: Below this many patients with scans and outcome, the default nested CV is said to be fragile.
SMALL_COHORT = 30
_PLACEHOLDERS = "cohort.clinical_table, cohort.columns and modelling are placeholders"
_TO_FIT = "add cohort.clinical_table, cohort.columns and modelling to fit models"


# --------------------------------------------------------------------------- writing
def _scalar(v: Any) -> str:
    text = yaml.safe_dump(v, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("\n...").strip()


def render_yaml(config: Mapping[str, Any], comments: Mapping[str, str], header: Sequence[str]) -> str:
    """``config`` as YAML with ``comments`` (dotted key -> text) above their keys."""
    out = [f"# {h}" if h else "#" for h in header]

    def emit(node: Mapping[str, Any], path: str, indent: int) -> None:
        pad = " " * indent
        for key, value in node.items():
            dotted = f"{path}.{key}" if path else str(key)
            note = comments.get(dotted)
            if note:
                out.extend(f"{pad}# {line}" for line in note.splitlines())
            k = _scalar(key)
            if isinstance(value, Mapping) and value and not dotted.startswith("modelling.clinical_covariates."):
                out.append(f"{pad}{k}:")
                emit(value, dotted, indent + 2)
            else:
                out.append(f"{pad}{k}: {_scalar(value)}")
        if not path:
            out.append("")

    emit(config, "", 0)
    return "\n".join(out) + "\n"


@dataclass
class InitResult:
    """The written config and what the command found and decided."""

    config: dict[str, Any]
    text: str
    summary: list[str]
    undecided: list[str]
    problems: list[str]


# --------------------------------------------------------------------------- building the config
@dataclass
class _Draft:
    """The config being built, its comments (dotted key -> text) and what is reported, in order."""

    config: dict[str, Any]
    cohort: dict[str, Any]
    comments: dict[str, str] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)


def _survey_summary(s: DicomSurvey, gaps: list[int]) -> list[str]:
    """The terminal lines about the DICOM folder: scans, QC findings, ROI names, repeat scans, body parts."""
    summary = [f"DICOM folder: {s.n_scans} analysable scan(s) of {s.n_patients} patient(s); "
               f"modalities {dict(s.modalities) or 'none'}",
               f"discovery QC findings: {sum(s.qc_counts.values())} "
               f"({s.qc_counts.get('excluded', 0)} excluded, {s.qc_counts.get('warning', 0)} warnings; "
               f"{s.qc_patients} patient(s)); the workflow lists them in results/qc/qc.tsv",
               "ROI names (patients having each): "
               + (", ".join(f"{n} ({c})" for n, c in s.roi_patients.most_common()) or "none")]
    summary.append(f"repeat scans: {len(s.repeat_days)} patient(s) with more than one scan"
                   + (f"; days after the first scan: {', '.join(map(str, gaps))}" if gaps else ""))
    if s.body_parts:
        summary.append("body part examined (first scans): " + ", ".join(f"{k} ({v})" for k, v in s.body_parts.items()))
    return summary


def _unsure_repeats(s: DicomSurvey) -> list[str]:
    """Undecided: patients scanned again a little after the retest limit (follow-ups or repeat scans?)."""
    unsure = [d for d in (min(v) for v in s.repeat_days.values() if v) if RETEST_MAX_DAYS < d <= 2 * RETEST_MAX_DAYS]
    if not unsure:
        return []
    return [f"{len(unsure)} patient(s) were scanned again {min(unsure)}-{max(unsure)} days after the "
            f"first scan: follow-ups with retest_max_days {RETEST_MAX_DAYS}; raise it if those are "
            "repeat scans for test-retest"]


def _check_outcome(d: _Draft, clinical_table: Path, n_rows: int, clin: ClinicalProposal, s: DicomSurvey) -> None:
    """Read the table with the proposed columns as the workflow will: exclusions, and a small-cohort warning."""
    try:
        outcome, qc = load_clinical(clinical_table, clin.columns, s.patient_ids)
        n_ex = sum(q["status"] == "excluded" for q in qc)
        usable = outcome[outcome["patient_id"].isin(s.patient_ids)]
        events = int(usable["event"].sum())
        if len(usable) < SMALL_COHORT:
            d.undecided.append(
                f"only {len(usable)} patient(s) have scans and a usable outcome ({events} events, "
                f"{len(usable) - events} censored): 5-fold nested CV with 3 inner folds may find folds "
                "without an event; lower modelling.cv_folds / inner_folds, or extract features only first")
        d.summary.append(f"clinical table: {n_rows} row(s); {n_ex} patient(s) would be excluded "
                         f"(missing/negative time, event not 0/1, no outcome row), "
                         f"{len(qc) - n_ex} warning(s)")
    except (ValueError, KeyError) as err:
        d.undecided.append(f"the clinical table cannot be read with the proposed columns: {err}")


def _clinical_section(d: _Draft, clinical_table: Path | None, s: DicomSurvey) -> ClinicalProposal | None:
    """``cohort.clinical_table``, ``columns`` and ``time_unit`` from the table; placeholders without one."""
    if clinical_table is None:
        d.cohort["clinical_table"] = "PLACEHOLDER_no_clinical_table.csv"
        d.cohort["columns"] = {"id": "patient_id", "time": "time", "event": "event", "covariates": []}
        d.comments["cohort.clinical_table"] = (
            "PLACEHOLDER (no clinical table given): features only. Run `snakemake features` "
            "(or `snakemake results/features/features.tsv`); give a real table and columns before "
            "running the models")
        d.comments["cohort.columns"] = "PLACEHOLDER column names (no clinical table given)"
        d.undecided.append(f"no clinical table given: the config is for feature extraction only; {_PLACEHOLDERS}")
        return None
    clinical_table = Path(clinical_table).resolve()
    table = read_table(clinical_table)
    clin = propose_clinical(table, s.patient_ids)
    d.cohort["clinical_table"] = str(clinical_table)
    d.cohort["columns"] = clin.columns
    d.cohort["time_unit"] = clin.time_unit
    d.comments.update({
        "cohort.clinical_table": f"{len(table)} row(s); columns {list(table.columns)}",
        "cohort.columns": f"id: {clin.why['id']}; time: {clin.why['time']}; event: {clin.why['event']} "
                          "(1 = event, 0 = censored)",
        "cohort.time_unit": clin.why["time_unit"],
    })
    d.undecided += clin.undecided
    _check_outcome(d, clinical_table, len(table), clin, s)
    d.summary += [f"clinical column {n}" for n in clin.notes]
    return clin


def _robustness_section(d: _Draft, method: str, n_patients: int) -> dict[str, Any]:
    """``robustness``: the schema's ICC defaults, the proposed method, discretisation unless too few patients."""
    rob: dict[str, Any] = {"icc_form": "ICC(2,1)", "threshold": 0.75, "use_lower_bound": True,
                           "retest_max_days": RETEST_MAX_DAYS, "min_pairs": MIN_PAIRS, "method": method}
    if method == "perturbation":
        rob["perturbation"] = {"n": 10}
        d.comments["robustness.perturbation"] = "10 perturbed copies per scan, each one more extraction job"
    few = n_patients < MIN_PAIRS
    rob["discretisation"] = {"enabled": not few}
    d.comments["robustness.discretisation"] = (
        f"off: fewer than min_pairs ({MIN_PAIRS}) patients" if few else
        "reports which features keep the ranking across binnings (one extra job per patient)")
    return rob


def _modelling_section(d: _Draft, clin: ClinicalProposal | None) -> dict[str, Any]:
    """``modelling``: repeated nested CV of a Cox model with the proposed clinical covariates."""
    modelling: dict[str, Any] = {
        "design": "cv", "cv_folds": 5, "cv_repeats": 5, "inner_folds": 3, "learner": "cox",
        "clinical_covariates": clin.covariates if clin else {},
        "missing_covariates": "impute", "risk_cut": "median", "horizons": [],
        "volume_feature": "original_shape_MeshVolume", "bootstrap": 500,
    }
    d.comments.update({
        "modelling": "repeated nested CV; every data-dependent step is fit on training patients only"
                     + ("" if clin else " (PLACEHOLDER: no clinical table, no model can be fit)"),
        "modelling.horizons": "empty: the quartiles of the event times (in "
                              f"{clin.time_unit if clin else 'the time unit'})",
        "modelling.bootstrap": "resamples for the 95% CIs; fewer run faster",
    })
    if clin:
        d.comments["modelling.clinical_covariates"] = (
            "every plausible baseline covariate of the table: keep the few your study pre-specifies "
            "(a clinical model with many covariates overfits a small cohort); never an outcome")
        for name in clin.covariates:
            d.comments[f"modelling.clinical_covariates.{name}"] = clin.why.get(f"cov:{name}", "")
        if not clin.covariates:
            d.comments["modelling.clinical_covariates"] = "no covariate found: the clinical baselines are not fit"
    return modelling


def _header(undecided: list[str]) -> list[str]:
    """The file's top comment: what it is, how to run it, and what was not decided."""
    header = ["radsurv config written by `radsurv init` (a starting point: read every comment).",
              "It stands alone: nothing of config/config.yaml is used. Every key: config/README.md.",
              "Run: .venv/bin/snakemake --configfile THIS_FILE  (add -n for a dry run)"]
    if undecided:
        header += ["", "NOT DECIDED (check these):"] + [f"  - {u}" for u in undecided]
    header.append("")
    return header


def _features_only(d: _Draft, header: list[str], schema: dict[str, Any]) -> list[str]:
    """Without a clinical table: drop the placeholders if this schema does not need them; the header."""
    bare = {k: v for k, v in d.config.items() if k != "modelling"}
    bare["cohort"] = {k: v for k, v in d.cohort.items() if k not in ("clinical_table", "columns")}
    if problems(bare, schema):
        return header
    d.config = bare
    d.undecided[-1] = d.undecided[-1].replace(_PLACEHOLDERS, _TO_FIT)
    return [h.replace(_PLACEHOLDERS, _TO_FIT) for h in header]


def build(dicom_dir: Path, clinical_table: Path | None = None, workers: int = 1,
          seed: int = 42, schema_path: Path = SCHEMA) -> InitResult:
    """Survey ``dicom_dir`` (and ``clinical_table``) and build the commented config."""
    dicom_dir = Path(dicom_dir).resolve()
    s = survey_dicom(dicom_dir, RETEST_MAX_DAYS, workers)
    gaps = sorted(d for days in s.repeat_days.values() for d in days)
    d = _Draft({"seed": seed}, {"name": "new cohort (config written by radsurv init)", "dicom_dir": str(dicom_dir)},
               summary=_survey_summary(s, gaps))
    if s.n_scans == 0:
        d.undecided.append("no analysable scan found (image series + RTSTRUCT/SEG referencing it): check the folder "
                           "and the discovery QC table after a run")
    pattern, policy, roi_why, roi_todo = propose_roi(s)
    site, site_why, site_todo = propose_site(s)
    method, rob_why = propose_robustness(s)
    d.undecided += roi_todo + site_todo + _unsure_repeats(s)
    d.comments.update({
        "cohort.name": "shown in the report: give the study's name",
        "seed": "every random step (folds, bootstrap, perturbations) derives from this; any integer >= 0",
        "cohort.dicom_dir": f"{s.n_scans} scan(s) of {s.n_patients} patient(s) found here",
        "cohort.roi_pattern": "regular expression on ROI names (case ignored): " + "; ".join(roi_why[:-1]),
        "cohort.roi_policy": roi_why[-1],
        "site": f"{site_why} (config/sites/{site}.yaml)",
        "robustness.method": rob_why,
        "robustness.retest_max_days": "a second scan within this many days is a retest; later ones are "
                                      "follow-ups (days seen: " + (", ".join(map(str, gaps)) or "none") + ")",
    })
    clin = _clinical_section(d, clinical_table, s)
    d.cohort["roi_pattern"] = pattern
    d.cohort["roi_policy"] = policy
    d.config["cohort"] = d.cohort
    d.config["site"] = site
    d.config["extraction"] = {"filters": {"log_sigma_mm": [], "wavelet": False}}
    d.comments["extraction"] = (f"keys here override the site preset one by one; every other preprocessing and "
                                f"extraction setting is the preset's (config/sites/{site}.yaml)")
    d.comments["extraction.filters"] = ("filtered-image features (LoG, wavelet) off, as in the preset: they are not "
                                        "IBSI-standardised; e.g. log_sigma_mm: [1.0, 3.0] and wavelet: true add them")
    d.config["robustness"] = _robustness_section(d, method, s.n_patients)
    d.config["modelling"] = _modelling_section(d, clin)
    header = _header(d.undecided)
    schema = load_schema(schema_path)
    if clin is None:
        header = _features_only(d, header, schema)
    text = render_yaml(d.config, d.comments, header)
    found = problems(yaml.safe_load(text), schema)
    return InitResult(yaml.safe_load(text), text, d.summary, d.undecided, found)


def main(argv: Sequence[str] | None = None) -> int:
    """``radsurv init DICOM_DIR [CLINICAL_TABLE] [-o my_cohort.yaml]``."""
    import argparse
    import logging

    ap = argparse.ArgumentParser(
        prog="radsurv init",
        description="Write a starting config for a new cohort from its DICOM folder (and clinical table).")
    ap.add_argument("dicom_dir", type=Path, help="the cohort's DICOM folder (any layout)")
    ap.add_argument("clinical_table", type=Path, nargs="?", help="CSV/TSV with one row per patient (optional)")
    ap.add_argument("-o", "--output", type=Path, default=Path("my_cohort.yaml"), help="config to write")
    ap.add_argument("--workers", type=int, default=1, help="processes reading DICOM headers")
    ap.add_argument("--seed", type=int, default=42, help="the config's seed")
    ap.add_argument("--force", action="store_true", help="overwrite an existing output file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # discovery's per-file log lines would name files
    if not args.dicom_dir.is_dir():
        ap.error(f"the DICOM folder {args.dicom_dir} does not exist")
    if args.clinical_table is not None and not args.clinical_table.is_file():
        ap.error(f"the clinical table {args.clinical_table} does not exist")
    if args.output.exists() and not args.force:
        ap.error(f"{args.output} exists; use --force to overwrite it")
    res = build(args.dicom_dir, args.clinical_table, workers=args.workers, seed=args.seed)
    for line in res.summary:
        print(line)
    if res.problems:
        print("The proposed config does not validate (a radsurv bug, please report):")
        for p in res.problems:
            print(f"  - {p}")
        return 1
    args.output.write_text(res.text, encoding="utf-8")
    _print_proposal(res, args.output, args.clinical_table is not None)
    return 0


def _print_proposal(res: InitResult, output: Path, with_table: bool) -> None:
    """The terminal lines after writing: the main choices, what was not decided, the next command."""
    print(f"\nWrote {output} (valid against the config schema). Proposed:")
    co = res.config["cohort"]
    print(f"  roi_pattern {co['roi_pattern']!r}, roi_policy {co['roi_policy']}, site {res.config['site']}, "
          f"robustness {res.config['robustness']['method']}")
    if "columns" in co and with_table:
        cols = co["columns"]
        print(f"  id '{cols['id']}', time '{cols['time']}' ({co['time_unit']}), event '{cols['event']}', "
              f"covariates {res.config['modelling']['clinical_covariates']}")
    if res.undecided:
        print("Could not decide (also at the top of the file):")
        for u in res.undecided:
            print(f"  - {u}")
    target = "" if with_table else " features"
    print(f"Next: .venv/bin/snakemake{target} --configfile {output} -n   (dry run), then without -n")
