"""Exact federated Cox regression stratified by site.

The partial likelihood of a Cox model stratified by site is a *sum over
sites*: each site has its own baseline hazard and its own risk sets. Its
gradient and Hessian are therefore sums of per-site gradients and Hessians,
and Newton-Raphson on the summed derivatives reaches exactly the coefficients
of the pooled stratified fit (Bogowicz et al. 2020; Lu et al. 2015, WebDISCO).
Only ``d``-vectors and ``d x d`` matrices leave a site.

Matching lifelines' ``CoxPHFitter(penalizer=p, l1_ratio=0, strata=...)``
----------------------------------------------------------------------------
lifelines 0.30:

* standardises every covariate internally with the pooled mean and SD
  (``ddof = 1``), fits on the standardised scale, and divides the coefficients
  by the SDs afterwards;
* handles tied event times with **Efron's** method (its "breslow" option names
  the baseline-hazard estimator, not the tie method);
* maximises ``loglik(beta_std) - n * p * 0.5 * ||beta_std||^2`` with ``n`` the
  total number of patients, i.e. the ridge penalty acts on the *standardised*
  coefficients and scales with the sample size.

:func:`fit_cox` does the same with federated sums: pooled mean and SD from
:mod:`radsurv.federated.standardise`, Efron derivatives per site
(:func:`site_cox_derivatives`) and the same penalty on the summed derivatives.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import linalg

from radsurv.federated.newton import newton_maximise
from radsurv.federated.standardise import PooledMoments, pool_moments


class Federation(Protocol):
    """A way to ask every (or some) site the same question; see :mod:`radsurv.federated.site`."""

    @property
    def site_names(self) -> list[str]: ...

    def ask(self, request: Mapping[str, Any], sites: Sequence[str] | None = None) -> dict[str, dict[str, Any]]: ...


def efron_derivatives(z: np.ndarray, time: np.ndarray, event: np.ndarray,
                      beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Efron partial log-likelihood, gradient and Hessian of one stratum.

    ``z`` is the (standardised) covariate matrix ``(n, d)``. Returns the
    log-likelihood (a sum over events, not a mean), the gradient ``(d,)`` and
    the Hessian ``(d, d)`` (negative semi-definite).
    """
    z = np.asarray(z, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    n, d = z.shape
    order = np.argsort(-time, kind="stable")  # descending: risk sets are prefixes
    z, time, event = z[order], time[order], event[order]
    eta = z @ beta
    phi = np.exp(eta)
    # risk-set sums for every prefix (patients with time >= t)
    s0 = np.cumsum(phi)
    s1 = np.cumsum(phi[:, None] * z, axis=0)
    s2 = np.cumsum(phi[:, None, None] * (z[:, :, None] * z[:, None, :]), axis=0)
    ll = 0.0
    grad = np.zeros(d)
    hess = np.zeros((d, d))
    event_times = np.unique(time[event])
    # index of the last patient with time >= t (prefix end) for each event time
    ends = np.searchsorted(-time, -event_times, side="right") - 1
    for t, end in zip(event_times, ends):
        tied = (time == t) & event
        m = int(tied.sum())
        d0 = phi[tied].sum()
        d1 = (phi[tied, None] * z[tied]).sum(axis=0)
        d2 = (phi[tied, None, None] * (z[tied][:, :, None] * z[tied][:, None, :])).sum(axis=0)
        ll += eta[tied].sum()
        grad += z[tied].sum(axis=0)
        for ell in range(m):
            a = ell / m
            r0 = s0[end] - a * d0
            r1 = s1[end] - a * d1
            r2 = s2[end] - a * d2
            ll -= np.log(r0)
            grad -= r1 / r0
            hess -= r2 / r0 - np.outer(r1, r1) / r0**2
    return float(ll), grad, hess


def site_cox_derivatives(x: np.ndarray, time: np.ndarray, event: np.ndarray, beta: np.ndarray,
                         mean: np.ndarray, sd: np.ndarray) -> dict[str, Any]:
    """Site side: Efron derivatives of the site's stratum at ``beta`` on the pooled standardised scale."""
    z = (np.asarray(x, dtype=float) - mean) / sd
    ll, g, h = efron_derivatives(z, time, event, np.asarray(beta, dtype=float))
    return {"n": int(z.shape[0]), "n_events": int(np.sum(event)), "loglik": ll, "gradient": g, "hessian": h}


@dataclass
class FederatedCoxResult:
    """A federated Cox fit stratified by site.

    Attributes
    ----------
    features
        Covariate names, in coefficient order.
    coef
        Coefficients per unit of the original feature (as lifelines' ``params_``).
    coef_std
        Coefficients on the standardised scale (per pooled SD).
    se
        Standard errors of ``coef`` from the inverse penalised Hessian (as lifelines).
    moments
        Pooled means / SDs used for standardisation.
    penalizer
        lifelines-style ridge penaliser ``p``.
    loglik
        Penalised partial log-likelihood at the optimum.
    rounds
        Derivative rounds (one request to every site each), the standardisation round excluded.
    seconds
        Wall time of the fit.
    converged
        Whether the Newton step fell below the tolerance.
    history
        ``(round, penalised loglik, step norm)`` per round.
    """

    features: list[str]
    coef: np.ndarray
    coef_std: np.ndarray
    se: np.ndarray
    moments: PooledMoments
    penalizer: float
    loglik: float
    rounds: int
    seconds: float
    converged: bool
    sites: list[str]
    history: list[tuple[int, float, float]] = field(default_factory=list)

    def linear_predictor_payload(self) -> dict[str, Any]:
        """What a site needs to score its own patients: standardised coefficients, mean, SD."""
        return {"beta": self.coef_std, "mean": self.moments.mean, "sd": self.moments.sd}


def _sum_answers(answers: Mapping[str, Mapping[str, Any]]) -> tuple[float, np.ndarray, np.ndarray, int]:
    ll = sum(float(a["loglik"]) for a in answers.values())
    g = sum(np.asarray(a["gradient"], dtype=float) for a in answers.values())
    h = sum(np.asarray(a["hessian"], dtype=float) for a in answers.values())
    n = sum(int(a["n"]) for a in answers.values())
    return ll, g, h, n


def fit_cox(fed: Federation, features: Sequence[str], penalizer: float = 0.0, *,
            sites: Sequence[str] | None = None, tol: float = 1e-10, max_rounds: int = 100,
            strict: bool = True) -> FederatedCoxResult:
    """Fit a Cox model stratified by site by Newton-Raphson on summed site derivatives.

    Parameters
    ----------
    fed
        The federation (in-process sites or Flower).
    features
        Feature names every site holds.
    penalizer
        Ridge penaliser ``p`` with lifelines' definition (``n p / 2 ||beta_std||^2``).
    sites
        Subset of sites to fit on (e.g. for leave-one-site-out); default all.
    tol
        Convergence when the Newton step's L2 norm (standardised scale) is below ``tol``.
    max_rounds
        Give up after this many derivative rounds.
    strict
        Raise when not converged (default). ``False`` returns the last iterate
        with ``converged=False``: fits on noised (differentially private)
        aggregates never reach ``tol``.

    Raises
    ------
    RuntimeError
        No convergence (message says what to try).
    """
    if penalizer < 0:
        raise ValueError(f"the penaliser must be >= 0; got {penalizer}")
    start = _time.perf_counter()
    features = list(features)
    moments = pool_moments(fed.ask({"kind": "moments", "features": features}, sites=sites).values())
    d = len(features)
    n = moments.n
    payload = {"kind": "cox", "features": features, "mean": moments.mean, "sd": moments.sd}

    def evaluate(beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, list[str]]:
        answers = fed.ask({**payload, "beta": beta}, sites=sites)
        ll, g, h, _ = _sum_answers(answers)
        ll -= 0.5 * n * penalizer * float(beta @ beta)
        g = g - n * penalizer * beta
        h = h - n * penalizer * np.eye(d)
        return ll, g, h, list(answers)

    fit = newton_maximise(evaluate, np.zeros(d), tol=tol, max_rounds=max_rounds, singular=(
        "the Cox model cannot be fitted: the features are (nearly) collinear or a feature separates "
        "the outcomes perfectly; use fewer features or a larger penaliser"))
    beta, ll, h, names, rounds, converged = fit.x, fit.loglik, fit.hessian, fit.extra, fit.rounds, fit.converged
    if not converged and strict:
        raise RuntimeError(f"the federated Cox fit did not converge in {max_rounds} rounds; "
                           "try a larger penaliser or fewer features")
    cov_std = linalg.inv(-h)
    return FederatedCoxResult(
        features=features, coef=beta / moments.sd, coef_std=beta.copy(),
        se=np.sqrt(np.diag(cov_std)) / moments.sd, moments=moments, penalizer=float(penalizer),
        loglik=ll, rounds=rounds, seconds=_time.perf_counter() - start, converged=converged,
        sites=names, history=fit.history,
    )
