"""Feature tables as the modelling step reads them: the pipeline's own ``features.tsv``
(one row per scan) and a user's own feature table (one row per patient).

Light on purpose (pandas only): the workflow's checks before the first job
(:func:`radsurv.config.preflight`) read a user's table with the same function as the
model step.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from radsurv.qc import qc_row

if TYPE_CHECKING:  # annotations only: pandas costs a per-scan job 0.4 s to import
    import pandas as pd

log = logging.getLogger(__name__)

#: Column names that are a leftover row index, never a feature (pandas ``to_csv`` writes an
#: unnamed first column; R writes ``X`` or ``""``).
_INDEX_NAME = r"^(Unnamed: \d+(_level_\d+)?|index|X|)$"


def read_features(path: str | Path) -> pd.DataFrame:
    """Read the pipeline's feature matrix (``features.tsv``, indexed by scan_id)."""
    import pandas as pd

    return pd.read_csv(path, sep="\t", index_col="scan_id", dtype={"patient_id": str})


def modelling_matrix(fdf: pd.DataFrame) -> pd.DataFrame:
    """One row per patient for modelling: each patient's first analysable scan."""
    first = fdf.sort_values(["patient_id", "session"]).groupby("patient_id", sort=True).head(1)
    return first.set_index("patient_id").drop(columns=["session"])


def candidate_columns(X: pd.DataFrame, pattern: str | None, allowed: Sequence[str] | None = None) -> list[str]:
    """Radiomic candidate columns: numeric, not ``diagnostics_*``, matching ``pattern``
    (regular expression, searched) and, if given, in ``allowed`` (the robust list)."""
    import pandas as pd

    rx = re.compile(pattern) if pattern else None
    out = []
    for c in X.columns:
        if str(c).startswith("diagnostics_") or c in ("patient_id", "scan_id", "session"):
            continue
        if allowed is not None and c not in allowed:
            continue
        if rx is not None and not rx.search(str(c)):
            continue
        if pd.api.types.is_numeric_dtype(X[c]):
            out.append(c)
    return out


def read_feature_table(path: str | Path, id_column: str, header_rows: int = 1,
                       id_pattern: str | None = None, qc: list[dict[str, str]] | None = None) -> pd.DataFrame:
    """A user's own feature table (CSV/TSV, one row per patient) indexed by patient id.

    Args:
        id_column: the patient id column (``modelling.features_id_column``).
        header_rows: rows of column headings at the top (``modelling.features_header_rows``);
            with several, a column's name is its last non-empty heading (a table with a
            class row, a feature-name row and an id row names its columns by feature and id).
        id_pattern: regular expression (``modelling.features_id_pattern``) whose first group
            is the patient id within the id column's value, e.g. ``^(LUNG1-[0-9]+)`` for
            ``LUNG1-001_000000_GTV-1_mask``. Rows it does not match are left out (log line and,
            if ``qc`` is given, one QC row appended to it); none matching is an error.

    A leftover row-index column (``Unnamed: 0``, ``index``, or whole numbers 0..n-1 / 1..n in
    row order) is dropped with a log line: it is never a feature.

    Raises:
        ValueError: naming the actual problem: extra header rows (with the value of
            ``modelling.features_header_rows`` to set), a missing id column (with the table's
            columns), a pattern matching no id, duplicate ids.
    """
    path = Path(path)
    header_rows = int(header_rows)
    if header_rows < 1:
        raise ValueError("modelling.features_header_rows must be 1 or more")
    df = _read_with_headings(path, id_column, header_rows)
    _check_header_rows(df, path, id_column, header_rows)
    dup_names = sorted({str(c) for c in df.columns[df.columns.duplicated()]} - {""})
    if dup_names:
        raise ValueError(f"the feature table {path.name} has duplicate column names {dup_names[:5]}")
    ids = df[id_column].astype(str).str.strip()
    if id_pattern:
        df, ids = _ids_by_pattern(df, ids, path, id_column, id_pattern, qc)
    df[id_column] = ids
    if df[id_column].duplicated().any():
        d = df.loc[df[id_column].duplicated(), id_column][:5].tolist()
        raise ValueError(f"duplicate patient ids in {path.name}: {d}"
                         + (" (after modelling.features_id_pattern)" if id_pattern else ""))
    return _drop_row_index(df.set_index(id_column), path)


def _read_with_headings(path: Path, id_column: str, header_rows: int) -> pd.DataFrame:
    """The table with one column name per column: with several header rows, each column's
    last non-empty heading (its cells then numbers where every cell is one)."""
    import pandas as pd

    sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","
    if header_rows == 1:
        return pd.read_csv(path, sep=sep, dtype={id_column: str}, low_memory=False)
    raw = pd.read_csv(path, sep=sep, header=list(range(header_rows)), dtype=str, keep_default_na=False)
    names = []
    for levels in raw.columns:
        parts = [str(v).strip() for v in levels if not re.fullmatch(r"Unnamed: \d+_level_\d+", str(v))]
        parts = [v for v in parts if v]
        names.append(parts[-1] if parts else "")
    raw.columns = names
    df = pd.DataFrame({i: (raw.iloc[:, i] if names[i] == id_column else _numeric_or_text(raw.iloc[:, i]))
                       for i in range(raw.shape[1])})
    df.columns = names
    return df


def _check_header_rows(df: pd.DataFrame, path: Path, id_column: str, header_rows: int) -> None:
    """ValueError when the id column is missing or extra header rows were read as data,
    naming the ``modelling.features_header_rows`` / ``features_id_column`` value to set."""
    if id_column not in df.columns:
        n_extra, id_row = _header_diagnosis(df, id_column)
        if n_extra and (id_row is not None or header_rows == 1):
            where = f"; {id_column!r} is in header row {header_rows + id_row + 1}" if id_row is not None else ""
            raise ValueError(
                f"the feature table {path.name} has {header_rows + n_extra} header rows, not {header_rows}: "
                f"its first {n_extra} row(s) below the column names are not numbers{where}. "
                f"Set modelling.features_header_rows: {header_rows + n_extra} (a column is then named by its last "
                "non-empty heading).")
        raise ValueError(f"the feature table {path.name} has no patient id column {id_column!r}; its first "
                         f"columns are {[str(c) for c in df.columns[:8]]}. Set modelling.features_id_column to the "
                         "column holding the patient ids.")
    if header_rows == 1:
        n_extra = _numbers_below_text(df.drop(columns=[id_column]))
        if n_extra:
            raise ValueError(
                f"the feature table {path.name}: its first {n_extra} row(s) below the column names are not "
                f"numbers (more header rows?). Set modelling.features_header_rows: {1 + n_extra}, or remove them.")


def _ids_by_pattern(df: pd.DataFrame, ids: pd.Series, path: Path, id_column: str, id_pattern: str,
                    qc: list[dict[str, str]] | None) -> tuple[pd.DataFrame, pd.Series]:
    """The rows whose id matches ``modelling.features_id_pattern`` and their patient ids (the
    pattern's first group); the others are left out with a log line and a QC row."""
    rx = re.compile(id_pattern)
    found = ids.map(lambda v: (m.group(1) if m.groups() else m.group(0)) if (m := rx.search(v)) else None)
    bad = ids[found.isna()].tolist()
    if len(bad) == len(ids):
        raise ValueError(f"modelling.features_id_pattern {id_pattern!r} matches none of the ids of {path.name} "
                         f"(e.g. {ids.tolist()[:3]})")
    if bad:
        msg = (f"{len(bad)} row(s) of the feature table {path.name} do not match modelling.features_id_pattern "
               f"and are not used (e.g. {', '.join(bad[:5])})")
        log.warning("%s", msg)
        if qc is not None:
            qc.append(qc_row("", "", "modelling", "warning", msg))
    ok = found.notna().to_numpy()
    log.info("feature table %s: patient ids taken from column %s by modelling.features_id_pattern "
             "(e.g. %s -> %s)", path.name, id_column, ids[ok].iloc[0], found[ok].iloc[0])
    return df.loc[ok].copy(), found[ok].astype(str)


def _drop_row_index(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``df`` without leftover row-index columns (by name, or whole numbers 0..n-1 / 1..n)."""
    import pandas as pd

    n = len(df)
    drop = []
    for c in df.columns:
        col = df[c]
        if re.fullmatch(_INDEX_NAME, str(c)):
            drop.append(c)
        elif pd.api.types.is_integer_dtype(col) and n > 2 and (
                (col.to_numpy() == range(n)).all() or (col.to_numpy() == range(1, n + 1)).all()):
            drop.append(c)
    if drop:
        log.info("feature table %s: column(s) %s dropped: a leftover row index (row numbers), not a feature",
                 path.name, [str(c) for c in drop])
        df = df.drop(columns=drop)
    return df


def _numeric_or_text(col: pd.Series) -> pd.Series:
    """Numbers when every non-empty cell is one, else the text unchanged."""
    import pandas as pd

    txt = col.astype(str).str.strip()
    empty = txt.isin(["", "nan", "NaN", "NA", "N/A"])
    num = pd.to_numeric(txt.where(~empty, None), errors="coerce")
    return num.astype(float) if not (num.isna() & ~empty).any() else col


def _header_diagnosis(df: pd.DataFrame, id_column: str, max_rows: int = 10) -> tuple[int, int | None]:
    """``(leading rows that look like header rows, row holding id_column or None)``: rows at the top
    in which (almost) no cell is a number, while rows below are numbers."""
    import pandas as pd

    n_extra, id_row = 0, None
    for i in range(min(max_rows, len(df))):
        cells = df.iloc[i].astype(str).str.strip()
        filled = cells[(cells != "") & (cells.str.lower() != "nan")]
        numeric = pd.to_numeric(filled, errors="coerce").notna().sum()
        if len(filled) and numeric >= 0.5 * len(filled):  # a data row: an id (text) beside numbers
            return n_extra, id_row
        n_extra += 1
        if id_row is None and (cells == id_column).any():
            id_row = i
    return 0, None  # no row of numbers below: these are data rows, not extra headings


def _numbers_below_text(df: pd.DataFrame, max_rows: int = 10) -> int:
    """Rows at the top that hold text where most columns hold numbers below them (extra
    header rows read as data); 0 if none. Columns of text throughout (e.g. pyradiomics'
    diagnostics) and numeric columns do not count either way."""
    from collections import Counter

    import numpy as np
    import pandas as pd

    starts: list[int] = []
    n_cols = 0
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col):
            n_cols += 1
            continue
        txt = col.astype(str).str.strip()
        ok = (pd.to_numeric(txt, errors="coerce").notna() | txt.isin(["", "nan", "NaN", "NA"])).to_numpy()
        bad = np.where(~ok)[0]
        if len(bad) and int(bad.max()) < min(max_rows, len(ok) - 1):  # numbers below a few text cells
            n_cols += 1
            starts.append(int(bad.max()) + 1)
        elif not len(bad):
            n_cols += 1
    if not starts:
        return 0
    k, n = Counter(starts).most_common(1)[0]
    return k if n * 2 > n_cols else 0
