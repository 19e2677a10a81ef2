"""``radsurv init DICOM_DIR [CLINICAL_TABLE]``: a starting config for a new cohort.

The command looks at the data and writes a complete, standalone config (nothing
of ``config/config.yaml`` is needed underneath it), with a comment on every
choice and a list of what it could not decide:

* the DICOM folder, through the workflow's own discovery (:func:`radsurv.ingest.discovery.discover`):
  modalities, ROI names with the number of patients having each, repeat scans
  (days between a patient's scans) and the discovery QC findings; from these
  ``cohort.roi_pattern``, ``cohort.roi_policy``, ``site`` and the robustness method;
* the clinical table, if given: the id column (the one whose values match the
  DICOM PatientIDs), time and event columns, the time unit, and the covariates
  with their types (numeric, ordinal with levels in stage order, categorical)
  and missing-value codes.

The written config is validated against ``workflow/schemas/config.schema.yaml``
(:func:`radsurv.config.problems`) before it is written. Only counts, ROI names,
column names and pseudonymised ids reach the terminal: no UID, no file name, no
DICOM header value other than the cohort's PatientIDs (which are not printed either).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from radsurv.config import load_schema, problems
from radsurv.ingest.clinical import DEFAULT_MISSING, CovariateSpec, load_clinical, norm_token

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
#: Defaults of the schema that the proposals compare against.
RETEST_MAX_DAYS, MIN_PAIRS = 30, 5
#: Below this many patients with scans and outcome, the default nested CV is said to be fragile.
SMALL_COHORT = 30
#: Values meaning "not recorded" beyond the ones radsurv always treats as missing.
MISSING_CODES = {"x", "tx", "nx", "mx", "unk", "missing", "not reported", "nr", "not available", "n.a."}

_TUMOUR = re.compile(r"gtv|tumou?r|lesion|primary|mass|nodule|itv|igtv", re.I)
_NODE = re.compile(r"gtv[-_ .]?n(\d|$|[-_ .])|node|nodal|\bln\b|lymph", re.I)
_SITE_HINTS = {
    "hn_ct": re.compile(r"parotid|submandib|mandible|larynx|laryn|pharyn|oral|cochlea|brainstem|"
                        r"constrictor|tongue|head|neck|hn\b|glott", re.I),
    "lung_ct": re.compile(r"lung|heart|oesophag|esophag|trachea|bronch|chest|thorax|pulm", re.I),
}


# --------------------------------------------------------------------------- the DICOM folder
@dataclass
class DicomSurvey:
    """What discovery and the contour headers say about a DICOM folder."""

    n_patients: int
    n_scans: int
    modalities: Counter[str]
    #: ROI name (as spelled most often) -> number of patients having it
    roi_patients: Counter[str]
    #: per scan: the ROI names of its contour object
    scan_rois: dict[str, list[str]]
    body_parts: Counter[str]
    #: per patient with >1 scan: days of each later scan after the first
    repeat_days: dict[str, list[int]]
    qc_counts: Counter[str]
    qc_patients: int
    patient_ids: list[str]
    #: scan id -> its patient's id
    scan_patient: dict[str, str] = field(default_factory=dict)


def _contour_path(scan_file: str, root: Path) -> Path:
    p = Path(scan_file)
    return p if p.is_absolute() else root / p


def roi_names(path: Path, kind: str) -> list[str]:
    """ROI names of an RTSTRUCT (ROIName) or DICOM-SEG (SegmentLabel) file; [] if unreadable."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                             specific_tags=["StructureSetROISequence", "SegmentSequence"])
    except Exception:  # noqa: BLE001 - an unreadable contour is a discovery/conversion QC matter
        return []
    if kind == "SEG":
        return [str(s.get("SegmentLabel", "")).strip() for s in ds.get("SegmentSequence", []) or []]
    return [str(r.get("ROIName", "")).strip() for r in ds.get("StructureSetROISequence", []) or []]


def _body_part(path: str) -> str:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["BodyPartExamined"])
    except Exception:  # noqa: BLE001
        return ""
    return str(ds.get("BodyPartExamined", "") or "").strip().upper()


def survey_dicom(dicom_dir: Path, retest_max_days: int = RETEST_MAX_DAYS, workers: int = 1) -> DicomSurvey:
    """Discover the scans of ``dicom_dir`` and summarise them (see :class:`DicomSurvey`)."""
    from radsurv.ingest.discovery import discover

    root = Path(dicom_dir)
    disc = discover(root, retest_max_days=retest_max_days, workers=workers)
    spelling: dict[str, Counter[str]] = defaultdict(Counter)
    per_patient: dict[str, set[str]] = defaultdict(set)
    scan_rois: dict[str, list[str]] = {}
    body: Counter[str] = Counter()
    days: dict[str, list[int]] = defaultdict(list)
    for sc in disc.scans:
        names = roi_names(_contour_path(sc.contour_file, root), sc.contour_type)
        scan_rois[sc.scan_id] = names
        for n in names:
            spelling[n.lower()][n] += 1
            per_patient[n.lower()].add(sc.patient_id)
        if sc.session == 1 and sc.image_files:
            body[_body_part(sc.image_files[0]) or "(not recorded)"] += 1
        if sc.session > 1:
            days[sc.patient_id].append(int(sc.days_from_first))
    roi_patients = Counter({spelling[k].most_common(1)[0][0]: len(v) for k, v in per_patient.items()})
    qc_counts = Counter(q["status"] for q in disc.qc)
    return DicomSurvey(
        n_patients=len({sc.patient_id for sc in disc.scans}),
        n_scans=len(disc.scans),
        modalities=Counter(sc.modality for sc in disc.scans),
        roi_patients=roi_patients,
        scan_rois=scan_rois,
        body_parts=body,
        repeat_days=dict(days),
        qc_counts=qc_counts,
        qc_patients=len({q["patient_id"] for q in disc.qc if q["patient_id"]}),
        patient_ids=sorted({sc.patient_id for sc in disc.scans}),
        scan_patient={sc.scan_id: sc.patient_id for sc in disc.scans},
    )


def propose_roi(s: DicomSurvey) -> tuple[str, str, list[str], list[str]]:
    """``(roi_pattern, roi_policy, explanation, undecided)``.

    Tumour-like names (GTV, tumour, lesion, ...; nodal GTVs excluded) are taken in
    order of how many patients have them, as long as each adds patients not yet
    covered (so ``GTV-2`` beside ``GTV-1`` is not added, while a ``Tumour`` used
    instead of ``GTV-1`` is). The pattern is ``^GTV`` when that matches exactly the
    chosen names, else their exact names.
    """
    why: list[str] = []
    todo: list[str] = []
    tumour = [n for n, _ in s.roi_patients.most_common() if _TUMOUR.search(n) and not _NODE.search(n)]
    by_name: dict[str, set[str]] = defaultdict(set)
    for scan_id, names in s.scan_rois.items():
        pid = s.scan_patient.get(scan_id, scan_id)
        for n in names:
            by_name[n.lower()].add(pid)
    chosen: list[str] = []
    covered: set[str] = set()
    for n in tumour:
        new = by_name[n.lower()] - covered
        if new:
            chosen.append(n)
            covered |= new
    if not chosen:
        others = [n for n, _ in s.roi_patients.most_common()
                  if not re.search(r"body|external|skin|couch|lung|heart|cord|bone|oesoph|esoph|"
                                   r"brain|eye|lens|parotid|kidney|liver", n, re.I)]
        if others:
            chosen = [others[0]]
            covered = by_name[others[0].lower()]
            todo.append(f"no ROI name looks like a tumour (GTV, tumour, lesion); proposed the most frequent "
                        f"other ROI '{others[0]}': check cohort.roi_pattern")
        else:
            todo.append("no ROI name looks like a tumour: set cohort.roi_pattern by hand")
            return "^GTV", "error", ["placeholder ^GTV: no tumour ROI found"], todo
    all_names = list(s.roi_patients)
    if (all(n.lower().startswith("gtv") for n in chosen)
            and {n.lower() for n in all_names if n.lower().startswith("gtv")} == {n.lower() for n in chosen}):
        pattern = "^GTV"
    else:
        pattern = "^(" + "|".join(re.escape(n).replace("\\-", "-") for n in chosen) + ")$"
    rx = re.compile(pattern, re.I)
    why.append(f"tumour ROI(s) {', '.join(repr(n) for n in chosen)} cover {len(covered)} of "
               f"{s.n_patients} patients with scans (matching ignores case)")
    left = s.n_patients - len(covered)
    if left:
        todo.append(f"{left} patient(s) have no ROI matched by {pattern}: they will be excluded at conversion")
    for n in chosen[1:]:
        only = len(by_name[n.lower()] - by_name[chosen[0].lower()])
        todo.append(f"ROI '{n}' is used instead of '{chosen[0]}' by {only} "
                    f"patient(s) and is included in roi_pattern; remove it if it is not the same structure")
    skipped = [n for n in tumour if n not in chosen]
    if skipped:
        why.append(f"not included: {', '.join(repr(n) for n in skipped)} (only in patients already covered "
                   f"or nodal)")
    multi = sum(1 for names in s.scan_rois.values() if sum(bool(rx.search(n)) for n in names) > 1)
    if multi:
        policy = "error"
        why.append(f"{multi} scan(s) have several ROIs matching: roi_policy error excludes and lists them "
                   "rather than guess")
        todo.append(f"{multi} scan(s) have several matching ROIs: choose roi_policy largest or union "
                    "if that is what the study means")
    else:
        policy = "first"
        why.append("every scan has at most one matching ROI, so roi_policy first never has to choose")
    return pattern, policy, why, todo


def propose_site(s: DicomSurvey) -> tuple[str, str, list[str]]:
    """``(site, explanation, undecided)`` from the modality, ROI names and BodyPartExamined."""
    modality = s.modalities.most_common(1)[0][0] if s.modalities else "CT"
    todo: list[str] = []
    if len(s.modalities) > 1:
        todo.append(f"several image modalities ({dict(s.modalities)}): one site preset applies to all; "
                    "split the cohort by modality if needed")
    if modality == "MR":
        return "brain_mr", "MR images: the brain MR preset (N4, z-score, 32 bins); change for other MR sites", todo
    if modality in ("PT", "PET"):
        return "fdg_pet", "PET images: the FDG PET preset (SUV, 0.25 SUV bins)", todo
    if modality != "CT":
        todo.append(f"modality {modality}: no shipped preset; lung_ct proposed as a placeholder")
        return "lung_ct", f"no preset for {modality}", todo
    words = " ".join(list(s.roi_patients) + list(s.body_parts))
    hits = {site: len(rx.findall(words)) for site, rx in _SITE_HINTS.items()}
    if hits["hn_ct"] > hits["lung_ct"]:
        return "hn_ct", "CT with head-and-neck ROI names / body part: head-and-neck CT preset", todo
    if hits["lung_ct"]:
        return "lung_ct", "CT with thoracic ROI names / body part (lung, heart, chest): lung CT preset", todo
    todo.append("CT without ROI names or body part that tell the tumour site: lung_ct proposed; use hn_ct "
                "or your own preset (config/README.md 'Adding a tumour site') if it is another site")
    return "lung_ct", "CT; nothing tells the site (no organ ROI, no BodyPartExamined): lung CT preset", todo


def propose_robustness(s: DicomSurvey, retest_max_days: int = RETEST_MAX_DAYS,
                       min_pairs: int = MIN_PAIRS) -> tuple[str, str]:
    """``(method, explanation)``: test-retest with at least ``min_pairs`` retest patients."""
    pairs = sum(1 for d in s.repeat_days.values() if d and min(d) <= retest_max_days)
    later = sum(1 for d in s.repeat_days.values() if d and min(d) > retest_max_days)
    if s.n_patients < min_pairs:
        return "test-retest", (f"only {s.n_patients} patient(s) (< min_pairs {min_pairs}): no robustness "
                               "analysis is possible, every feature is kept and the report says so; "
                               "test-retest costs no extra job (perturbation would add 10 per scan)")
    if pairs >= min_pairs:
        return "test-retest", (f"{pairs} patients have a second scan within {retest_max_days} days "
                               f"(>= min_pairs {min_pairs}): test-retest ICC")
    return "perturbation", (f"only {pairs} patient(s) with a second scan within {retest_max_days} days "
                            f"(< min_pairs {min_pairs}; {later} with a later follow-up scan): "
                            "perturbation ICC (Zwanenburg 2019) on each patient's first scan")


# --------------------------------------------------------------------------- the clinical table
@dataclass
class ClinicalProposal:
    """Column mapping and covariates proposed from a clinical table."""

    columns: dict[str, Any]
    time_unit: str
    covariates: dict[str, dict[str, Any]]
    why: dict[str, str] = field(default_factory=dict)
    undecided: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_table(path: Path) -> pd.DataFrame:
    """The clinical table as text cells (CSV, or TSV for .tsv/.tab/.txt)."""
    sep = "\t" if Path(path).suffix.lower() in {".tsv", ".tab", ".txt"} else ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def _present(values: pd.Series) -> list[str]:
    return [v.strip() for v in values if norm_token(v) not in DEFAULT_MISSING]


def _numeric_share(values: list[str]) -> float:
    if not values:
        return 0.0
    ok = 0
    for v in values:
        try:
            float(v)
            ok += 1
        except ValueError:
            pass
    return ok / len(values)


_EVENT_WORDS = {"0", "1", "true", "false", "yes", "no", "dead", "alive", "deceased", "event", "censored"}
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5}


def stage_key(value: str) -> tuple[float, str] | None:
    """Sort key of a stage-like value (``IIIa`` -> (3, 'a'), ``T2`` -> (2, ''), ``Tis`` -> (0.5, '')),
    or None when it is not one."""
    s = norm_token(value).replace("stage", "").strip()
    s = re.sub(r"^[cpy]?[tnm](?=[0-4]|is\b|i)", "", s).strip()
    if s in ("is", "tis"):
        return 0.5, ""
    m = re.fullmatch(r"(iv|iii|ii|i|v|[0-9])\s*([abc]?)(\d?)", s)
    if not m:
        return None
    num = _ROMAN.get(m.group(1))
    return (float(num if num is not None else int(m.group(1))), m.group(2) + m.group(3))


def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", name.lower()) if t}


def _unit_from_name(name: str) -> str | None:
    t = _tokens(name) | {name.lower()}
    if t & {"days", "day", "d"} or re.search(r"days?$", name.lower()):
        return "days"
    if t & {"months", "month", "mo", "mths", "m"} or re.search(r"months?$", name.lower()):
        return "months"
    if t & {"years", "year", "yrs", "yr", "y"} or re.search(r"years?$", name.lower()):
        return "years"
    return None


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.lower(), b.lower()):
        if x != y:
            break
        n += 1
    return n


def propose_clinical(table: pd.DataFrame, patient_ids: Sequence[str]) -> ClinicalProposal:
    """Propose the id, time and event columns, the time unit and the covariates of ``table``."""
    cols = list(table.columns)
    undecided: list[str] = []
    why: dict[str, str] = {}
    ids = set(patient_ids)
    # -- id: the column whose values best match the DICOM PatientIDs
    match = {c: len(ids & {v.strip() for v in table[c]}) for c in cols}
    id_col = max(cols, key=lambda c: (match[c], bool(re.search(r"id|patient", c, re.I)), -cols.index(c)))
    if match[id_col] == 0:
        named = [c for c in cols if re.search(r"id\b|patient|subject|case", c, re.I)]
        id_col = named[0] if named else cols[0]
        undecided.append(f"no column holds the DICOM PatientIDs: '{id_col}' proposed as the id column by its "
                         "name; the ids must equal the DICOM PatientID")
        why["id"] = "by its name (no column matches the DICOM PatientIDs)"
    else:
        why["id"] = f"{match[id_col]} of {len(ids)} DICOM PatientIDs found in this column"
        if match[id_col] < len(ids):
            undecided.append(f"{len(ids) - match[id_col]} patient(s) with scans have no row in the clinical "
                             "table (they are listed in the QC table when the workflow runs)")
    present = {c: _present(table[c]) for c in cols}
    # -- event: binary spellings, named like an event / status
    def event_score(c: str) -> int:
        vals = present[c]
        toks = [norm_token(v) for v in vals]
        share = sum(t in _EVENT_WORDS for t in toks) / len(toks) if toks else 0
        if c == id_col or share < 0.8 or len(set(toks)) < 2:
            return 0
        name = c.lower()
        return 1 + 3 * bool(re.search(r"event|status|dead|death|vital|censor|os|surviv", name))
    ev_scores = {c: event_score(c) for c in cols}
    # -- time: mostly numbers, named like a survival time
    def time_score(c: str) -> int:
        if c == id_col or ev_scores[c] or _numeric_share(present[c]) < 0.8 or len(set(present[c])) < 3:
            return 0
        t = _tokens(c)
        score = 1
        score += 3 * bool(t & {"os", "overall", "survival", "surv"} or "surviv" in c.lower())
        score += 2 * bool(t & {"time", "months", "month", "days", "day", "years", "fu", "follow", "followup"})
        score -= 3 * bool(t & {"pfs", "dfs", "rfs", "progression", "recurrence", "age"})
        return max(score, 0) if score > 1 else 0
    t_scores = {c: time_score(c) for c in cols}
    time_col = max(cols, key=lambda c: (t_scores[c], -cols.index(c)))
    if t_scores[time_col] == 0:
        undecided.append("no column looks like a survival time (named time/survival/os/months/days with "
                         f"numbers): set cohort.columns.time; columns: {cols}")
        time_col = next((c for c in cols if c != id_col), cols[0])
        why["time"] = "placeholder: no survival-time column found"
    else:
        ties = [c for c in cols if t_scores[c] == t_scores[time_col] and c != time_col]
        why["time"] = "numbers, named like a survival time"
        if ties:
            undecided.append(f"time column: '{time_col}' chosen, but {ties} look the same: check")
    event_col = max(cols, key=lambda c: (ev_scores[c], _common_prefix(c, time_col), -cols.index(c)))
    if ev_scores[event_col] == 0:
        undecided.append("no column looks like an event indicator (0/1, dead/alive): set cohort.columns.event")
        event_col = next((c for c in cols if c not in (id_col, time_col)), cols[-1])
        why["event"] = "placeholder: no event column found"
    else:
        coding = sorted({norm_token(v) for v in present[event_col]})
        why["event"] = f"values {coding}, named like an event"
        if "censor" in event_col.lower():
            undecided.append(f"'{event_col}' is named like a censoring flag: radsurv needs 1 = event "
                             "(death), 0 = censored; recode the column if it is the other way round")
        bad = [v for v in coding if v not in _EVENT_WORDS]
        if bad:
            undecided.append(f"event column '{event_col}' has values {bad} that are not 0/1 or dead/alive: "
                             "those patients are excluded (QC table)")
    # -- time unit
    unit = _unit_from_name(time_col)
    if unit:
        why["time_unit"] = f"from the column name '{time_col}'"
    else:
        nums = [float(v) for v in present[time_col] if _numeric_share([v]) == 1.0]
        top = max(nums) if nums else 0.0
        unit = "days" if top > 400 else ("years" if top <= 25 else "months")
        why["time_unit"] = f"from the values (largest {top:g})"
        undecided.append(f"time unit '{unit}' guessed from the values of '{time_col}' (largest {top:g}): check")
    # -- covariates
    covariates: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    used = {id_col, time_col, event_col}
    for c in cols:
        if c in used:
            continue
        vals = present[c]
        toks = {norm_token(v) for v in vals}
        lname = c.lower()
        if not vals or len(toks) < 2:
            notes.append(f"'{c}': fewer than two distinct values; not a covariate")
            continue
        outcome_name = re.search(r"event|status|dead|death|vital|censor", lname)
        if t_scores[c] > 1 or (ev_scores[c] > 1 and outcome_name):
            notes.append(f"'{c}': looks like another outcome (time or event); not a covariate")
            continue
        if len(vals) < 0.5 * len(table):
            notes.append(f"'{c}': recorded for only {len(vals)} of {len(table)} patients; not proposed")
            continue
        if re.search(r"local|regional|distant|metasta|relapse|2nd|second|death|died|\bfu\b|follow", lname):
            notes.append(f"'{c}': named like an outcome or follow-up (recurrence, metastasis, death); not a "
                         "covariate: an outcome used as a predictor leaks the answer")
            continue
        if re.search(r"date|pfs|dfs|rfs|recurr|progress|cause", lname) or all(
                re.fullmatch(r"\d{4}-\d{2}-\d{2}.*|\d{1,2}/\d{1,2}/\d{2,4}", v) for v in vals):
            notes.append(f"'{c}': a date or another outcome; not a covariate (a date can define a temporal "
                         "validation: modelling.split_by)")
            continue
        if len(toks) == len(vals) and _numeric_share(vals) < 0.9:
            notes.append(f"'{c}': a different text in every row (an identifier?); not a covariate")
            continue
        stage_like = bool(re.search(r"stage|tnm|grade|ecog|(^|[._ ])[tnm]([._ ]|$)", lname))
        keys = {v: stage_key(v) for v in vals}
        parsed = [v for v in vals if keys[v] is not None]
        roman = any(re.search(r"[iv]", norm_token(v)) and keys[v] is not None for v in vals)
        if (stage_like or roman) and len(parsed) >= 0.8 * len(vals):
            spell: dict[str, Counter[str]] = defaultdict(Counter)
            for v in parsed:
                spell[norm_token(v)][v] += 1
            levels = sorted(spell, key=lambda t: (stage_key(t), t))
            lev = [spell[t].most_common(1)[0][0] for t in levels]
            lev_out: list[Any] = [int(x) if re.fullmatch(r"\d+", x) else x for x in lev]
            miss = sorted({norm_token(v) for v in vals if keys[v] is None})
            spec: dict[str, Any] = {"type": "ordinal", "levels": lev_out}
            if miss:
                spec["missing_values"] = miss
                undecided.append(f"'{c}': value(s) {miss} taken as 'not recorded'; if one is a real level, "
                                 "add it to levels in order")
            why[f"cov:{c}"] = "stage-like: ordinal, levels in stage order"
        elif _numeric_share(vals) >= 0.9:
            miss = sorted({norm_token(v) for v in vals if _numeric_share([v]) < 1})
            spec = {"type": "numeric"}
            if miss:
                spec["missing_values"] = miss
            why[f"cov:{c}"] = f"numbers ({len(toks)} distinct values)"
        elif len(toks) <= 12:
            miss = sorted(t for t in toks if t in MISSING_CODES)
            spec = {"type": "categorical"}
            if miss:
                spec["missing_values"] = miss
            levels_seen = sorted(toks - set(miss))
            why[f"cov:{c}"] = f"categorical, levels seen (case ignored): {levels_seen}"
            raw = {v for v in vals}
            if len(raw) > len(toks):
                undecided.append(f"'{c}': some values differ only in case or spaces "
                                 f"({len(raw)} spellings of {len(toks)} values); radsurv matches them as one")
        else:
            notes.append(f"'{c}': {len(toks)} different text values; not proposed as a covariate")
            continue
        try:
            CovariateSpec.from_config(c, spec).parse(list(table[c]))
        except ValueError as err:
            notes.append(f"'{c}': not proposed ({err})")
            continue
        covariates[c] = spec
    columns = {"id": id_col, "time": time_col, "event": event_col, "covariates": list(covariates)}
    return ClinicalProposal(columns, unit, covariates, why, undecided, notes)


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


def build(dicom_dir: Path, clinical_table: Path | None = None, workers: int = 1,
          seed: int = 42, schema_path: Path = SCHEMA) -> InitResult:
    """Survey ``dicom_dir`` (and ``clinical_table``) and build the commented config."""
    dicom_dir = Path(dicom_dir).resolve()
    s = survey_dicom(dicom_dir, RETEST_MAX_DAYS, workers)
    summary = [f"DICOM folder: {s.n_scans} analysable scan(s) of {s.n_patients} patient(s); "
               f"modalities {dict(s.modalities) or 'none'}",
               f"discovery QC findings: {sum(s.qc_counts.values())} "
               f"({s.qc_counts.get('excluded', 0)} excluded, {s.qc_counts.get('warning', 0)} warnings; "
               f"{s.qc_patients} patient(s)); the workflow lists them in results/qc/qc.tsv",
               "ROI names (patients having each): "
               + (", ".join(f"{n} ({c})" for n, c in s.roi_patients.most_common()) or "none")]
    gaps = sorted(d for days in s.repeat_days.values() for d in days)
    summary.append(f"repeat scans: {len(s.repeat_days)} patient(s) with more than one scan"
                   + (f"; days after the first scan: {', '.join(map(str, gaps))}" if gaps else ""))
    if s.body_parts:
        summary.append("body part examined (first scans): " + ", ".join(f"{k} ({v})" for k, v in s.body_parts.items()))
    undecided: list[str] = []
    if s.n_scans == 0:
        undecided.append("no analysable scan found (image series + RTSTRUCT/SEG referencing it): check the folder "
                         "and the discovery QC table after a run")
    pattern, policy, roi_why, roi_todo = propose_roi(s)
    site, site_why, site_todo = propose_site(s)
    method, rob_why = propose_robustness(s)
    undecided += roi_todo + site_todo
    unsure = [d for d in (min(v) for v in s.repeat_days.values() if v) if RETEST_MAX_DAYS < d <= 2 * RETEST_MAX_DAYS]
    if unsure:
        undecided.append(f"{len(unsure)} patient(s) were scanned again {min(unsure)}-{max(unsure)} days after the "
                         f"first scan: follow-ups with retest_max_days {RETEST_MAX_DAYS}; raise it if those are "
                         "repeat scans for test-retest")
    c: dict[str, Any] = {"seed": seed}
    cohort: dict[str, Any] = {"name": "new cohort (config written by radsurv init)", "dicom_dir": str(dicom_dir)}
    comments: dict[str, str] = {
        "cohort.name": "shown in the report: give the study's name",
        "seed": "every random step (folds, bootstrap, perturbations) derives from this; any integer >= 0",
        "cohort.dicom_dir": f"{s.n_scans} scan(s) of {s.n_patients} patient(s) found here",
        "cohort.roi_pattern": "regular expression on ROI names (case ignored): " + "; ".join(roi_why[:-1]),
        "cohort.roi_policy": roi_why[-1],
        "site": f"{site_why} (config/sites/{site}.yaml)",
        "robustness.method": rob_why,
        "robustness.retest_max_days": "a second scan within this many days is a retest; later ones are "
                                      "follow-ups (days seen: " + (", ".join(map(str, gaps)) or "none") + ")",
    }
    clin: ClinicalProposal | None = None
    if clinical_table is not None:
        clinical_table = Path(clinical_table).resolve()
        table = read_table(clinical_table)
        clin = propose_clinical(table, s.patient_ids)
        cohort["clinical_table"] = str(clinical_table)
        cohort["columns"] = clin.columns
        cohort["time_unit"] = clin.time_unit
        comments.update({
            "cohort.clinical_table": f"{len(table)} row(s); columns {list(table.columns)}",
            "cohort.columns": f"id: {clin.why['id']}; time: {clin.why['time']}; event: {clin.why['event']} "
                              "(1 = event, 0 = censored)",
            "cohort.time_unit": clin.why["time_unit"],
        })
        undecided += clin.undecided
        try:
            outcome, qc = load_clinical(clinical_table, clin.columns, s.patient_ids)
            n_ex = sum(q["status"] == "excluded" for q in qc)
            usable = outcome[outcome["patient_id"].isin(s.patient_ids)]
            events = int(usable["event"].sum())
            if len(usable) < SMALL_COHORT:
                undecided.append(
                    f"only {len(usable)} patient(s) have scans and a usable outcome ({events} events, "
                    f"{len(usable) - events} censored): 5-fold nested CV with 3 inner folds may find folds "
                    "without an event; lower modelling.cv_folds / inner_folds, or extract features only first")
            summary.append(f"clinical table: {len(table)} row(s); {n_ex} patient(s) would be excluded "
                           f"(missing/negative time, event not 0/1, no outcome row), "
                           f"{len(qc) - n_ex} warning(s)")
        except (ValueError, KeyError) as err:
            undecided.append(f"the clinical table cannot be read with the proposed columns: {err}")
        summary += [f"clinical column {n}" for n in clin.notes]
    else:
        cohort["clinical_table"] = "PLACEHOLDER_no_clinical_table.csv"
        cohort["columns"] = {"id": "patient_id", "time": "time", "event": "event", "covariates": []}
        comments["cohort.clinical_table"] = (
            "PLACEHOLDER (no clinical table given): features only. Run `snakemake features` "
            "(or `snakemake results/features/features.tsv`); give a real table and columns before "
            "running the models")
        comments["cohort.columns"] = "PLACEHOLDER column names (no clinical table given)"
        undecided.append("no clinical table given: the config is for feature extraction only; cohort.clinical_table, "
                         "cohort.columns and modelling are placeholders")
    cohort["roi_pattern"] = pattern
    cohort["roi_policy"] = policy
    c["cohort"] = cohort
    c["site"] = site
    rob: dict[str, Any] = {"icc_form": "ICC(2,1)", "threshold": 0.75, "use_lower_bound": True,
                           "retest_max_days": RETEST_MAX_DAYS, "min_pairs": MIN_PAIRS, "method": method}
    if method == "perturbation":
        rob["perturbation"] = {"n": 10}
        comments["robustness.perturbation"] = "10 perturbed copies per scan, each one more extraction job"
    few = s.n_patients < MIN_PAIRS
    rob["discretisation"] = {"enabled": not few}
    comments["robustness.discretisation"] = (
        f"off: fewer than min_pairs ({MIN_PAIRS}) patients" if few else
        "reports which features keep the ranking across binnings (one extra job per patient)")
    c["extraction"] = {"filters": {"log_sigma_mm": [], "wavelet": False}}
    comments["extraction"] = (f"keys here override the site preset one by one; every other preprocessing and "
                              f"extraction setting is the preset's (config/sites/{site}.yaml)")
    comments["extraction.filters"] = ("filtered-image features (LoG, wavelet) off, as in the preset: they are not "
                                      "IBSI-standardised; e.g. log_sigma_mm: [1.0, 3.0] and wavelet: true add them")
    c["robustness"] = rob
    modelling: dict[str, Any] = {
        "design": "cv", "cv_folds": 5, "cv_repeats": 5, "inner_folds": 3, "learner": "cox",
        "clinical_covariates": clin.covariates if clin else {},
        "missing_covariates": "impute", "risk_cut": "median", "horizons": [],
        "volume_feature": "original_shape_MeshVolume", "bootstrap": 500,
    }
    c["modelling"] = modelling
    comments.update({
        "modelling": "repeated nested CV; every data-dependent step is fit on training patients only"
                     + ("" if clin else " (PLACEHOLDER: no clinical table, no model can be fit)"),
        "modelling.horizons": "empty: the quartiles of the event times (in "
                              f"{clin.time_unit if clin else 'the time unit'})",
        "modelling.bootstrap": "resamples for the 95% CIs; fewer run faster",
    })
    if clin:
        comments["modelling.clinical_covariates"] = (
            "every plausible baseline covariate of the table: keep the few your study pre-specifies "
            "(a clinical model with many covariates overfits a small cohort); never an outcome")
        for name in clin.covariates:
            comments[f"modelling.clinical_covariates.{name}"] = clin.why.get(f"cov:{name}", "")
        if not clin.covariates:
            comments["modelling.clinical_covariates"] = "no covariate found: the clinical baselines are not fit"
    header = ["radsurv config written by `radsurv init` (a starting point: read every comment).",
              "It stands alone: nothing of config/config.yaml is used. Every key: config/README.md.",
              "Run: .venv/bin/snakemake --configfile THIS_FILE  (add -n for a dry run)"]
    if undecided:
        header += ["", "NOT DECIDED (check these):"] + [f"  - {u}" for u in undecided]
    header.append("")
    schema = load_schema(schema_path)
    if clin is None:  # features only: drop the placeholders if this schema does not need them
        bare = {k: v for k, v in c.items() if k != "modelling"}
        bare["cohort"] = {k: v for k, v in cohort.items() if k not in ("clinical_table", "columns")}
        if not problems(bare, schema):
            c = bare
            header = [h.replace("cohort.clinical_table, cohort.columns and modelling are placeholders",
                                "add cohort.clinical_table, cohort.columns and modelling to fit models")
                      for h in header]
            undecided[-1] = undecided[-1].replace("cohort.clinical_table, cohort.columns and modelling are "
                                                  "placeholders", "add cohort.clinical_table, cohort.columns "
                                                  "and modelling to fit models")
    text = render_yaml(c, comments, header)
    found = problems(yaml.safe_load(text), schema)
    return InitResult(yaml.safe_load(text), text, summary, undecided, found)


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
    print(f"\nWrote {args.output} (valid against the config schema). Proposed:")
    co = res.config["cohort"]
    print(f"  roi_pattern {co['roi_pattern']!r}, roi_policy {co['roi_policy']}, site {res.config['site']}, "
          f"robustness {res.config['robustness']['method']}")
    if "columns" in co and args.clinical_table is not None:
        cols = co["columns"]
        print(f"  id '{cols['id']}', time '{cols['time']}' ({co['time_unit']}), event '{cols['event']}', "
              f"covariates {res.config['modelling']['clinical_covariates']}")
    if res.undecided:
        print("Could not decide (also at the top of the file):")
        for u in res.undecided:
            print(f"  - {u}")
    target = "" if args.clinical_table is not None else " features"
    print(f"Next: .venv/bin/snakemake{target} --configfile {args.output} -n   (dry run), then without -n")
    return 0
