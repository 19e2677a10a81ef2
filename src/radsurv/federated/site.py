"""A hospital's side of a federated study, and an in-process federation of sites.

A :class:`Site` holds its patients' feature table and outcome and answers
requests (plain dictionaries: a ``kind`` and numeric arguments) with
aggregates only. Every answer goes through the site's
:class:`~radsurv.federated.privacy.SiteGuard`, which refuses aggregates of
fewer than ``min_patients`` patients and any per-patient array, and logs what
left. Transports (:class:`LocalFederation` here, Flower in
:mod:`radsurv.federated.flower`) only carry these dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from radsurv.federated.privacy import DEFAULT_MIN_PATIENTS, NoiseConfig, PrivacyError, SiteGuard

#: Request kinds a site answers.
KINDS = ("moments", "cox", "logistic", "concordance", "auc", "km_grid", "km", "icc_sums", "icc_squares")


class Site:
    """One hospital's data and its answers to federated requests.

    Parameters
    ----------
    name
        Site label (shared: it names the stratum).
    features
        Patients x features table (the site's own feature table).
    time, event
        Survival outcome (for Cox, C-index, KM), aligned with ``features``.
    label
        Binary outcome (for logistic regression, AUC).
    icc_data
        Repeated measurements ``(n_features, n_subjects, k)`` for the federated ICC.
    min_patients
        The guard's minimum number of patients behind any shared number.
    noise
        Optional differential-privacy noise on the shared aggregates.
    """

    def __init__(self, name: str, features: pd.DataFrame | None = None, *, time: Sequence[float] | None = None,
                 event: Sequence[int] | None = None, label: Sequence[int] | None = None,
                 icc_data: np.ndarray | None = None, min_patients: int = DEFAULT_MIN_PATIENTS,
                 noise: NoiseConfig | None = None) -> None:
        self.name = name
        self.features = features
        self.time = None if time is None else np.asarray(time, dtype=float)
        self.event = None if event is None else np.asarray(event).astype(int)
        self.label = None if label is None else np.asarray(label).astype(int)
        self.icc_data = None if icc_data is None else np.asarray(icc_data, dtype=float)
        n = len(features) if features is not None else (self.icc_data.shape[1] if self.icc_data is not None else 0)
        self.guard = SiteGuard(n_patients=n, min_patients=min_patients, noise=noise)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Every message this site has sent (the guard's audit log)."""
        return self.guard.log

    # --- helpers -------------------------------------------------------------------------------
    def _x(self, request: Mapping[str, Any]) -> np.ndarray:
        if self.features is None:
            raise ValueError(f"site {self.name} holds no feature table")
        names = list(request["features"])
        missing = [f for f in names if f not in self.features.columns]
        if missing:
            raise KeyError(f"site {self.name} has no feature(s) {missing}; every site must extract the study's features")
        return self.features[names].to_numpy(dtype=float)

    def _survival(self) -> tuple[np.ndarray, np.ndarray]:
        if self.time is None or self.event is None:
            raise ValueError(f"site {self.name} holds no survival outcome")
        return self.time, self.event

    def _risk(self, request: Mapping[str, Any]) -> np.ndarray:
        z = (self._x(request) - np.asarray(request["mean"], float)) / np.asarray(request["sd"], float)
        return z @ np.asarray(request["beta"], float)

    # --- the dispatcher ------------------------------------------------------------------------
    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one request with aggregates, or raise :class:`PrivacyError` / ``ValueError``."""
        kind = request.get("kind")
        g = self.guard
        # Imported per request kind: a Flower ClientApp process answers one message and exits.
        if kind == "moments":
            from radsurv.federated.standardise import site_moments
        elif kind == "cox":
            from radsurv.federated.cox import site_cox_derivatives
        elif kind == "logistic":
            from radsurv.federated.logistic import site_logistic_derivatives
        elif kind in ("concordance", "auc", "km", "km_grid"):
            from radsurv.federated.evaluation import (
                km_cells_too_small,
                site_auc_counts,
                site_concordance_counts,
                site_km_counts,
                site_km_grid,
            )
        elif kind in ("icc_sums", "icc_squares"):
            from radsurv.federated.icc import site_icc_squares, site_icc_sums
        if kind == "moments":
            x = self._x(request)
            g.require(len(x), "feature means and variances")
            return g.release({"kind": kind, **site_moments(x)})
        if kind == "cox":
            x = self._x(request)
            time, event = self._survival()
            g.require(len(x), "Cox gradient and Hessian")
            g.require(int(event.sum()), "Cox gradient and Hessian (events)")
            # Censored patients enter only through risk-set sums, never as a sum of their own: no minimum.
            out = site_cox_derivatives(x, time, event, np.asarray(request["beta"], float),
                                       np.asarray(request["mean"], float), np.asarray(request["sd"], float))
            return g.release({"kind": kind, **out})
        if kind == "logistic":
            x = self._x(request)
            if self.label is None:
                raise ValueError(f"site {self.name} holds no binary outcome")
            g.require(int(self.label.sum()), "logistic gradient (positive patients)")
            g.require(int(len(self.label) - self.label.sum()), "logistic gradient (negative patients)")
            out = site_logistic_derivatives(x, self.label, np.asarray(request["coef"], float),
                                            float(request["intercept"]), np.asarray(request["mean"], float),
                                            np.asarray(request["sd"], float))
            return g.release({"kind": kind, **out})
        if kind == "concordance":
            time, event = self._survival()
            g.require(int(event.sum()), "the concordance counts (events)")
            return g.release({"kind": kind, **site_concordance_counts(time, event, self._risk(request))},
                             noised=False)
        if kind == "auc":
            if self.label is None:
                raise ValueError(f"site {self.name} holds no binary outcome")
            g.require(int(self.label.sum()), "the AUC counts (positive patients)")
            g.require(int(len(self.label) - self.label.sum()), "the AUC counts (negative patients)")
            z = (self._x(request) - np.asarray(request["mean"], float)) / np.asarray(request["sd"], float)
            score = z @ np.asarray(request["coef"], float)
            return g.release({"kind": kind, **site_auc_counts(self.label, score)}, noised=False)
        if kind == "km_grid":
            time, event = self._survival()
            cut = np.asarray(request["cutoffs"], float)
            group = np.searchsorted(cut, self._risk(request), side="right")
            accepted = site_km_grid(time, event, group, len(cut) + 1, np.asarray(request["grid"], float),
                                    g.min_patients)
            return g.release({"kind": kind, "grid": accepted}, noised=False)
        if kind == "km":
            time, event = self._survival()
            cut = np.asarray(request["cutoffs"], float)
            group = np.searchsorted(cut, self._risk(request), side="right")
            counts = site_km_counts(time, event, group, len(cut) + 1, np.asarray(request["grid"], float))
            if km_cells_too_small(counts, g.min_patients):
                raise PrivacyError(f"request refused by site {self.name}: the requested time bins leave a cell with "
                                   f"fewer than {g.min_patients} patients; use wider bins")
            return g.release({"kind": kind, **counts}, noised=False)
        if kind in ("icc_sums", "icc_squares"):
            if self.icc_data is None:
                raise ValueError(f"site {self.name} holds no repeated measurements for the ICC")
            g.require(self.icc_data.shape[1], "ICC sums of squares")
            if kind == "icc_sums":
                return g.release({"kind": kind, **site_icc_sums(self.icc_data)})
            return g.release({"kind": kind, **site_icc_squares(self.icc_data, np.asarray(request["grand"], float),
                                                               np.asarray(request["col_means"], float))})
        raise ValueError(f"unknown request kind {kind!r}; a site answers {', '.join(KINDS)}")


class LocalFederation:
    """All sites in this process: the reference transport for tests and single-machine studies.

    Requests are deep-copied numpy values in and out, as a network transport
    would do, so a site cannot alter the server's state.
    """

    def __init__(self, sites: Sequence[Site]) -> None:
        names = [s.name for s in sites]
        if len(set(names)) != len(names):
            raise ValueError(f"site names must be unique; got {names}")
        self._sites = {s.name: s for s in sites}
        self.requests = 0

    @property
    def site_names(self) -> list[str]:
        return list(self._sites)

    def site(self, name: str) -> Site:
        return self._sites[name]

    def ask(self, request: Mapping[str, Any], sites: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        self.requests += 1
        chosen = list(sites) if sites is not None else self.site_names
        req = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in request.items()}
        return {name: self._sites[name].handle(req) for name in chosen}
