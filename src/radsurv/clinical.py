"""Loading and checking the clinical (outcome) table.

The user's table keeps its own column names; ``config['cohort']['columns']``
maps them onto radsurv's: ``id``, ``time``, ``event`` and ``covariates``.
Rows that cannot be used are reported in the QC table, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radsurv.qc import qc_row

STAGE = "clinical"

#: Spellings of the event indicator that real tables use.
_EVENT_VALUES = {
    "1": 1, "1.0": 1, "true": 1, "yes": 1, "dead": 1, "deceased": 1, "event": 1,
    "0": 0, "0.0": 0, "false": 0, "no": 0, "alive": 0, "censored": 0,
}


def _read_table(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def load_clinical(
    path: str | Path,
    columns: Mapping[str, Any],
    image_ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Read the clinical table and return ``(table, qc_rows)``.

    The returned table has columns ``patient_id``, ``time`` (float), ``event``
    (0/1) and the configured covariates unchanged (categorical values stay
    strings; imputation and encoding happen inside the training fold). Rows
    with a missing or negative time, an event that is not binary, or a
    duplicated id are excluded and reported. If ``image_ids`` is given, patients
    with images but no outcome and outcome rows without images are reported too
    (the latter as warnings, since they are simply not part of the image cohort).
    """
    path = Path(path)
    raw = _read_table(path)
    id_col, time_col, event_col = columns["id"], columns["time"], columns["event"]
    covariates = list(columns.get("covariates", []) or [])
    missing = [c for c in [id_col, time_col, event_col, *covariates] if c not in raw.columns]
    if missing:
        raise ValueError(
            f"The clinical table {path.name} has no column(s) {missing}; its columns are "
            f"{list(raw.columns)}. Fix cohort.columns in the config."
        )
    qc: list[dict[str, str]] = []
    keep: list[dict[str, Any]] = []
    ids = raw[id_col].str.strip()
    dup = set(ids[ids.duplicated()])
    for pid in sorted(dup):
        qc.append(qc_row(pid, "", STAGE, "excluded",
                         f"patient id {pid} appears more than once in {path.name}"))
    for i, row in raw.iterrows():
        pid = str(row[id_col]).strip()
        line = i + 2  # header is line 1
        if pid == "":
            qc.append(qc_row("", "", STAGE, "excluded", f"{path.name} line {line}: empty patient id"))
            continue
        if pid in dup:
            continue
        t_raw = str(row[time_col]).strip()
        try:
            t = float(t_raw)
        except ValueError:
            t = float("nan")
        if not np.isfinite(t):
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"{path.name} line {line}: survival time '{t_raw}' in column "
                             f"'{time_col}' is missing or not a number"))
            continue
        if t < 0:
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"{path.name} line {line}: survival time {t:g} is negative"))
            continue
        e_raw = str(row[event_col]).strip().lower()
        if e_raw not in _EVENT_VALUES:
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"{path.name} line {line}: event '{row[event_col]}' in column "
                             f"'{event_col}' is not 0/1 (or yes/no, dead/alive)"))
            continue
        rec: dict[str, Any] = {"patient_id": pid, "time": t, "event": _EVENT_VALUES[e_raw]}
        for c in covariates:
            rec[c] = row[c] if str(row[c]).strip() != "" else None
        keep.append(rec)
    table = pd.DataFrame(keep, columns=["patient_id", "time", "event", *covariates])
    table["event"] = table["event"].astype(int)
    if image_ids is not None:
        have = set(table["patient_id"])
        bad = {q["patient_id"] for q in qc}
        for pid in sorted(set(image_ids) - have - bad):
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"patient {pid} has images but no row in {path.name}"))
        for pid in sorted(have - set(image_ids)):
            qc.append(qc_row(pid, "", STAGE, "warning",
                             f"patient {pid} is in {path.name} but has no analysable scan"))
    return table.sort_values("patient_id").reset_index(drop=True), qc


# --------------------------------------------------------------------------- covariates
#: Covariate types of ``modelling.clinical_covariates``.
COVARIATE_TYPES = ("numeric", "ordinal", "categorical")
#: Cell values that always mean "not recorded" (compared after :func:`norm_token`).
DEFAULT_MISSING = ("", "na", "n/a", "nan", "none", "null", "unknown", "?", "-")


def norm_token(value: Any) -> str:
    """Canonical text of a table cell for matching levels: stripped, lower case, and
    integral numbers without decimals (``"2.0"`` -> ``"2"``, ``" IIIa "`` -> ``"iiia"``)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    s = str(value).strip().lower()
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
            categorical, default: the levels seen in the training patients, sorted).
            Matching ignores case and surrounding spaces, and ``2`` equals ``2.0``.
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
        """Cells -> (parsed values, missing flags). Numeric -> float, others -> canonical level.

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
                out.append(str(v).strip())
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


try:  # the encoder is a scikit-learn transformer (modelling extra)
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError:  # pragma: no cover - the clinical stage alone needs no scikit-learn
    BaseEstimator = TransformerMixin = object  # type: ignore[misc,assignment]


class ClinicalEncoder(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: clinical covariates (text) -> standardised model columns.

    Everything is learnt from the training patients in :meth:`fit`: the imputation
    value of each covariate (median for numeric and ordinal codes, the most frequent
    level for categorical), the categorical levels (if not configured) and the
    mean/SD used to standardise each output column. :meth:`transform` applies them
    unchanged; a categorical level never seen in training gets all indicators 0 and
    a warning.

    Args:
        specs: list of :class:`CovariateSpec` as dicts (``CovariateSpec.to_dict``),
            so the estimator stays clonable.
    """

    def __init__(self, specs: Sequence[Mapping[str, Any]] = ()) -> None:
        self.specs = specs

    def _specs(self) -> list[CovariateSpec]:
        return [CovariateSpec(**dict(s)) for s in self.specs]

    def _raw(self, X: pd.DataFrame) -> dict[str, tuple[list[Any], list[bool]]]:
        return {s.name: s.parse(list(X[s.name])) for s in self._specs()}

    def fit(self, X: pd.DataFrame, y: Any = None) -> ClinicalEncoder:
        import warnings

        raw = self._raw(X)
        self.fill_: dict[str, Any] = {}
        self.levels_: dict[str, list[str]] = {}
        self.n_missing_train_: dict[str, int] = {}
        for s in self._specs():
            vals, miss = raw[s.name]
            self.n_missing_train_[s.name] = int(sum(miss))
            present = [v for v, m in zip(vals, miss, strict=True) if not m]
            if not present:
                raise ValueError(f"clinical covariate {s.name!r} is missing for every training patient")
            if s.type == "numeric":
                self.fill_[s.name] = float(np.median(present))
            elif s.type == "ordinal":
                codes = [s.levels.index(v) for v in present]
                self.fill_[s.name] = float(np.median(codes))
            else:
                levels = s.levels or sorted(set(present))
                counts = pd.Series(present).value_counts()
                self.fill_[s.name] = str(sorted(counts[counts == counts.max()].index)[0])
                self.levels_[s.name] = list(levels)
                if len(levels) < 2:
                    warnings.warn(f"categorical covariate {s.name!r} has one level in training", RuntimeWarning,
                                  stacklevel=2)
        M = self._matrix(raw, fit=True)
        self.mean_ = M.mean(axis=0)
        sd = M.std(axis=0, ddof=1) if len(M) > 1 else np.zeros(M.shape[1])
        self.scale_ = np.where(sd > 0, sd, 1.0)
        return self

    def _matrix(self, raw: Mapping[str, tuple[list[Any], list[bool]]], fit: bool = False) -> np.ndarray:
        import warnings

        cols: list[np.ndarray] = []
        names: list[str] = []
        for s in self._specs():
            vals, miss = raw[s.name]
            if s.type == "numeric":
                cols.append(np.array([self.fill_[s.name] if m else v for v, m in zip(vals, miss, strict=True)], float))
                names.append(s.name)
            elif s.type == "ordinal":
                cols.append(np.array([self.fill_[s.name] if m else s.levels.index(v)
                                      for v, m in zip(vals, miss, strict=True)], float))
                names.append(s.name)
            else:
                levels = self.levels_[s.name]
                filled = [self.fill_[s.name] if m else v for v, m in zip(vals, miss, strict=True)]
                unseen = sorted({v for v in filled if v not in levels})
                if unseen:
                    warnings.warn(f"covariate {s.name!r}: level(s) {unseen} not seen in training "
                                  "(coded as the reference level)", RuntimeWarning, stacklevel=3)
                for lv in levels[1:]:
                    cols.append(np.array([1.0 if v == lv else 0.0 for v in filled]))
                    names.append(f"{s.name}={lv}")
        if fit:
            self.feature_names_out_ = names
        return np.column_stack(cols) if cols else np.zeros((len(next(iter(raw.values()))[0]) if raw else 0, 0))

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        M = (self._matrix(self._raw(X)) - self.mean_) / self.scale_
        return pd.DataFrame(M, index=X.index, columns=self.feature_names_out_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)
