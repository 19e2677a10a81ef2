"""Loading and checking the clinical (outcome) table.

The user's table keeps its own column names; ``config['cohort']['columns']``
maps them onto radsurv's: ``id``, ``time``, ``event`` and ``covariates``.
Rows that cannot be used are reported in the QC table, never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radsurv.qc import qc_row

log = logging.getLogger(__name__)

STAGE = "clinical"

#: Spellings of the event indicator that real tables use.
_EVENT_VALUES = {
    "1": 1, "1.0": 1, "true": 1, "yes": 1, "dead": 1, "deceased": 1, "event": 1,
    "0": 0, "0.0": 0, "false": 0, "no": 0, "alive": 0, "censored": 0,
}


def _read_table(path: Path) -> pd.DataFrame:
    """One clinical table, every cell as text (CSV, or TSV for ``.tsv``/``.tab``/``.txt``)."""
    sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def id_key(value: Any) -> str:
    """Matching key of a patient id: stripped, and an all-digit id without leading zeros
    (``"002"`` = ``"2"``: spreadsheets drop leading zeros, so two tables of one cohort often
    disagree on them)."""
    s = str(value).strip()
    return str(int(s)) if s.isdigit() else s


def reconcile_ids(ids: Sequence[str], reference: Sequence[str]) -> dict[str, str]:
    """``{id: reference id}`` for the ``ids`` absent from ``reference`` that equal exactly one
    reference id by :func:`id_key` (e.g. ``"002"`` -> ``"2"``)."""
    ref = set(reference)
    by_key: dict[str, list[str]] = {}
    for r in ref:
        by_key.setdefault(id_key(r), []).append(r)
    own = set(ids)
    out = {}
    for i in ids:
        if i in ref:
            continue
        cands = by_key.get(id_key(i), [])
        if len(cands) == 1 and cands[0] not in own:  # never merge two of our own patients
            out[i] = cands[0]
    return out


def read_clinical_tables(path: str | Path | Sequence[str | Path], id_col: str) -> tuple[pd.DataFrame, str]:
    """The clinical table as text, and its name for messages. ``path`` may be a list of
    tables (e.g. outcomes in one file, covariates in another): they are joined on the id
    column ``id_col`` (a patient missing from one of them gets empty cells there).

    Raises:
        ValueError: a table without the id column, or a column in more than one table.
    """
    if isinstance(path, (str, Path)):
        p = Path(path)
        return _read_table(p), p.name
    paths = [Path(p) for p in path]
    if not paths:
        raise ValueError("cohort.clinical_table is an empty list")
    name = " + ".join(p.name for p in paths)
    merged: pd.DataFrame | None = None
    for p in paths:
        t = _read_table(p)
        if id_col not in t.columns:
            raise ValueError(f"the clinical table {p.name} has no id column {id_col!r} (cohort.columns.id); its "
                             f"columns are {list(t.columns)}")
        t[id_col] = t[id_col].str.strip()
        if merged is None:
            merged = t
            continue
        both = sorted((set(merged.columns) & set(t.columns)) - {id_col})
        if both:
            raise ValueError(f"column(s) {both} are in more than one of the clinical tables {name}")
        # join on the id key (002 = 2), keeping the first table's spelling of the id
        renamed = reconcile_ids(t[id_col].tolist(), merged[id_col].tolist())
        if renamed:
            ex = ", ".join(f"{a} = {b}" for a, b in sorted(renamed.items())[:3])
            log.info("clinical tables %s: %d id(s) of %s matched ignoring leading zeros (e.g. %s)",
                     name, len(renamed), p.name, ex)
            t[id_col] = t[id_col].map(lambda v, renamed=renamed: renamed.get(v, v))
        merged = merged.merge(t, on=id_col, how="outer", sort=False).fillna("")
    assert merged is not None
    return merged, name


def load_clinical(
    path: str | Path | Sequence[str | Path],
    columns: Mapping[str, Any],
    image_ids: Sequence[str] | None = None,
    image_source: str = "scans",
    labels: Sequence[str] = (),
    survival: bool | None = None,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Read the clinical table and return ``(table, qc_rows)``.

    ``path``: one table, or a list of tables joined on the id column
    (:func:`read_clinical_tables`). The returned table has columns ``patient_id``, ``time`` (float), ``event``
    (0/1) and the configured covariates unchanged (categorical values stay
    strings; imputation and encoding happen inside the training fold). Rows
    with a missing or negative time, an event that is not binary, or a
    duplicated id are excluded and reported. If ``image_ids`` is given, patients
    with images but no outcome and outcome rows without images are reported too:
    the latter as ONE warning row (count and a few ids), since they are simply not
    part of the image cohort; the former one excluded row per patient when
    ``image_source`` is ``"scans"`` (the pipeline's own scans), or one summary row
    for a table of features (``image_source="feature table"``).

    ``labels``: columns of categorical endpoints (issue #17) carried as written (text; an
    empty cell stays ``""``: the endpoint's own checks report it, nothing is coerced here).
    ``survival``: whether ``time`` and ``event`` are read and checked; by default when
    ``columns`` names both. Without them (a study of categorical endpoints only) a row is
    left out only for an empty or duplicated id, and the table has no ``time``/``event``.
    """
    id_col = columns["id"]
    if survival is None:
        survival = bool(columns.get("time")) and bool(columns.get("event"))
    if survival and not (columns.get("time") and columns.get("event")):
        raise ValueError("cohort.columns: a survival endpoint needs the columns 'time' and 'event' "
                         "(survival or follow-up time, and the event indicator)")
    time_col, event_col = (columns["time"], columns["event"]) if survival else ("", "")
    raw, table_name = read_clinical_tables(path, id_col)
    single = isinstance(path, (str, Path))
    covariates = list(columns.get("covariates", []) or [])
    extra = [c for c in dict.fromkeys(labels) if c not in covariates]
    outcome = [time_col, event_col] if survival else []
    missing = [c for c in [id_col, *outcome, *covariates, *extra] if c not in raw.columns]
    if missing:
        raise ValueError(
            f"The clinical table {table_name} has no column(s) {missing}; its columns are "
            f"{list(raw.columns)}. Fix cohort.columns (or the endpoint's column) in the config."
        )
    qc: list[dict[str, str]] = []
    keep = _outcome_rows(raw, id_col, time_col, event_col, covariates, table_name, single, qc, extra)
    table = pd.DataFrame(keep, columns=["patient_id", *(["time", "event"] if survival else []), *covariates,
                                        *extra])
    if survival:
        table["event"] = table["event"].astype(int)
    if image_ids is not None:
        table = _match_images(table, list(image_ids), image_source, table_name, qc)
    return table.sort_values("patient_id").reset_index(drop=True), qc


def _outcome_rows(raw: pd.DataFrame, id_col: str, time_col: str, event_col: str, covariates: list[str],
                  table_name: str, single: bool, qc: list[dict[str, str]],
                  labels: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The usable rows (patient_id, time, event, covariates, labels) in table order; an ``excluded`` QC
    row for every duplicated id (once), empty id and (when ``time_col`` is given) missing/negative
    time and non-binary event. Label columns are copied as written."""
    keep: list[dict[str, Any]] = []
    ids = raw[id_col].str.strip()
    dup = set(ids[ids.duplicated()])
    for pid in sorted(dup):
        qc.append(qc_row(pid, "", STAGE, "excluded",
                         f"patient id {pid} appears more than once in {table_name}"))
    for i, row in raw.iterrows():
        pid = str(row[id_col]).strip()
        line = i + 2  # header is line 1
        at = f"{table_name} line {line}" if single else f"{table_name}, patient {pid or '(no id)'}"
        if pid == "":
            qc.append(qc_row("", "", STAGE, "excluded", f"{at}: empty patient id"))
            continue
        if pid in dup:
            continue
        problem, rec = _outcome(row, time_col, event_col, at) if time_col else ("", {})
        if problem:
            qc.append(qc_row(pid, "", STAGE, "excluded", problem))
            continue
        rec = {"patient_id": pid, **rec}
        for c in covariates:
            rec[c] = row[c] if str(row[c]).strip() != "" else None
        for c in labels:
            rec[c] = str(row[c])
        keep.append(rec)
    return keep


def _outcome(row: pd.Series, time_col: str, event_col: str, at: str) -> tuple[str, dict[str, Any]]:
    """``("", {"time", "event"})`` of one row, or why it cannot be used (``at`` names the row)."""
    t_raw = str(row[time_col]).strip()
    try:
        t = float(t_raw)
    except ValueError:
        t = float("nan")
    if not np.isfinite(t):
        return (f"{at}: survival time '{t_raw}' in column "
                f"'{time_col}' is missing or not a number"), {}
    if t < 0:
        return f"{at}: survival time {t:g} is negative", {}
    e_raw = str(row[event_col]).strip().lower()
    if e_raw not in _EVENT_VALUES:
        return (f"{at}: event '{row[event_col]}' in column "
                f"'{event_col}' is not 0/1 (or yes/no, dead/alive)"), {}
    return "", {"time": t, "event": _EVENT_VALUES[e_raw]}


def _match_images(table: pd.DataFrame, image_ids: list[str], image_source: str, table_name: str,
                  qc: list[dict[str, str]]) -> pd.DataFrame:
    """The table with ids spelled as the images' (leading zeros); QC rows for patients with images
    but no outcome row and (one summary row) for outcome rows without images."""
    renamed = reconcile_ids(table["patient_id"].tolist(), image_ids)
    if renamed:  # the images' spelling of the id is the cohort's
        table["patient_id"] = table["patient_id"].map(lambda v: renamed.get(v, v))
        ex = ", ".join(f"{a} = {b}" for a, b in sorted(renamed.items())[:3])
        qc.append(qc_row("", "", STAGE, "warning",
                         f"{len(renamed)} patient id(s) of {table_name} equal the images' ids only without "
                         f"leading zeros (e.g. {ex}); matched"))
    have = set(table["patient_id"])
    bad = {q["patient_id"] for q in qc}
    no_outcome = sorted(set(image_ids) - have - bad)
    if image_source == "scans":  # their scans were processed: one exclusion row each
        for pid in no_outcome:
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"patient {pid} has images but no row in {table_name}"))
    elif no_outcome:
        qc.append(qc_row("", "", STAGE, "excluded",
                         f"{len(no_outcome)} patient(s) of the {image_source} have no row in {table_name} and "
                         f"are not modelled (e.g. {_examples(no_outcome)})"))
    clinical_only = sorted(have - set(image_ids))
    if clinical_only:  # not part of the image cohort: one summary row, not one per patient
        what = "no analysable scan" if image_source == "scans" else f"no row in the {image_source}"
        qc.append(qc_row("", "", STAGE, "warning",
                         f"{len(clinical_only)} patient(s) in {table_name} have {what} and are not modelled "
                         f"(e.g. {_examples(clinical_only)})"))
    return table


def _examples(ids: Sequence[str], k: int = 5) -> str:
    """The first ``k`` ids, comma-separated, with ``...`` when there are more."""
    return ", ".join(ids[:k]) + (", ..." if len(ids) > k else "")


# --------------------------------------------------------------------------- covariates
#: Covariate types of ``modelling.clinical_covariates``.
COVARIATE_TYPES = ("numeric", "ordinal", "categorical")
#: Cell values that always mean "not recorded" (compared after :func:`norm_token`).
DEFAULT_MISSING = ("", "na", "n/a", "nan", "none", "null", "unknown", "?", "-")


def norm_token(value: Any) -> str:
    """Canonical text of a table cell for matching levels: lower case, surrounding spaces
    removed, runs of inner spaces as one, and integral numbers without decimals
    (``"2.0"`` -> ``"2"``, ``" IIIa "`` -> ``"iiia"``, ``"Squamous  cell "`` -> ``"squamous cell"``)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    s = " ".join(str(value).split()).lower()
    try:
        f = float(s)
    except ValueError:
        return s
    if np.isfinite(f) and f == int(f):
        return str(int(f))
    return s


class CovariateSpec:
    """How one clinical covariate enters a model.

    Args:
        name: column name in the clinical table.
        type: ``numeric`` (a number, e.g. age), ``ordinal`` (ordered ``levels``, coded
            0, 1, 2, ... in that order, e.g. stage I < II < IIIA < IIIB) or
            ``categorical`` (one indicator per level except the first, e.g. histology).
        levels: the allowed values, in order (required for ordinal; optional for
            categorical, default: the levels seen in the training patients, sorted, each
            named by its canonical text: lower case, single spaces).
            Matching ignores case and spaces (surrounding, repeated), and ``2`` equals ``2.0``.
        missing_values: extra cell values meaning "not recorded" (e.g. ``x`` for Tx),
            on top of empty cells and ``NA``/``unknown``.

    A value that is neither a level nor a missing code raises ``ValueError`` naming
    the column and the value: nothing is silently turned into a number.
    """

    def __init__(self, name: str, type: str = "numeric", levels: Sequence[Any] | None = None,
                 missing_values: Sequence[Any] | None = None) -> None:
        if type not in COVARIATE_TYPES:
            raise ValueError(f"covariate {name!r}: type must be one of {COVARIATE_TYPES}, got {type!r}")
        if type == "ordinal" and not levels:
            raise ValueError(f"covariate {name!r} is ordinal: list its levels in order")
        self.name = name
        self.type = type
        self.levels = [str(v) for v in levels] if levels else None
        self.missing_values = [str(v) for v in (missing_values or [])]
        self._missing = set(DEFAULT_MISSING) | {norm_token(v) for v in self.missing_values}
        if self.levels:
            keys = [norm_token(v) for v in self.levels]
            if len(set(keys)) != len(keys):
                raise ValueError(f"covariate {name!r}: duplicate levels {self.levels}")
            clash = sorted(set(keys) & self._missing)
            if clash:
                raise ValueError(f"covariate {name!r}: {clash} is both a level and a missing code")

    @classmethod
    def from_config(cls, name: str, d: Mapping[str, Any] | str | None) -> CovariateSpec:
        """From a config entry: a mapping (``type``, ``levels``, ``missing_values``) or a type name."""
        if d is None:
            return cls(name)
        if isinstance(d, str):
            return cls(name, d)
        return cls(name, **dict(d))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "levels": self.levels, "missing_values": self.missing_values}

    def parse(self, values: Sequence[Any]) -> tuple[list[Any], list[bool]]:
        """Cells -> (parsed values, missing flags). Numeric -> float, others -> canonical level
        (the configured level's spelling, or without ``levels`` the :func:`norm_token` text).

        Raises:
            ValueError: a value that is not a number / not a level / not a missing code.
        """
        out: list[Any] = []
        miss: list[bool] = []
        bad: list[str] = []
        lev = {norm_token(v): v for v in self.levels} if self.levels else None
        for v in values:
            tok = norm_token(v)
            if tok in self._missing:
                out.append(None)
                miss.append(True)
                continue
            if self.type == "numeric":
                try:
                    f = float(tok)
                except ValueError:
                    f = float("nan")
                if not np.isfinite(f):
                    bad.append(str(v))
                    out.append(None)
                else:
                    out.append(f)
            elif lev is not None:
                if tok not in lev:
                    bad.append(str(v))
                    out.append(None)
                else:
                    out.append(lev[tok])
            else:
                # no configured levels: the canonical (case- and space-folded) text is the
                # level, so 'Adenocarcinoma' and 'adenocarcinoma ' are one category
                out.append(tok)
            miss.append(False)
        if bad:
            what = "a number" if self.type == "numeric" else f"one of the levels {self.levels}"
            raise ValueError(
                f"clinical covariate {self.name!r}: value(s) {sorted(set(bad))[:10]} are not {what} and not a "
                f"missing-value code {sorted(self._missing - {''})}. Add them to modelling.clinical_covariates."
                f"{self.name}.levels or .missing_values.")
        return out, miss


def missing_counts(table: pd.DataFrame, specs: Sequence[CovariateSpec]) -> dict[str, int]:
    """Number of patients with a missing value, per covariate (after parsing)."""
    return {s.name: int(sum(s.parse(table[s.name].tolist())[1])) for s in specs}


def complete_case_ids(table: pd.DataFrame, specs: Sequence[CovariateSpec]) -> tuple[list[str], list[dict[str, str]]]:
    """Patients with every covariate recorded, and a QC row for each patient dropped."""
    keep, qc = [], []
    flags = {s.name: s.parse(table[s.name].tolist())[1] for s in specs}
    for i, pid in enumerate(table["patient_id"].astype(str)):
        gone = [n for n, f in flags.items() if f[i]]
        if gone:
            qc.append(qc_row(pid, "", "modelling", "excluded",
                             f"missing clinical covariate(s) {gone}; modelling.missing_covariates is complete_case"))
        else:
            keep.append(pid)
    return keep, qc
