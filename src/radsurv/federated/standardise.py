"""Feature standardisation from federated sums.

Each site shares, per feature, its number of patients, the sum of its values
and the sum of squared deviations from its own mean; the server pools them with
the parallel-variance formula of Chan, Golub & LeVeque (1979), which is exact
(up to rounding) and avoids the cancellation of "sum of squares minus squared
sum". The pooled standard deviation uses ``ddof = 1``, as pandas' ``std`` and
hence lifelines' internal standardisation do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def site_moments(x: np.ndarray) -> dict[str, Any]:
    """Site side: ``n``, per-feature ``sum`` and ``m2`` (sum of squared deviations from the site mean)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"expected a (patients x features) table; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("the feature table has missing or non-finite values: impute or drop them at the site first")
    mean = x.mean(axis=0)
    return {"n": int(x.shape[0]), "sum": x.sum(axis=0), "m2": np.square(x - mean).sum(axis=0)}


@dataclass(frozen=True)
class PooledMoments:
    """Pooled per-feature mean and standard deviation (``ddof = 1``) over all sites."""

    n: int
    mean: np.ndarray
    sd: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardise ``x`` with the pooled mean and SD (for checks on pooled data)."""
        return (np.asarray(x, dtype=float) - self.mean) / self.sd


def pool_moments(answers: Iterable[Mapping[str, Any]]) -> PooledMoments:
    """Server side: combine the sites' :func:`site_moments` answers.

    Raises ``ValueError`` (in words a study lead understands) when a feature
    has no spread over all sites, since it cannot be standardised.
    """
    answers = list(answers)
    if not answers:
        raise ValueError("no site answered the request for feature means")
    ns = np.array([a["n"] for a in answers], dtype=float)
    sums = np.array([np.asarray(a["sum"], dtype=float) for a in answers])
    m2s = np.array([np.asarray(a["m2"], dtype=float) for a in answers])
    n = ns.sum()
    mean = sums.sum(axis=0) / n
    site_means = sums / ns[:, None]
    m2 = m2s.sum(axis=0) + (ns[:, None] * np.square(site_means - mean)).sum(axis=0)
    if n < 2:
        raise ValueError("at least two patients are needed over all sites to standardise features")
    sd = np.sqrt(m2 / (n - 1))
    if np.any(sd == 0):
        raise ValueError(f"{int(np.sum(sd == 0))} feature(s) have the same value in every patient of every site "
                         "and cannot be standardised or used in a model: remove them from the study")
    return PooledMoments(n=int(n), mean=mean, sd=sd)
