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
KINDS = ("counts", "moments", "cox", "logistic", "concordance", "auc", "km_grid", "km", "icc_sums", "icc_squares")


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
            raise KeyError(f"site {self.name} has no feature(s) {missing}; every site must extract the study's "
                           "features")
        return self.features[names].to_numpy(dtype=float)

    def _survival(self) -> tuple[np.ndarray, np.ndarray]:
        if self.time is None or self.event is None:
            raise ValueError(f"site {self.name} holds no survival outcome")
        return self.time, self.event

    def _risk(self, request: Mapping[str, Any]) -> np.ndarray:
        z = (self._x(request) - np.asarray(request["mean"], float)) / np.asarray(request["sd"], float)
        return z @ np.asarray(request["beta"], float)

    def _binary_label(self) -> np.ndarray:
        if self.label is None:
            raise ValueError(f"site {self.name} holds no binary outcome")
        return self.label

    def _groups(self, request: Mapping[str, Any]) -> tuple[np.ndarray, int]:
        """Risk group of each patient under the request's cut-offs, and the number of groups."""
        cut = np.asarray(request["cutoffs"], float)
        return np.searchsorted(cut, self._risk(request), side="right"), len(cut) + 1

    # --- one answer per request kind ------------------------------------------------------------
    # The site functions are imported per request kind: a Flower ClientApp process answers one
    # message and exits.
    def _counts(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The site's numbers of patients and events (survival) or positives (binary), each only
        when it is at least ``min_patients``: the study's admission check and the report's
        sites table. ``request["endpoint"]``: ``survival`` (default) or ``binary``."""
        g = self.guard
        n = len(self.features) if self.features is not None else 0
        g.require(n, "the number of patients")
        if request.get("endpoint", "survival") == "binary":
            label = self._binary_label()
            g.require(int(label.sum()), "the number of positive patients")
            g.require(int(len(label) - label.sum()), "the number of negative patients")
            return g.release({"kind": "counts", "n": n, "n_positive": int(label.sum())}, noised=False)
        _, event = self._survival()
        g.require(int(event.sum()), "the number of events")
        return g.release({"kind": "counts", "n": n, "n_events": int(event.sum())}, noised=False)

    def _moments(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from radsurv.federated.standardise import site_moments

        x = self._x(request)
        self.guard.require(len(x), "feature means and variances")
        return self.guard.release({"kind": "moments", **site_moments(x)})

    def _cox(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from radsurv.federated.cox import site_cox_derivatives

        g = self.guard
        x = self._x(request)
        time, event = self._survival()
        g.require(len(x), "Cox gradient and Hessian")
        g.require(int(event.sum()), "Cox gradient and Hessian (events)")
        # Censored patients enter only through risk-set sums, never as a sum of their own: no minimum.
        out = site_cox_derivatives(x, time, event, np.asarray(request["beta"], float),
                                   np.asarray(request["mean"], float), np.asarray(request["sd"], float))
        return g.release({"kind": "cox", **out})

    def _logistic(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from radsurv.federated.logistic import site_logistic_derivatives

        g = self.guard
        x = self._x(request)
        label = self._binary_label()
        g.require(int(label.sum()), "logistic gradient (positive patients)")
        g.require(int(len(label) - label.sum()), "logistic gradient (negative patients)")
        out = site_logistic_derivatives(x, label, np.asarray(request["coef"], float),
                                        float(request["intercept"]), np.asarray(request["mean"], float),
                                        np.asarray(request["sd"], float))
        return g.release({"kind": "logistic", **out})

    def _concordance(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from radsurv.federated.evaluation import site_concordance_counts

        time, event = self._survival()
        self.guard.require(int(event.sum()), "the concordance counts (events)")
        return self.guard.release({"kind": "concordance", **site_concordance_counts(time, event, self._risk(request))},
                                  noised=False)

    def _auc(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from radsurv.federated.evaluation import site_auc_counts

        g = self.guard
        label = self._binary_label()
        g.require(int(label.sum()), "the AUC counts (positive patients)")
        g.require(int(len(label) - label.sum()), "the AUC counts (negative patients)")
        z = (self._x(request) - np.asarray(request["mean"], float)) / np.asarray(request["sd"], float)
        score = z @ np.asarray(request["coef"], float)
        return g.release({"kind": "auc", **site_auc_counts(label, score)}, noised=False)

    def _km_grid(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from radsurv.federated.evaluation import site_km_grid

        time, event = self._survival()
        group, n_groups = self._groups(request)
        accepted = site_km_grid(time, event, group, n_groups, np.asarray(request["grid"], float),
                                self.guard.min_patients)
        return self.guard.release({"kind": "km_grid", "grid": accepted}, noised=False)

    def _km(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from radsurv.federated.evaluation import km_cells_too_small, site_km_counts

        g = self.guard
        time, event = self._survival()
        group, n_groups = self._groups(request)
        counts = site_km_counts(time, event, group, n_groups, np.asarray(request["grid"], float))
        if km_cells_too_small(counts, g.min_patients):
            raise PrivacyError(f"request refused by site {self.name}: the requested time bins leave a cell with "
                               f"fewer than {g.min_patients} patients; use wider bins")
        return g.release({"kind": "km", **counts}, noised=False)

    def _icc(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from radsurv.federated.icc import site_icc_squares, site_icc_sums

        kind = request.get("kind")
        if self.icc_data is None:
            raise ValueError(f"site {self.name} holds no repeated measurements for the ICC")
        self.guard.require(self.icc_data.shape[1], "ICC sums of squares")
        if kind == "icc_sums":
            return self.guard.release({"kind": kind, **site_icc_sums(self.icc_data)})
        return self.guard.release({"kind": kind, **site_icc_squares(self.icc_data, np.asarray(request["grand"], float),
                                                                    np.asarray(request["col_means"], float),
                                                                    bool(request.get("within_site", False)))})

    # --- the dispatcher ------------------------------------------------------------------------
    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one request with aggregates, or raise :class:`PrivacyError` / ``ValueError``."""
        kind = request.get("kind")
        answer = {"counts": self._counts, "moments": self._moments, "cox": self._cox, "logistic": self._logistic,
                  "concordance": self._concordance, "auc": self._auc, "km_grid": self._km_grid, "km": self._km,
                  "icc_sums": self._icc, "icc_squares": self._icc}.get(str(kind))
        if answer is None:
            raise ValueError(f"unknown request kind {kind!r}; a site answers {', '.join(KINDS)}")
        return answer(request)


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
