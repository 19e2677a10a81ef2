"""The site guard: what may leave a hospital in a federated study.

Every answer a site sends goes through :class:`SiteGuard`. The rules are those
of issue #20:

* an aggregate is computed over at least ``min_patients`` patients (default 5);
  a request that would reveal a value computed from fewer is **refused** with
  :class:`PrivacyError`, never answered with a smaller number;
* no per-patient row, time or identifier leaves the site: no array in a message
  may have a dimension equal to the number of patients the site holds, and no
  value may be a string (identifiers) or a timestamp;
* optionally, Gaussian noise (the Gaussian mechanism of differential privacy)
  is added to the numeric aggregates before they leave; its effect on the
  fitted coefficients can be measured with :func:`noise_effect`.

The guard also keeps an audit log of every message it let through, so that a
site (or a test) can check afterwards what was shared.

The guard cannot make repeated aggregates of the same patients private on its
own: many rounds of Newton-Raphson share gradients and Hessians at different
coefficients. The ``min_patients`` rule and the "no patient dimension" rule are
the minimum that the issue asks for; the optional noise is the tool for a
formal guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Default smallest number of patients behind any shared aggregate.
DEFAULT_MIN_PATIENTS = 5


class PrivacyError(RuntimeError):
    """A site refused a request because answering it would reveal too little-aggregated data."""


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """Noise SD of the classical Gaussian mechanism (Dwork & Roth 2014, Thm A.1).

    ``sigma = sensitivity * sqrt(2 ln(1.25 / delta)) / epsilon``; valid for
    ``0 < epsilon < 1``. ``sensitivity`` is the L2 sensitivity of the shared
    aggregate: how much one patient can change it. For standardised features
    clipped to ``[-c, c]`` one patient changes a logistic gradient by at most
    ``c * sqrt(d)``; the caller must provide a bound that holds for its data.
    """
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1) for the Gaussian mechanism; got {epsilon}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1); got {delta}")
    if sensitivity <= 0:
        raise ValueError(f"sensitivity must be positive; got {sensitivity}")
    return sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon


@dataclass
class NoiseConfig:
    """Optional differential-privacy noise on a site's shared aggregates.

    Attributes
    ----------
    sigma
        SD of the Gaussian noise added to every numeric aggregate (use
        :func:`gaussian_sigma` to derive it from epsilon, delta and a
        sensitivity bound). Symmetric matrices receive symmetric noise.
    seed
        Seed of the site's noise generator (deterministic runs).
    """

    sigma: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sigma < 0:
            raise ValueError(f"noise sigma must be >= 0; got {self.sigma}")


#: Message keys that carry counts, sizes or settings, never noised.
_EXACT_KEYS = frozenset({"n", "n_events", "n_positive", "n_patients", "n_pairs", "kind", "site", "round"})


@dataclass
class SiteGuard:
    """Checks, optionally noises, and logs every message a site sends.

    Parameters
    ----------
    n_patients
        Number of patients the site holds (the "patient dimension" that no
        shared array may have).
    min_patients
        Smallest number of patients any shared aggregate may be computed from.
    noise
        Optional :class:`NoiseConfig` for differentially private answers.
    """

    n_patients: int
    min_patients: int = DEFAULT_MIN_PATIENTS
    noise: NoiseConfig | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.min_patients < 1:
            raise ValueError(f"min_patients must be >= 1; got {self.min_patients}")
        self._rng = np.random.default_rng(self.noise.seed if self.noise else 0)

    def require(self, count: int, what: str) -> None:
        """Refuse (raise :class:`PrivacyError`) unless ``count >= min_patients``.

        ``count`` is the number of patients behind the aggregate described by
        ``what``; zero is allowed only by the caller (empty cells reveal
        nothing about any patient's values).
        """
        if count < self.min_patients:
            raise PrivacyError(
                f"request refused: {what} would be computed from {count} patient(s), "
                f"fewer than the {self.min_patients} this site allows in any shared number"
            )

    def release(self, message: Mapping[str, Any], *, noised: bool = True) -> dict[str, Any]:
        """Check ``message``, add noise if configured, log and return what may leave.

        Raises :class:`PrivacyError` if any array has a dimension equal to the
        site's number of patients, or a value is text other than the message
        kind / site name.
        """
        out: dict[str, Any] = {}
        for key, value in message.items():
            if isinstance(value, str):
                if key not in ("kind", "site"):
                    raise PrivacyError(f"request refused: field {key!r} is text; no identifiers may leave a site")
                out[key] = value
                continue
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf":
                raise PrivacyError(f"request refused: field {key!r} is not numeric ({arr.dtype})")
            if self.n_patients in arr.shape and arr.ndim >= 1:
                raise PrivacyError(
                    f"request refused: field {key!r} has shape {arr.shape}, a dimension equal to the "
                    f"site's {self.n_patients} patients (a per-patient array may not leave the site)"
                )
            if noised and self.noise is not None and self.noise.sigma > 0 and key not in _EXACT_KEYS:
                arr = self._noised(arr.astype(float))
            out[key] = arr if arr.ndim else arr.item()
        self.log.append(dict(out))
        return out

    def _noised(self, arr: np.ndarray) -> np.ndarray:
        eps = self._rng.normal(0.0, self.noise.sigma, size=arr.shape)  # type: ignore[union-attr]
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and np.allclose(arr, arr.T):
            eps = (eps + eps.T) / math.sqrt(2.0)  # symmetric noise of the same SD off-diagonal
        return arr + eps


#: Message keys an audit record keeps with their values (counts, pair counts and labels); every
#: other field is recorded by its shape only, so the audit holds no aggregate's numbers.
AUDIT_VALUES = frozenset({"kind", "site", "n", "n_events", "n_positive", "n_pairs", "concordant", "discordant",
                          "tied_risk"})


def audit_record(site: str, sent: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """What the audit log records of one sent message ``sent``: the site, ``extra`` (run, message
    index), and per field its value (keys in :data:`AUDIT_VALUES`) or ``{"shape": [...]}``."""
    fields: dict[str, Any] = {}
    for key, value in sent.items():
        if key in AUDIT_VALUES:
            fields[key] = value.item() if isinstance(value, np.generic) else value
        else:
            fields[key] = {"shape": list(np.shape(value))}
    return {"site": site, **extra, "fields": fields}


def noise_effect(fit: Callable[[NoiseConfig | None], np.ndarray], noise: NoiseConfig,
                 repeats: int = 10) -> dict[str, float]:
    """Effect of differential-privacy noise on fitted coefficients.

    ``fit(noise_config)`` runs one federated fit and returns its coefficients;
    it is called once without noise and ``repeats`` times with noise seeds
    ``noise.seed, noise.seed + 1, ...``. Returns the mean and largest absolute
    coefficient change and the mean relative change (L2 norms), the figures a
    study reports next to the noise level.
    """
    exact = np.asarray(fit(None), dtype=float)
    diffs = []
    for r in range(repeats):
        noisy = np.asarray(fit(NoiseConfig(sigma=noise.sigma, seed=noise.seed + r)), dtype=float)
        diffs.append(noisy - exact)
    d = np.array(diffs)
    return {
        "sigma": float(noise.sigma),
        "repeats": int(repeats),
        "mean_abs_change": float(np.abs(d).mean()),
        "max_abs_change": float(np.abs(d).max()),
        "mean_relative_l2_change": float(np.mean(np.linalg.norm(d, axis=1)) / max(np.linalg.norm(exact), 1e-300)),
    }
