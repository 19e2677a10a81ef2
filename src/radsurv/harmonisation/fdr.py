"""Benjamini-Hochberg q-values for a table of per-feature tests (scipy's implementation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control


def with_bh_qvalues(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """``table`` (a column ``p``) with ``q_bh`` (Benjamini-Hochberg over the finite p-values;
    NaN where ``p`` is NaN) and ``significant`` (``q_bh < alpha``), in place and returned."""
    q = np.full(len(table), np.nan)
    fin = np.isfinite(table["p"].to_numpy(dtype=float))
    if fin.any():
        q[fin] = false_discovery_control(table.loc[fin, "p"].to_numpy(dtype=float), method="bh")
    table["q_bh"] = q
    table["significant"] = table["q_bh"] < float(alpha)
    return table
