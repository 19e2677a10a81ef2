"""Federated evaluation from site-computed counts.

* Harrell's C per site from that site's concordant / discordant / tied-risk
  pair counts (scikit-survival's ``concordance_index_censored``, the function
  :func:`radsurv.modelling.metrics.harrell_c` uses centrally); the pooled C counts only
  pairs **within** a site, as a site-stratified model's C should (baseline
  hazards differ between sites, so cross-site pairs are not comparable).
* AUC per site from the Mann-Whitney U count of (positive, negative) pairs
  ranked correctly (ties count 1/2); pooled within-site AUC likewise.
* Kaplan-Meier per risk group from at-risk and event counts in time bins
  (it equals the Kaplan-Meier estimate at the bin ends when no patient is
  censored strictly inside a bin). A site refuses a
  binning that would give any non-empty cell fewer than ``min_patients``
  patients; :func:`federated_km` then merges bins until every site accepts.
* Cross-validation by leaving one site out: fit on the other sites, score the
  held-out site by its own counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radsurv.federated.cox import FederatedCoxResult, Federation, fit_cox


def site_concordance_counts(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> dict[str, Any]:
    """Site side: numbers of concordant, discordant and tied-risk comparable pairs."""
    from sksurv.metrics import concordance_index_censored

    event = np.asarray(event).astype(bool)
    if event.sum() == 0:
        return {"n": int(len(event)), "concordant": 0, "discordant": 0, "tied_risk": 0}
    _, conc, disc, tied_risk, _ = concordance_index_censored(event, np.asarray(time, float), np.asarray(risk, float))
    return {"n": int(len(event)), "concordant": int(conc), "discordant": int(disc), "tied_risk": int(tied_risk)}


def site_auc_counts(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """Site side: Mann-Whitney U (correctly ranked positive-negative pairs, ties 1/2) and number of pairs."""
    from scipy.stats import mannwhitneyu

    y = np.asarray(y).astype(bool)
    score = np.asarray(score, float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return {"n": int(len(y)), "u": 0.0, "n_pairs": 0}
    u = float(mannwhitneyu(score[y], score[~y], alternative="two-sided", method="asymptotic").statistic)
    return {"n": int(len(y)), "u": u, "n_pairs": n_pos * n_neg}


@dataclass(frozen=True)
class FederatedIndex:
    """A concordance (C-index or AUC) per site and pooled over within-site pairs."""

    per_site: dict[str, float]
    pooled: float
    pairs: dict[str, int]


def pool_concordance(answers: Mapping[str, Mapping[str, Any]]) -> FederatedIndex:
    """Server side: Harrell's C per site and pooled within-site from :func:`site_concordance_counts`."""
    per_site, pairs = {}, {}
    num = den = 0.0
    for site, a in answers.items():
        total = a["concordant"] + a["discordant"] + a["tied_risk"]
        pairs[site] = int(total)
        per_site[site] = (a["concordant"] + 0.5 * a["tied_risk"]) / total if total else float("nan")
        num += a["concordant"] + 0.5 * a["tied_risk"]
        den += total
    return FederatedIndex(per_site=per_site, pooled=num / den if den else float("nan"), pairs=pairs)


def pool_auc(answers: Mapping[str, Mapping[str, Any]]) -> FederatedIndex:
    """Server side: AUC per site and pooled within-site from :func:`site_auc_counts`."""
    per_site = {s: (a["u"] / a["n_pairs"] if a["n_pairs"] else float("nan")) for s, a in answers.items()}
    num = sum(float(a["u"]) for a in answers.values())
    den = sum(int(a["n_pairs"]) for a in answers.values())
    return FederatedIndex(per_site=per_site, pooled=num / den if den else float("nan"),
                          pairs={s: int(a["n_pairs"]) for s, a in answers.items()})


def federated_cindex(fed: Federation, model: FederatedCoxResult, *,
                     sites: Sequence[str] | None = None) -> FederatedIndex:
    """Harrell's C of a federated Cox model per site and pooled within sites."""
    return pool_concordance(fed.ask({"kind": "concordance", "features": model.features,
                                     **model.linear_predictor_payload()}, sites=sites))


def federated_auc(fed: Federation, model: Any, *, sites: Sequence[str] | None = None) -> FederatedIndex:
    """AUC of a federated logistic model (:class:`~radsurv.federated.logistic.FederatedLogisticResult`)
    per site and pooled within sites."""
    return pool_auc(fed.ask({"kind": "auc", "features": model.features, "mean": model.moments.mean,
                             "sd": model.moments.sd, "coef": model.coef_std}, sites=sites))


def site_km_counts(time: np.ndarray, event: np.ndarray, group: np.ndarray, n_groups: int,
                   grid: np.ndarray) -> dict[str, Any]:
    """Site side: per risk group and time bin ``(grid[b-1], grid[b]]`` the number at risk at the bin start
    and the number of events in the bin; arrays ``(n_groups, n_bins)``.

    No censoring count is released: a patient censored inside a bin counts as
    at risk for the whole bin and leaves at its end.
    """
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    group = np.asarray(group, int)
    grid = np.asarray(grid, float)
    lo, hi = grid[:-1], grid[1:]
    at_risk = np.zeros((n_groups, len(lo)), dtype=int)
    events = np.zeros_like(at_risk)
    for g in range(n_groups):
        t, e = time[group == g], event[group == g]
        at_risk[g] = (t[None, :] > lo[:, None]).sum(axis=1)
        events[g] = ((t[None, :] > lo[:, None]) & (t[None, :] <= hi[:, None]) & e[None, :]).sum(axis=1)
    return {"at_risk": at_risk, "events": events}


def km_cells_too_small(counts: Mapping[str, Any], min_patients: int) -> bool:
    """Whether any non-empty cell of a KM count table holds fewer than ``min_patients`` patients."""
    for key in ("at_risk", "events"):
        a = np.asarray(counts[key])
        if np.any((a > 0) & (a < min_patients)):
            return True
    return False


def life_table(at_risk: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Survival at the bin ends from binned counts: ``S_b = prod (1 - events / at_risk)``.

    Equal to the Kaplan-Meier estimate at the bin ends when no patient is
    censored strictly inside a bin; otherwise patients censored inside a bin
    count as at risk for all of it (survival slightly overestimated there).
    """
    at_risk, events = np.asarray(at_risk, float), np.asarray(events, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(at_risk > 0, events / at_risk, 0.0)
    return np.cumprod(1.0 - q, axis=-1)


def site_km_grid(time: np.ndarray, event: np.ndarray, group: np.ndarray, n_groups: int, grid: np.ndarray,
                 min_patients: int) -> np.ndarray:
    """Site side: the coarsest-needed subset of ``grid`` whose KM cells all hold 0 or >= ``min_patients``.

    Bins are merged from the start until every risk group's events in the
    merged bin and its number at risk at the next boundary are 0 or at least
    ``min_patients``; a too-small tail is merged into the bin before it. Any
    coarsening of the returned grid (e.g. its intersection with other sites'
    grids) is acceptable too. Returns ``[grid[0], grid[-1]]`` at worst.
    """
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    group = np.asarray(group, int)
    grid = np.asarray(grid, float)

    def ok_cells(lo: float, hi: float) -> bool:
        for g in range(n_groups):
            t, e = time[group == g], event[group == g]
            ev = int(np.sum((t > lo) & (t <= hi) & e))
            nxt = int(np.sum(t > hi))
            if 0 < ev < min_patients or 0 < nxt < min_patients:
                return False
        return True

    keep = [grid[0]]
    for b in grid[1:-1]:
        if ok_cells(keep[-1], b):
            keep.append(b)
    keep.append(grid[-1])
    # the last bin has no "next" at-risk count; only its events must pass
    while len(keep) > 2 and not all(
            not (0 < int(np.sum((time[group == g] > keep[-2]) & (time[group == g] <= keep[-1]) & event[group == g]))
                 < min_patients) for g in range(n_groups)):
        del keep[-2]
    return np.asarray(keep)


@dataclass(frozen=True)
class FederatedKM:
    """Kaplan-Meier (life-table) curves per risk group from binned site counts."""

    grid: np.ndarray
    survival: pd.DataFrame  # index: bin end, columns: risk group
    at_risk: pd.DataFrame
    events: pd.DataFrame
    bins_requested: int


def federated_km(fed: Federation, model: FederatedCoxResult, cutoffs: Sequence[float], grid: Sequence[float], *,
                 sites: Sequence[str] | None = None, labels: Sequence[str] | None = None) -> FederatedKM:
    """KM per risk group (linear predictor split at ``cutoffs``) pooled over sites from binned counts.

    The grid is first passed from site to site: each returns the boundaries of
    the grid it received that it can answer with cells of at least its minimum
    number of patients (:func:`site_km_grid`); since any coarsening of an
    acceptable grid stays acceptable, the last site's grid suits every site.
    Then all sites send their counts on that grid.
    """
    grid = np.asarray(sorted(set(float(g) for g in grid) | {0.0}))
    n_groups = len(cutoffs) + 1
    labels = list(labels) if labels is not None else [f"risk group {i + 1}" for i in range(n_groups)]
    requested = len(grid) - 1
    payload = {"features": model.features, **model.linear_predictor_payload(), "cutoffs": np.asarray(cutoffs, float)}
    for name in (list(sites) if sites is not None else fed.site_names):  # a coarsening stays acceptable
        grid = np.asarray(fed.ask({"kind": "km_grid", **payload, "grid": grid}, sites=[name])[name]["grid"], float)
    answers = fed.ask({"kind": "km", **payload, "grid": grid}, sites=sites)
    at_risk = sum(np.asarray(a["at_risk"]) for a in answers.values())
    events = sum(np.asarray(a["events"]) for a in answers.values())
    surv = life_table(at_risk, events)
    idx = pd.Index(grid[1:], name="time")
    return FederatedKM(grid=grid, survival=pd.DataFrame(surv.T, index=idx, columns=labels),
                       at_risk=pd.DataFrame(at_risk.T, index=idx, columns=labels),
                       events=pd.DataFrame(events.T, index=idx, columns=labels), bins_requested=requested)


def leave_one_site_out(fed: Federation, features: Sequence[str], penalizer: float = 0.0) -> pd.DataFrame:
    """Cross-validation by site: fit on all other sites, C-index on the held-out one.

    Returns one row per held-out site: ``site``, ``c_index``, ``pairs``,
    ``rounds``; the held-out site's own data never enter its model.
    """
    rows = []
    names = list(fed.site_names)
    if len(names) < 2:
        raise ValueError("leave-one-site-out needs at least 2 sites")
    for held in names:
        train = [s for s in names if s != held]
        model = fit_cox(fed, features, penalizer, sites=train)
        ci = federated_cindex(fed, model, sites=[held])
        rows.append({"site": held, "c_index": ci.per_site[held], "pairs": ci.pairs[held], "rounds": model.rounds})
    return pd.DataFrame(rows)
