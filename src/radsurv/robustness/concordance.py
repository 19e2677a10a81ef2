"""Lin's concordance correlation coefficient (CCC), vectorised over features.

An agreement measure for two measurements of the same subjects (e.g. a test
and a retest scan), reported next to the ICC (:mod:`radsurv.robustness.icc`).

References
----------
Lin LI-K (1989). A concordance correlation coefficient to evaluate
reproducibility. Biometrics 45(1):255-268.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lins_ccc"]


def lins_ccc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lin's (1989) concordance correlation coefficient, vectorised.

    ``rho_c = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)`` with the moment
    (1/n) estimators of Lin (1989, eq. 2/3). Computed along the last axis, so
    ``x`` and ``y`` of shape ``(n_features, n_subjects)`` give one value per
    feature; 1-D inputs give a 0-d array.

    Two identical constant vectors give NaN (0/0); two different constants give 0.

    Raises
    ------
    ValueError
        Shape mismatch, fewer than 2 subjects, NaN/inf values.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same shape; got {xa.shape} and {ya.shape}")
    if xa.ndim == 0 or xa.shape[-1] < 2:
        raise ValueError("Lin's CCC needs at least 2 subjects along the last axis")
    bad = ~(np.isfinite(xa) & np.isfinite(ya))
    if bad.any():
        rows = int(bad.reshape(-1, xa.shape[-1]).any(axis=1).sum())
        raise ValueError(f"missing or non-finite values in {int(bad.sum())} pairs ({rows} features)")
    mx = xa.mean(axis=-1, keepdims=True)
    my = ya.mean(axis=-1, keepdims=True)
    dx = xa - mx
    dy = ya - my
    sxy = (dx * dy).mean(axis=-1)
    sxx = np.square(dx).mean(axis=-1)
    syy = np.square(dy).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ccc = np.asarray(2.0 * sxy / (sxx + syy + np.square(mx - my)[..., 0]), dtype=float)
    # Exact constants (rounding in the mean could otherwise leave tiny spurious deviations).
    const_x = xa.max(axis=-1) == xa.min(axis=-1)
    const_y = ya.max(axis=-1) == ya.min(axis=-1)
    both = const_x & const_y
    same = both & (xa[..., 0] == ya[..., 0])
    ccc = np.where(both, 0.0, ccc)
    return np.where(same, np.nan, ccc)
