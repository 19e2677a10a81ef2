"""Federated ICC for robust-feature selection: ANOVA sums of squares add up across sites.

:mod:`radsurv.robustness.icc` computes the two-way ANOVA (subjects x raters) sums of
squares from deviations (two passes). Here the same two passes run across
sites:

1. each site shares, per feature, its number of subjects and its per-rater
   column sums; the server derives the pooled grand mean and rater means;
2. each site shares, per feature, its parts of ``SSR = k sum (row - grand)^2``,
   ``SSE = sum (x - row - col + grand)^2``, ``SSW = sum (x - row)^2`` and
   ``SST = sum (x - grand)^2``, computed with the pooled means; ``SSC`` follows
   from the rater means at the server.

The mean squares then go through :mod:`radsurv.robustness.icc`'s own estimator, so every
form, F test and confidence interval equals the central computation on the
pooled subjects.

``within_sites=True``: the subjects are nested in their site (the site is the batch: its
scanner's offset moves test and retest alike and would otherwise count as between-subject
variation). Each site then sends as its SSR ``k sum (row - site mean of rows)^2``, its
within-site part; the pooled within-site SSR has ``n - S`` df (``S`` sites), as
:func:`radsurv.robustness.icc.icc` with ``groups`` = the site of each subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from radsurv.federated.cox import Federation
from radsurv.robustness.icc import ICCResult, _from_mean_squares, _MeanSquares, _validate, canonical_form


def site_icc_sums(data: np.ndarray) -> dict[str, Any]:
    """Site pass 1: ``n`` subjects and per-feature, per-rater sums ``(F, k)`` of ``data`` ``(F, n, k)``."""
    arr = _validate(data)
    return {"n": int(arr.shape[1]), "col_sums": arr.sum(axis=1)}


def site_icc_squares(data: np.ndarray, grand: np.ndarray, col_means: np.ndarray,
                     within_site: bool = False) -> dict[str, Any]:
    """Site pass 2: the site's parts of SSR, SSE, SSW and SST with the pooled means; with
    ``within_site`` its SSR is taken around the site's own mean of the subject means."""
    arr = _validate(data)
    k = arr.shape[2]
    g = np.asarray(grand, dtype=float)[:, None, None]
    col = np.asarray(col_means, dtype=float)[:, None, :]
    row = arr.mean(axis=2, keepdims=True)
    centre = row.mean(axis=1, keepdims=True) if within_site else g
    return {
        "n": int(arr.shape[1]),
        "ssr": k * np.square(row - centre).sum(axis=(1, 2)),
        "sse": np.square(arr - row - col + g).sum(axis=(1, 2)),
        "ssw": np.square(arr - row).sum(axis=(1, 2)),
        "sst": np.square(arr - g).sum(axis=(1, 2)),
    }


def federated_icc(fed: Federation, form: str = "ICC(3,1)", alpha: float = 0.05, *,
                  sites: Sequence[str] | None = None, within_sites: bool = False) -> ICCResult:
    """ICC of every robustness feature over the subjects of all sites (two federated rounds);
    ``within_sites``: subjects nested in their site (module docstring)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    first = fed.ask({"kind": "icc_sums"}, sites=sites)
    n = sum(int(a["n"]) for a in first.values())
    col_sums = sum(np.asarray(a["col_sums"], dtype=float) for a in first.values())
    k = col_sums.shape[1]
    col_means = col_sums / n
    grand = col_means.mean(axis=1)
    second = fed.ask({"kind": "icc_squares", "grand": grand, "col_means": col_means, "within_site": within_sites},
                     sites=sites)
    ssr, sse, ssw, sst = (sum(np.asarray(a[key], dtype=float) for a in second.values())
                          for key in ("ssr", "sse", "ssw", "sst"))
    ssc = n * np.square(col_means - grand[:, None]).sum(axis=1)
    df_subjects = n - len(second) if within_sites else n - 1
    if df_subjects < 1:
        raise ValueError(f"{n} subjects at {len(second)} sites: the ICC within sites needs a site with two or more")
    ms = _MeanSquares(msr=ssr / df_subjects, msc=ssc / (k - 1), mse=sse / ((n - 1) * (k - 1)),
                      msw=ssw / (n * (k - 1)), constant=sst == 0, n=n, k=k, df_subjects=df_subjects)
    return _from_mean_squares(ms, canonical_form(form, k=k), alpha)
