"""Newton-Raphson with step halving on summed site derivatives (shared by Cox and logistic).

The server only ever sees the federation's summed log-likelihood, gradient and Hessian at the
coefficients it proposes; ``evaluate`` asks the sites for them (one round each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg

#: ``evaluate(x) -> (loglik, gradient, hessian, extra)``: ``extra`` is whatever the caller
#: wants back from the last round (e.g. the names of the sites that answered).
Evaluate = Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray, Any]]


@dataclass
class NewtonResult:
    x: np.ndarray
    loglik: float
    hessian: np.ndarray
    extra: Any
    rounds: int
    converged: bool
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (round, loglik, step norm)


def newton_maximise(evaluate: Evaluate, x0: np.ndarray, *, tol: float, max_rounds: int,
                    singular: str) -> NewtonResult:
    """Maximise a concave penalised log-likelihood from ``x0``.

    Stops when the Newton step's L2 norm is below ``tol`` (``converged``) or after
    ``max_rounds`` calls of ``evaluate``. A step that lowers the log-likelihood is halved
    (down to 1e-6 of itself). ``singular``: the message of the ``RuntimeError`` raised when
    the Hessian cannot be solved (collinear features, perfect separation).
    """
    x = np.asarray(x0, dtype=float)
    ll, g, h, extra = evaluate(x)
    rounds, history, converged = 1, [], False
    while rounds < max_rounds:
        try:
            step = linalg.solve(-h, g, assume_a="pos")
        except (linalg.LinAlgError, ValueError) as exc:
            raise RuntimeError(singular) from exc
        norm = float(np.linalg.norm(step))
        history.append((rounds, ll, norm))
        if norm < tol:
            converged = True
            break
        scale = 1.0
        while True:  # step halving: the objective is concave, a full step rarely fails
            cand = x + scale * step
            ll_new, g_new, h_new, extra_new = evaluate(cand)
            rounds += 1
            if ll_new >= ll - 1e-12 * abs(ll) or scale < 1e-6 or rounds >= max_rounds:
                break
            scale /= 2
        x, ll, g, h, extra = cand, ll_new, g_new, h_new, extra_new
    return NewtonResult(x=x, loglik=ll, hessian=h, extra=extra, rounds=rounds, converged=converged,
                        history=history)
