"""Pre-converted input: a sheet of NIfTI/NRRD image + mask pairs as a cohort.

Instead of a DICOM folder (``cohort.dicom_dir``) a cohort can be given as a
CSV/TSV sheet (``cohort.image_sheet``) with one row per scan:

``patient_id, image, mask, modality`` (required) and ``session``,
``days_from_first``, ``mask_label`` (optional); see
``workflow/schemas/images.schema.yaml``. Relative paths are relative to the
sheet's folder. :func:`discover_sheet` turns the sheet into the same
:class:`~radsurv.ingest.records.Discovery` (scans.tsv, one manifest per scan, QC rows)
as DICOM discovery, so every later stage is unchanged; conversion
(:func:`radsurv.ingest.sheet_convert.convert_sheet_scan`) checks that image and mask share one voxel grid
(never a silent resample) and writes the same converted image and mask files.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radsurv.ingest.records import STAGE_DISCOVERY, Discovery, ScanRecord, safe, scan_label
from radsurv.qc import qc_row
from radsurv.schema import IMAGES_SCHEMA, default, load_schema, problems

log = logging.getLogger(__name__)

#: The schema of one sheet row, beside the config schema.
SCHEMA_PATH = IMAGES_SCHEMA


def read_sheet(path: str | Path) -> pd.DataFrame:
    """The sheet as a frame (CSV, or TSV for ``.tsv``/``.tab``/``.txt``); blank cells are missing."""
    path = Path(path)
    sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","
    df = pd.read_csv(path, sep=sep, dtype={"patient_id": str, "image": str, "mask": str, "modality": str})
    df.columns = [str(c).strip() for c in df.columns]
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].map(lambda v: v.strip() if isinstance(v, str) else v).replace("", np.nan)
    return df


def _record(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        out[k] = v.item() if hasattr(v, "item") else v
    return out


def sheet_problems(df: pd.DataFrame, schema_path: str | Path = SCHEMA_PATH, name: str = "image sheet"
                   ) -> dict[int, list[str]]:
    """Every way each row breaks the sheet schema, as sentences, keyed by row index (0-based)."""
    schema = load_schema(schema_path)
    out: dict[int, list[str]] = {}
    for i, row in enumerate(df.to_dict("records")):
        found = problems(_record(row), schema)
        if found:
            out[i] = [p.replace("(top level): ", "") for p in found]
    return out


def explain_sheet(df: pd.DataFrame, path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> str:
    """A readable account of what is wrong with the sheet (one line per problem)."""
    name = Path(path).name
    lines: list[str] = []
    required = ("patient_id", "image", "mask", "modality")
    absent = [c for c in required if c not in df.columns]
    if absent:
        lines.append(f"{name} has no column(s) {', '.join(repr(c) for c in absent)}; its columns are "
                     f"{', '.join(repr(c) for c in df.columns)} (required: {', '.join(required)})")
    for i, probs in sheet_problems(df, schema_path).items():
        pid = df.iloc[i].get("patient_id", "")
        who = f" (patient {pid})" if isinstance(pid, str) and pid else ""
        for p in probs:
            if absent and any(f"'{c}' is missing" in p for c in absent):
                continue
            lines.append(f"{name} line {i + 2}{who}: {p}")
    if not lines:
        return f"The image sheet {name} is valid."
    return "\n".join([f"The image sheet {name} has {len(lines)} problem(s):", *[f"  - {x}" for x in lines]])


def validate_sheet(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> pd.DataFrame:
    """Validate the sheet with ``snakemake.utils.validate``; raise ValueError with readable lines.

    Used by the workflow before anything runs (``workflow/rules/common.smk``).
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    df = read_sheet(path)
    try:
        validate(df.copy(), schema=str(Path(schema_path).resolve()), set_default=False)
    except WorkflowError as err:
        raise ValueError(explain_sheet(df, path, schema_path)) from err
    if df.empty:
        raise ValueError(f"The image sheet {Path(path).name} has no rows")
    return df


def _resolve(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def discover_sheet(path: str | Path, retest_max_days: int = default("robustness", "retest_max_days")) -> Discovery:
    """Scans of an image sheet, numbered and labelled like DICOM discovery.

    Rows that break the schema or name files that do not exist are excluded
    with a QC row naming the line and file; the other rows go on.
    """
    path = Path(path)
    disc = Discovery()
    rows = _usable_rows(disc, path, read_sheet(path))
    used: dict[str, str] = {}
    for pid in sorted(rows):
        spid = safe(pid)
        if spid in used and used[spid] != pid:
            _add_qc(disc, pid, "", "excluded", f"patient id {pid!r} gives the same file-name-safe id {spid!r} as "
                                               f"{used[spid]!r}; rename one of them")
            continue
        used[spid] = pid
        _patient_scans(disc, path, pid, rows[pid], retest_max_days)
    log.info("image sheet %s: %d scans of %d patients, %d QC rows", path.name, len(disc.scans),
             len({s.patient_id for s in disc.scans}), len(disc.qc))
    return disc


def _add_qc(disc: Discovery, pid: str, sid: str, status: str, reason: str) -> None:
    """Append one discovery QC row and log it."""
    disc.qc.append(qc_row(pid, sid, STAGE_DISCOVERY, status, reason))
    (log.warning if status == "excluded" else log.info)("discovery %s: %s", status, reason)


def _usable_rows(disc: Discovery, path: Path, df: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The sheet's rows by patient (line number and resolved file paths added); a QC row for each
    row that breaks the schema or names a file that does not exist."""
    base = path.parent
    bad = sheet_problems(df)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i, rec in enumerate(df.to_dict("records")):
        rec = _record(rec)
        line = i + 2
        pid = str(rec.get("patient_id", ""))
        if i in bad:
            _add_qc(disc, pid, "", "excluded", f"{path.name} line {line}: " + "; ".join(bad[i]))
            continue
        img, msk = _resolve(rec["image"], base), _resolve(rec["mask"], base)
        # the sheet line locates the file; its name (often the patient's) is not repeated
        missing = [f"{what} file" for what, p in (("image", img), ("mask", msk)) if not p.is_file()]
        if missing:
            _add_qc(disc, pid, "", "excluded", f"{path.name} line {line}: {' and '.join(missing)} not found "
                                               f"(paths are relative to the sheet's folder)")
            continue
        rows[pid].append({**rec, "line": line, "image": img.resolve(), "mask": msk.resolve()})
    return rows


def _patient_scans(disc: Discovery, path: Path, pid: str, rows: list[dict[str, Any]], retest_max_days: int) -> None:
    """Append one patient's scans, ordered by session, days from first and line."""
    spid = safe(pid)
    recs = sorted(rows, key=lambda r: (r.get("session", 1 << 30), r.get("days_from_first", 0), r["line"]))
    sessions = [r["session"] for r in recs if "session" in r]
    if len(set(sessions)) < len(sessions):
        _add_qc(disc, pid, "", "warning", f"patient {pid} has the same session number on several lines of "
                                          f"{path.name}; ordered by line")
    undated = len(recs) > 1 and any("days_from_first" not in r for r in recs[1:])
    for n, r in enumerate(recs, start=1):
        sid = f"{spid}_S{n}"
        days = float(r.get("days_from_first", 0.0)) if n > 1 else 0.0
        dated = not (undated and "days_from_first" not in r)
        disc.scans.append(ScanRecord(
            scan_id=sid, patient_id=pid, session=n, days_from_first=int(round(days)),
            modality=str(r["modality"]), series_uid="", study_uid="", n_images=1,
            image_files=[str(r["image"])], contour_file=str(r["mask"]), contour_type="MASK",
            cohort_root=str(path.parent.resolve()),
            hours_from_first=round(days * 24.0, 2), study_number=n,
            label=scan_label(n, int(round(days)), retest_max_days, dated),
            mask_label=int(r.get("mask_label", 0)),
        ))
        if n > 1 and not dated:
            _add_qc(disc, pid, sid, "warning", f"{path.name} line {r['line']}: no days_from_first for a repeat scan; "
                                               f"retest or follow-up cannot be told (set to 0 days)")
