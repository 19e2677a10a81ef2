"""The cohort feature matrix: per-scan result files in, one table out.

Each per-scan extraction job writes one JSON file (:func:`write_scan_features`);
:func:`assemble` reads them all into the feature and diagnostics matrices, and
:func:`volume_correlation` flags features that merely follow tumour volume.
This module needs numpy and pandas only (no SimpleITK, pyradiomics or scipy),
so assembling the matrix does not pay for the extraction libraries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radsurv.features.names import META_COLUMNS, feature_class, feature_columns, image_type

if TYPE_CHECKING:  # annotations only: pandas costs a per-scan job 0.4 s to import
    import pandas as pd

#: Pipeline stage named in the QC rows of scans that failed extraction.
STAGE = "extraction"


def write_scan_features(path: str | Path, scan_id: str, patient_id: str, session: int,
                        ok: bool, reason: str = "", features: Mapping[str, float] | None = None,
                        diagnostics: Mapping[str, Any] | None = None) -> None:
    """Per-scan result file (JSON): features when ``ok``, otherwise the reason."""
    payload = {
        "scan_id": scan_id,
        "patient_id": patient_id,
        "session": int(session),
        "ok": bool(ok),
        "reason": reason,
        "features": dict(features or {}),
        "diagnostics": dict(diagnostics or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, sort_keys=True, default=str))


def assemble(scan_files: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, str]]]:
    """Cohort matrices from per-scan files: ``(features, diagnostics, qc_rows)``.

    ``features`` is indexed by ``scan_id`` with ``patient_id`` and ``session``
    as the first columns, then the feature columns sorted by name. Scans that
    failed upstream become QC rows (status ``excluded``) with their reason.
    """
    import pandas as pd

    from radsurv.qc import qc_row

    feats: list[dict[str, Any]] = []
    diags: list[dict[str, Any]] = []
    qc: list[dict[str, str]] = []
    for f in scan_files:
        rec = json.loads(Path(f).read_text())
        base = {"scan_id": rec["scan_id"], "patient_id": rec["patient_id"], "session": rec["session"]}
        if not rec["ok"]:
            qc.append(qc_row(rec["patient_id"], rec["scan_id"], rec.get("stage", STAGE), "excluded", rec["reason"]))
            continue
        feats.append({**base, **rec["features"]})
        diags.append({**base, **rec["diagnostics"]})
    meta = list(META_COLUMNS)
    fdf = pd.DataFrame(feats)
    if fdf.empty:
        fdf = pd.DataFrame(columns=meta)
    cols = meta + sorted(c for c in fdf.columns if c not in meta)
    fdf = fdf[cols].sort_values("scan_id").set_index("scan_id")
    ddf = pd.DataFrame(diags, columns=None if diags else meta)
    if not ddf.empty:
        ddf = ddf.sort_values("scan_id").set_index("scan_id")
    return fdf, ddf, qc


def volume_correlation(matrix: pd.DataFrame, volume_feature: str = "original_shape_MeshVolume",
                       threshold: float = 0.9) -> pd.DataFrame:
    """Spearman correlation of every feature with tumour volume across the cohort.

    ``matrix`` has one row per patient (e.g. each patient's first scan) and
    feature columns. Many texture features grow or shrink with the number of
    voxels; one with ``|rho| >= threshold`` carries little beyond volume and is
    flagged ``volume_surrogate``. Returns one row per feature (the volume
    feature itself included, rho 1): feature, image_type, feature_class, n,
    spearman_rho, abs_rho, p (:func:`scipy.stats.spearmanr`; rank-based, so the
    same with log volume), q_bh (Benjamini-Hochberg across the features; the
    volume feature itself is not tested), volume_associated (``q_bh < 0.05``),
    volume_surrogate; sorted by ``abs_rho`` descending. Constant features get
    rho NaN and are not flagged.
    """
    import pandas as pd
    from scipy.stats import spearmanr

    from radsurv.harmonisation.fdr import with_bh_qvalues

    has_meta = "session" in matrix.columns or "patient_id" in matrix.columns
    cols = feature_columns(matrix) if has_meta else list(matrix.columns)
    if volume_feature not in cols:
        raise ValueError(f"volume feature {volume_feature!r} is not in the feature matrix")
    data = matrix[cols].apply(pd.to_numeric, errors="coerce")
    vol = data[volume_feature]
    rows = []
    for name in cols:
        ok = data[name].notna() & vol.notna()
        x, y = data.loc[ok, name], vol[ok]
        n = int(ok.sum())
        rho, p = float("nan"), float("nan")
        if n >= 3 and x.std() > 0 and y.std() > 0:
            res = spearmanr(x, y)
            rho, p = float(res.statistic), float(res.pvalue) if name != volume_feature else float("nan")
        rows.append({"feature": name, "image_type": image_type(name), "feature_class": feature_class(name),
                     "n": n, "spearman_rho": rho, "p": p})
    out = pd.DataFrame(rows)
    out["abs_rho"] = out["spearman_rho"].abs()
    out = with_bh_qvalues(out).rename(columns={"significant": "volume_associated"})
    out["volume_surrogate"] = out["abs_rho"] >= threshold
    return out.sort_values(["abs_rho", "feature"], ascending=[False, True], na_position="last").reset_index(drop=True)
