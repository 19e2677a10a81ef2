"""The per-feature robustness table every ICC analysis writes.

One row per feature of the matrix with its class and image type, the ICC and
its 95% CI, the ICC form, the design size (``n`` subjects, ``k`` raters) and
the ``robust`` flag (:func:`radsurv.robustness.icc.robust_mask` with the
settings' threshold). A feature the analysis could not assess (missing
anywhere) is not robust; an analysis with too few patients flags every
feature robust (:func:`not_assessed_table`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from radsurv.robustness.icc import robust_mask
from radsurv.robustness.selection import RobustnessSettings, feature_meta

TABLE_COLUMNS = ["feature", "feature_class", "image_type", "icc", "ci_low", "ci_high",
                 "form", "n", "k", "robust"]


def not_assessed_table(cols: list[str], form: str, n: int, k: int) -> pd.DataFrame:
    """The table of an analysis that could not be assessed: no ICC, every feature kept (robust)."""
    out = feature_meta(cols)
    for c in ("icc", "ci_low", "ci_high"):
        out[c] = np.nan
    out["form"], out["n"], out["k"], out["robust"] = form, n, k, True
    return out[TABLE_COLUMNS]


def finish_table(cols: list[str], table: pd.DataFrame, settings: RobustnessSettings, form: str,
                 n: int, k: int) -> pd.DataFrame:
    """Feature metadata + ICC table + robust flag; features absent from ``table`` are not robust."""
    table = table.copy()
    table["robust"] = np.asarray(robust_mask(table, threshold=settings.threshold,
                                             use_lower_bound=settings.use_lower_bound), dtype=bool)
    out = feature_meta(cols).merge(table[["feature", "icc", "ci_low", "ci_high", "robust"]],
                                   on="feature", how="left")
    out["robust"] = out["robust"].astype("boolean").fillna(False).astype(bool)
    out["form"], out["n"], out["k"] = form, n, k
    return out[TABLE_COLUMNS]
