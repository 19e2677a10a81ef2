"""What ``radsurv init`` proposes from a clinical table: id, time and event columns, time unit, covariates.

:func:`propose_clinical` looks at the column names and the values: the id column is the
one whose values match the DICOM PatientIDs, the time and event columns are scored by
their values (numbers; binary spellings) and names, the time unit comes from the time
column's name or, failing that, its largest value; every other column is proposed as a
covariate (numeric, ordinal with levels in stage order, categorical) unless it looks like
an outcome, a date, an identifier or free text. Each choice is explained
(:attr:`ClinicalProposal.why`); what it could not decide is listed.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from radsurv.ingest.clinical import DEFAULT_MISSING, CovariateSpec, norm_token

__all__ = ["ClinicalProposal", "propose_clinical", "read_table", "stage_key"]

#: Values meaning "not recorded" beyond the ones radsurv always treats as missing.
MISSING_CODES = {"x", "tx", "nx", "mx", "unk", "missing", "not reported", "nr", "not available", "n.a."}


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
    """The values that are recorded (not a missing-value code), stripped."""
    return [v.strip() for v in values if norm_token(v) not in DEFAULT_MISSING]


def _numeric_share(values: list[str]) -> float:
    """The share of ``values`` that parse as numbers (0 for none)."""
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
    """The lower-case alphanumeric words of a column name."""
    return {t for t in re.split(r"[^a-z0-9]+", name.lower()) if t}


def _unit_from_name(name: str) -> str | None:
    """``days`` / ``months`` / ``years`` when the column name says so, else None."""
    t = _tokens(name) | {name.lower()}
    if t & {"days", "day", "d"} or re.search(r"days?$", name.lower()):
        return "days"
    if t & {"months", "month", "mo", "mths", "m"} or re.search(r"months?$", name.lower()):
        return "months"
    if t & {"years", "year", "yrs", "yr", "y"} or re.search(r"years?$", name.lower()):
        return "years"
    return None


def _common_prefix(a: str, b: str) -> int:
    """The length of the common prefix of ``a`` and ``b`` (case ignored)."""
    n = 0
    for x, y in zip(a.lower(), b.lower()):
        if x != y:
            break
        n += 1
    return n


# --------------------------------------------------------------------------- id, time and event columns
@dataclass
class _Findings:
    """What the proposal explains (``why``), could not decide and noted, in the order found."""

    why: dict[str, str] = field(default_factory=dict)
    undecided: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _propose_id(table: pd.DataFrame, cols: list[str], ids: set[str], f: _Findings) -> str:
    """The id column: the one whose values best match the DICOM PatientIDs (else one named like an id)."""
    match = {c: len(ids & {v.strip() for v in table[c]}) for c in cols}
    id_col = max(cols, key=lambda c: (match[c], bool(re.search(r"id|patient", c, re.I)), -cols.index(c)))
    if match[id_col] == 0:
        named = [c for c in cols if re.search(r"id\b|patient|subject|case", c, re.I)]
        id_col = named[0] if named else cols[0]
        f.undecided.append(f"no column holds the DICOM PatientIDs: '{id_col}' proposed as the id column by its "
                           "name; the ids must equal the DICOM PatientID")
        f.why["id"] = "by its name (no column matches the DICOM PatientIDs)"
        return id_col
    f.why["id"] = f"{match[id_col]} of {len(ids)} DICOM PatientIDs found in this column"
    if match[id_col] < len(ids):
        f.undecided.append(f"{len(ids) - match[id_col]} patient(s) with scans have no row in the clinical "
                           "table (they are listed in the QC table when the workflow runs)")
    return id_col


def _event_score(c: str, values: list[str], id_col: str) -> int:
    """How much column ``c`` looks like an event indicator: binary spellings, named like an event / status."""
    toks = [norm_token(v) for v in values]
    share = sum(t in _EVENT_WORDS for t in toks) / len(toks) if toks else 0
    if c == id_col or share < 0.8 or len(set(toks)) < 2:
        return 0
    name = c.lower()
    return 1 + 3 * bool(re.search(r"event|status|dead|death|vital|censor|os|surviv", name))


def _time_score(c: str, values: list[str], id_col: str, event_score: int) -> int:
    """How much column ``c`` looks like a survival time: mostly numbers, named like one."""
    if c == id_col or event_score or _numeric_share(values) < 0.8 or len(set(values)) < 3:
        return 0
    t = _tokens(c)
    score = 1
    score += 3 * bool(t & {"os", "overall", "survival", "surv"} or "surviv" in c.lower())
    score += 2 * bool(t & {"time", "months", "month", "days", "day", "years", "fu", "follow", "followup"})
    score -= 3 * bool(t & {"pfs", "dfs", "rfs", "progression", "recurrence", "age"})
    return max(score, 0) if score > 1 else 0


def _propose_time(cols: list[str], t_scores: dict[str, int], id_col: str, f: _Findings) -> str:
    """The survival-time column: the best time score (a placeholder when none scores)."""
    time_col = max(cols, key=lambda c: (t_scores[c], -cols.index(c)))
    if t_scores[time_col] == 0:
        f.undecided.append("no column looks like a survival time (named time/survival/os/months/days with "
                           f"numbers): set cohort.columns.time; columns: {cols}")
        f.why["time"] = "placeholder: no survival-time column found"
        return next((c for c in cols if c != id_col), cols[0])
    ties = [c for c in cols if t_scores[c] == t_scores[time_col] and c != time_col]
    f.why["time"] = "numbers, named like a survival time"
    if ties:
        f.undecided.append(f"time column: '{time_col}' chosen, but {ties} look the same: check")
    return time_col


def _propose_event(cols: list[str], ev_scores: dict[str, int], present: dict[str, list[str]], id_col: str,
                   time_col: str, f: _Findings) -> str:
    """The event column: the best event score, ties to the name closest to the time column's."""
    event_col = max(cols, key=lambda c: (ev_scores[c], _common_prefix(c, time_col), -cols.index(c)))
    if ev_scores[event_col] == 0:
        f.undecided.append("no column looks like an event indicator (0/1, dead/alive): set cohort.columns.event")
        f.why["event"] = "placeholder: no event column found"
        return next((c for c in cols if c not in (id_col, time_col)), cols[-1])
    coding = sorted({norm_token(v) for v in present[event_col]})
    f.why["event"] = f"values {coding}, named like an event"
    if "censor" in event_col.lower():
        f.undecided.append(f"'{event_col}' is named like a censoring flag: radsurv needs 1 = event "
                           "(death), 0 = censored; recode the column if it is the other way round")
    bad = [v for v in coding if v not in _EVENT_WORDS]
    if bad:
        f.undecided.append(f"event column '{event_col}' has values {bad} that are not 0/1 or dead/alive: "
                           "those patients are excluded (QC table)")
    return event_col


def _propose_unit(time_col: str, values: list[str], f: _Findings) -> str:
    """The time unit: from the column name, else guessed from the largest value."""
    unit = _unit_from_name(time_col)
    if unit:
        f.why["time_unit"] = f"from the column name '{time_col}'"
        return unit
    nums = [float(v) for v in values if _numeric_share([v]) == 1.0]
    top = max(nums) if nums else 0.0
    unit = "days" if top > 400 else ("years" if top <= 25 else "months")
    f.why["time_unit"] = f"from the values (largest {top:g})"
    f.undecided.append(f"time unit '{unit}' guessed from the values of '{time_col}' (largest {top:g}): check")
    return unit


# --------------------------------------------------------------------------- covariates
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}.*|\d{1,2}/\d{1,2}/\d{2,4}")


def _not_a_covariate(c: str, vals: list[str], toks: set[str], n_rows: int, t_score: int, ev_score: int) -> str | None:
    """Why column ``c`` (its present values ``vals``, their tokens ``toks``) is not a covariate, or None."""
    lname = c.lower()
    if not vals or len(toks) < 2:
        return f"'{c}': fewer than two distinct values; not a covariate"
    outcome_name = re.search(r"event|status|dead|death|vital|censor", lname)
    if t_score > 1 or (ev_score > 1 and outcome_name):
        return f"'{c}': looks like another outcome (time or event); not a covariate"
    if len(vals) < 0.5 * n_rows:
        return f"'{c}': recorded for only {len(vals)} of {n_rows} patients; not proposed"
    if re.search(r"local|regional|distant|metasta|relapse|2nd|second|death|died|\bfu\b|follow", lname):
        return (f"'{c}': named like an outcome or follow-up (recurrence, metastasis, death); not a "
                "covariate: an outcome used as a predictor leaks the answer")
    if re.search(r"date|pfs|dfs|rfs|recurr|progress|cause", lname) or all(_DATE.fullmatch(v) for v in vals):
        return (f"'{c}': a date or another outcome; not a covariate (a date can define a temporal "
                "validation: modelling.split_by)")
    if len(toks) == len(vals) and _numeric_share(vals) < 0.9:
        return f"'{c}': a different text in every row (an identifier?); not a covariate"
    return None


def _ordinal_spec(c: str, vals: list[str], keys: dict[str, tuple[float, str] | None], f: _Findings) -> dict[str, Any]:
    """An ordinal covariate: levels in stage order (most frequent spelling), unparsed values as missing."""
    spell: dict[str, Counter[str]] = defaultdict(Counter)
    for v in vals:
        if keys[v] is not None:
            spell[norm_token(v)][v] += 1
    levels = sorted(spell, key=lambda t: (stage_key(t), t))
    lev = [spell[t].most_common(1)[0][0] for t in levels]
    lev_out: list[Any] = [int(x) if re.fullmatch(r"\d+", x) else x for x in lev]
    miss = sorted({norm_token(v) for v in vals if keys[v] is None})
    spec: dict[str, Any] = {"type": "ordinal", "levels": lev_out}
    if miss:
        spec["missing_values"] = miss
        f.undecided.append(f"'{c}': value(s) {miss} taken as 'not recorded'; if one is a real level, "
                           "add it to levels in order")
    f.why[f"cov:{c}"] = "stage-like: ordinal, levels in stage order"
    return spec


def _categorical_spec(c: str, vals: list[str], toks: set[str], f: _Findings) -> dict[str, Any]:
    """A categorical covariate; the usual not-recorded codes among its values are missing values."""
    miss = sorted(t for t in toks if t in MISSING_CODES)
    spec: dict[str, Any] = {"type": "categorical"}
    if miss:
        spec["missing_values"] = miss
    levels_seen = sorted(toks - set(miss))
    f.why[f"cov:{c}"] = f"categorical, levels seen (case ignored): {levels_seen}"
    raw = {v for v in vals}
    if len(raw) > len(toks):
        f.undecided.append(f"'{c}': some values differ only in case or spaces "
                           f"({len(raw)} spellings of {len(toks)} values); radsurv matches them as one")
    return spec


def _covariate_spec(c: str, vals: list[str], toks: set[str], f: _Findings) -> dict[str, Any] | None:
    """The covariate spec of column ``c``: ordinal if stage-like, numeric, categorical (at most 12 values);
    None (with a note) for free text."""
    stage_like = bool(re.search(r"stage|tnm|grade|ecog|(^|[._ ])[tnm]([._ ]|$)", c.lower()))
    keys = {v: stage_key(v) for v in vals}
    parsed = [v for v in vals if keys[v] is not None]
    roman = any(re.search(r"[iv]", norm_token(v)) and keys[v] is not None for v in vals)
    if (stage_like or roman) and len(parsed) >= 0.8 * len(vals):
        return _ordinal_spec(c, vals, keys, f)
    if _numeric_share(vals) >= 0.9:
        miss = sorted({norm_token(v) for v in vals if _numeric_share([v]) < 1})
        spec: dict[str, Any] = {"type": "numeric"}
        if miss:
            spec["missing_values"] = miss
        f.why[f"cov:{c}"] = f"numbers ({len(toks)} distinct values)"
        return spec
    if len(toks) <= 12:
        return _categorical_spec(c, vals, toks, f)
    f.notes.append(f"'{c}': {len(toks)} different text values; not proposed as a covariate")
    return None


# --------------------------------------------------------------------------- the proposal
def propose_clinical(table: pd.DataFrame, patient_ids: Sequence[str]) -> ClinicalProposal:
    """Propose the id, time and event columns, the time unit and the covariates of ``table``."""
    cols = list(table.columns)
    f = _Findings()
    id_col = _propose_id(table, cols, set(patient_ids), f)
    present = {c: _present(table[c]) for c in cols}
    ev_scores = {c: _event_score(c, present[c], id_col) for c in cols}
    t_scores = {c: _time_score(c, present[c], id_col, ev_scores[c]) for c in cols}
    time_col = _propose_time(cols, t_scores, id_col, f)
    event_col = _propose_event(cols, ev_scores, present, id_col, time_col, f)
    unit = _propose_unit(time_col, present[time_col], f)
    covariates: dict[str, dict[str, Any]] = {}
    for c in cols:
        if c in (id_col, time_col, event_col):
            continue
        vals = present[c]
        toks = {norm_token(v) for v in vals}
        note = _not_a_covariate(c, vals, toks, len(table), t_scores[c], ev_scores[c])
        if note:
            f.notes.append(note)
            continue
        spec = _covariate_spec(c, vals, toks, f)
        if spec is None:
            continue
        try:
            CovariateSpec.from_config(c, spec).parse(list(table[c]))
        except ValueError as err:
            f.notes.append(f"'{c}': not proposed ({err})")
            continue
        covariates[c] = spec
    columns = {"id": id_col, "time": time_col, "event": event_col, "covariates": list(covariates)}
    return ClinicalProposal(columns, unit, covariates, f.why, f.undecided, f.notes)
