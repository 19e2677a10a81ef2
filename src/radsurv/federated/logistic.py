"""Exact federated logistic regression (binary endpoints).

scikit-learn's ``LogisticRegression(C=C)`` (L2 penalty, lbfgs / newton
solvers) minimises ``0.5 ||w||^2 + C * sum_i logloss_i`` with the intercept
**not** penalised. The log-loss is a sum over patients, so its gradient and
Hessian are sums of per-site gradients and Hessians; Newton-Raphson on the
summed derivatives reaches scikit-learn's optimum exactly. Features are
standardised with the pooled federated mean and SD first (as a central
pipeline would with ``StandardScaler``, except that ``StandardScaler`` uses
``ddof = 0``: pass ``ddof=0`` to reproduce it).
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from radsurv.federated.cox import Federation
from radsurv.federated.newton import newton_maximise
from radsurv.federated.standardise import PooledMoments, pool_moments


def site_logistic_derivatives(x: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float,
                              mean: np.ndarray, sd: np.ndarray) -> dict[str, Any]:
    """Site side: log-likelihood, gradient and Hessian of the summed log-loss in ``(w, b)``.

    The design has the intercept as its last column; the gradient is of the
    log-likelihood (``-logloss``) so that Newton maximises.
    """
    z = (np.asarray(x, dtype=float) - mean) / sd
    y = np.asarray(y, dtype=float)
    design = np.hstack([z, np.ones((z.shape[0], 1))])
    eta = design @ np.append(coef, intercept)
    p = expit(eta)
    ll = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    grad = design.T @ (y - p)
    hess = -(design * (p * (1 - p))[:, None]).T @ design
    return {"n": int(len(y)), "n_positive": int(y.sum()), "loglik": ll, "gradient": grad, "hessian": hess}


@dataclass
class FederatedLogisticResult:
    """A federated logistic fit.

    ``coef_std`` / ``intercept_std`` are on the standardised scale (compare
    them with scikit-learn fitted on the standardised pooled table); ``coef`` /
    ``intercept`` are per unit of the original features.
    """

    features: list[str]
    coef_std: np.ndarray
    intercept_std: float
    coef: np.ndarray
    intercept: float
    moments: PooledMoments
    C: float
    rounds: int
    seconds: float
    converged: bool


def fit_logistic(fed: Federation, features: Sequence[str], C: float = 1.0, *, sites: Sequence[str] | None = None,
                 ddof: int = 1, tol: float = 1e-10, max_rounds: int = 100,
            strict: bool = True) -> FederatedLogisticResult:
    """Fit L2-penalised logistic regression (scikit-learn's ``C``) by Newton-Raphson on summed site derivatives.

    ``ddof`` selects the SD used to standardise (1: pandas / lifelines, 0:
    scikit-learn's ``StandardScaler``).
    """
    if C <= 0:
        raise ValueError(f"C must be positive (smaller C = stronger penalty); got {C}")
    start = _time.perf_counter()
    features = list(features)
    moments = pool_moments(fed.ask({"kind": "moments", "features": features}, sites=sites).values())
    if ddof == 0:
        moments = PooledMoments(n=moments.n, mean=moments.mean,
                                sd=moments.sd * np.sqrt((moments.n - 1) / moments.n))
    d = len(features)
    pen = np.full(d + 1, 1.0 / C)
    pen[-1] = 0.0  # intercept unpenalised

    def evaluate(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, None]:
        answers = fed.ask({"kind": "logistic", "features": features, "mean": moments.mean, "sd": moments.sd,
                           "coef": theta[:-1], "intercept": float(theta[-1])}, sites=sites)
        ll = sum(float(a["loglik"]) for a in answers.values()) - 0.5 * float(pen @ theta**2)
        g = sum(np.asarray(a["gradient"], dtype=float) for a in answers.values()) - pen * theta
        h = sum(np.asarray(a["hessian"], dtype=float) for a in answers.values()) - np.diag(pen)
        return ll, g, h, None

    fit = newton_maximise(evaluate, np.zeros(d + 1), tol=tol, max_rounds=max_rounds, singular=(
        "the logistic model cannot be fitted: the outcome is perfectly separated or the features are "
        "collinear; use a smaller C (stronger penalty)"))
    theta, rounds, converged = fit.x, fit.rounds, fit.converged
    if not converged and strict:
        raise RuntimeError(f"the federated logistic fit did not converge in {max_rounds} rounds; try a smaller C")
    w, b = theta[:-1], float(theta[-1])
    return FederatedLogisticResult(
        features=features, coef_std=w.copy(), intercept_std=b, coef=w / moments.sd,
        intercept=b - float(np.sum(w * moments.mean / moments.sd)), moments=moments, C=float(C),
        rounds=rounds, seconds=_time.perf_counter() - start, converged=converged,
    )
