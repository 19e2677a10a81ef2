"""A whole federated study from the config's ``federated`` block: admission, fit, evaluation, KM, DP.

:func:`run_federated_study` drives any :class:`~radsurv.federated.cox.Federation`
(in-process sites or Flower) through the steps of issue #20 and returns plain
tables; the workflow's entry point (:mod:`radsurv.workflow.federated`) reads the
sites' tables and writes them.

What happens when a site refuses (decided here, documented in ``config/README.md``):

* **admission** -- each site is first asked for its numbers of patients and events
  (positives / negatives for a binary endpoint). A site that refuses (fewer than
  ``min_patients``) or cannot answer (a missing outcome or feature) is **left out of the
  whole study** with a QC row naming the site, the request and the site's reason; the
  study continues with the others. No site left stops the study with that message.
* **evaluation** -- a refused evaluation number (a C-index / AUC, a leave-one-site-out
  fold, the Kaplan-Meier counts) is left empty with a QC row; the model stays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from radsurv.federated.cox import Federation
from radsurv.federated.privacy import NoiseConfig, PrivacyError, gaussian_sigma

#: QC stage of the federated study's rows (the site's name follows after a colon).
STAGE = "federated"
#: The errors a site's refusal or failure arrives as (in process, or over Flower).
SITE_ERRORS = (PrivacyError, ValueError, KeyError, RuntimeError)


@dataclass(frozen=True)
class FederatedSettings:
    """The federated study's settings, resolved from the config (see :meth:`from_config`)."""

    endpoint: str
    features: list[str] | str
    n_features: int = 10
    feature_pattern: str | None = None
    penalizer: float = 0.1
    C: float = 1.0
    min_patients: int = 5
    leave_one_site_out: bool = True
    km_times: list[float] = field(default_factory=list)
    dp_sigma: float | None = None
    dp_repeats: int = 10
    dp_seed: int = 0
    icc_form: str = "ICC(3,1)"
    icc_threshold: float = 0.75
    icc_use_lower_bound: bool = True
    icc_within_sites: bool = True

    @classmethod
    def from_config(cls, federated: Mapping[str, Any], modelling: Mapping[str, Any] | None = None,
                    robustness: Mapping[str, Any] | None = None, seed: int = 0) -> FederatedSettings:
        """Settings from the validated config blocks (schema defaults filled in).

        ``endpoint`` null takes ``modelling.endpoint``; ``km_times`` empty becomes 30 equal bins up
        to 3 x the largest ``modelling.horizons`` (60 with none). DP noise SD: ``sigma``, else the
        Gaussian mechanism's from ``epsilon``, ``delta`` and ``sensitivity``.

        Raises ValueError with a sentence naming the config key.
        """
        from radsurv.modelling.config import derive_seed
        from radsurv.schema import default

        modelling = modelling or {}
        robustness = robustness or {}
        endpoint = federated.get("endpoint") or modelling.get("endpoint") or "survival"
        if endpoint not in ("survival", "binary"):
            raise ValueError(f"federated.endpoint: a federated study fits survival (Cox) or binary (logistic) "
                             f"endpoints; modelling.endpoint is {endpoint!r}: set federated.endpoint")
        horizons = [float(h) for h in modelling.get("horizons") or []]
        km_times = [float(t) for t in federated.get("km_times") or []]
        if not km_times:
            end = 3.0 * max(horizons) if horizons else 60.0
            km_times = list(np.linspace(end / 30, end, 30))
        dp = dict(federated.get("differential_privacy") or {})
        sigma = None
        if dp.get("enabled"):
            if dp.get("sigma") is not None:
                sigma = float(dp["sigma"])
            elif dp.get("epsilon") is not None and dp.get("sensitivity") is not None:
                sigma = gaussian_sigma(float(dp["epsilon"]), float(dp.get("delta", default(
                    "federated", "differential_privacy", "delta"))), float(dp["sensitivity"]))
            else:
                raise ValueError("federated.differential_privacy: with enabled: true give either sigma (the noise "
                                 "SD) or epsilon and sensitivity (delta has a default)")
        get = federated.get
        return cls(
            endpoint=str(endpoint), features=get("features", default("federated", "features")),
            n_features=int(get("n_features", default("federated", "n_features"))),
            feature_pattern=modelling.get("feature_pattern"),
            penalizer=float(get("penalizer", default("federated", "penalizer"))),
            C=float(get("C", default("federated", "C"))),
            min_patients=int(get("min_patients", default("federated", "min_patients"))),
            leave_one_site_out=bool(get("leave_one_site_out", default("federated", "leave_one_site_out"))),
            km_times=km_times, dp_sigma=sigma,
            dp_repeats=int(dp.get("repeats", default("federated", "differential_privacy", "repeats"))),
            dp_seed=derive_seed(seed, 20), icc_form=str(robustness.get("icc_form", "ICC(3,1)")),
            icc_threshold=float(robustness.get("threshold", 0.75)),
            icc_use_lower_bound=bool(robustness.get("use_lower_bound", True)),
            icc_within_sites=bool(robustness.get("within_batch", default("robustness", "within_batch"))),
        )

    @property
    def noise(self) -> NoiseConfig | None:
        """The DP noise of the study's sites (``None``: exact aggregates)."""
        return None if self.dp_sigma is None else NoiseConfig(sigma=self.dp_sigma, seed=self.dp_seed)


@dataclass
class FederatedStudyResult:
    """Everything a federated study reports (plain tables; no patient-level value)."""

    sites: pd.DataFrame          # site, status, n, events|positives (counts < k shown as "< k")
    features: list[str]
    coefficients: pd.DataFrame   # feature, coef, se (survival), coef_std, ...
    performance: pd.DataFrame    # scope, site, metric, estimate, pairs
    km: pd.DataFrame             # time, group, at_risk, events, survival (survival only)
    dp: dict[str, Any]
    qc: list[dict[str, str]]
    summary: dict[str, Any]
    model: Any = None        # the reported fit (on noised aggregates with differential privacy)
    exact_model: Any = None  # the fit on exact aggregates (the model itself without DP)


def qc_site_row(site: str, request: str, reason: str, status: str = "excluded") -> dict[str, str]:
    """A QC row of a site's refusal: no patient, the site in the stage, the request and the reason."""
    from radsurv.qc import qc_row

    return qc_row("", "", f"{STAGE}:{site}", status, f"site {site} did not answer {request}: {reason}")


def _site_error(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def admit_sites(fed: Federation, settings: FederatedSettings,
                qc: list[dict[str, str]]) -> tuple[list[str], pd.DataFrame]:
    """Ask every site for its counts; the sites that answered, and the sites table.

    A site that refuses or fails is left out of the study (one QC row); counts are shown only
    as the site sent them (so never below ``min_patients``), else ``< k``.
    """
    count_key = "n_events" if settings.endpoint == "survival" else "n_positive"
    label = "events" if settings.endpoint == "survival" else "positives"
    admitted, rows = [], []
    for name in fed.site_names:
        try:
            a = fed.ask({"kind": "counts", "endpoint": settings.endpoint}, sites=[name])[name]
        except SITE_ERRORS as exc:
            qc.append(qc_site_row(name, "the request for its numbers of patients and " + label,
                                  _site_error(exc) + "; the site is left out of the study"))
            rows.append({"site": name, "status": "left out (refused)", "n": f"< {settings.min_patients}",
                         label: f"< {settings.min_patients}"})
            continue
        admitted.append(name)
        rows.append({"site": name, "status": "in the study", "n": str(int(a["n"])), label: str(int(a[count_key]))})
    if not admitted:
        raise ValueError("federated: no site can take part in the study (every site refused or failed; see the "
                         "QC rows): check the sites' tables and federated.min_patients")
    return admitted, pd.DataFrame(rows)


def resolve_features(settings: FederatedSettings, columns: Sequence[str], fed: Federation | None = None,
                     sites: Sequence[str] | None = None,
                     qc: list[dict[str, str]] | None = None) -> tuple[list[str], pd.DataFrame]:
    """The model's features and, for ``robust``, the federated ICC table.

    ``columns``: the feature names every admitted site holds, in the first site's order
    (names only; no values). ``first``: the first ``n_features`` of them matching
    ``modelling.feature_pattern`` (``diagnostics_*`` never). ``robust``: the federated ICC
    (:func:`~radsurv.federated.icc.federated_icc`, ``robustness.icc_form``) of every candidate over
    the sites' test-retest patients; features whose ICC (its CI lower bound when
    ``robustness.use_lower_bound``) reaches ``robustness.threshold``, the first ``n_features``.
    """
    import re

    if isinstance(settings.features, list):
        missing = [f for f in settings.features if f not in columns]
        if missing:
            raise ValueError(f"federated.features: not every site has the feature(s) {missing}")
        return list(settings.features), pd.DataFrame()
    rx = re.compile(settings.feature_pattern) if settings.feature_pattern else None
    cand = [c for c in columns if not str(c).startswith("diagnostics_") and (rx is None or rx.search(str(c)))]
    if settings.features == "first":
        if not cand:
            raise ValueError("federated.features: no feature column matches modelling.feature_pattern")
        return cand[: settings.n_features], pd.DataFrame()
    if fed is None or sites is None:
        raise ValueError("federated.features robust needs the federation")
    return _robust_features(settings, list(columns), cand, fed, sites, qc if qc is not None else [])


def _robust_features(settings: FederatedSettings, columns: list[str], cand: list[str], fed: Federation,
                     sites: Sequence[str], qc: list[dict[str, str]]) -> tuple[list[str], pd.DataFrame]:
    """``columns``: the features of the sites' repeated measurements, in their order."""
    from radsurv.federated.icc import federated_icc

    with_pairs = []
    for name in sites:
        try:
            fed.ask({"kind": "icc_sums"}, sites=[name])
            with_pairs.append(name)
        except SITE_ERRORS as exc:
            qc.append(qc_site_row(name, "the test-retest ICC sums", _site_error(exc)
                                  + "; its patients do not enter the ICC", status="warning"))
    if not with_pairs:
        raise ValueError("federated.features robust: no site has enough test-retest patients (at least "
                         "federated.min_patients each); list the features instead")
    res = federated_icc(fed, settings.icc_form, sites=with_pairs, within_sites=settings.icc_within_sites)
    judged = res.ci_low if settings.icc_use_lower_bound else res.icc
    table = pd.DataFrame({"feature": columns, "icc": res.icc, "ci_low": res.ci_low, "ci_high": res.ci_high,
                          "robust": np.nan_to_num(judged, nan=-np.inf) >= settings.icc_threshold})
    chosen = [f for f in table.loc[table["robust"], "feature"] if f in cand][: settings.n_features]
    if not chosen:
        raise ValueError(f"federated.features robust: no feature reaches robustness.threshold "
                         f"{settings.icc_threshold} over {len(with_pairs)} site(s)")
    return chosen, table


def _fit(fed: Federation, settings: FederatedSettings, features: list[str], sites: Sequence[str],
         max_rounds: int = 100, strict: bool = True) -> Any:
    from radsurv.federated.cox import fit_cox
    from radsurv.federated.logistic import fit_logistic

    if settings.endpoint == "survival":
        return fit_cox(fed, features, settings.penalizer, sites=sites, max_rounds=max_rounds, strict=strict)
    return fit_logistic(fed, features, settings.C, sites=sites, max_rounds=max_rounds, strict=strict)


def coefficient_table(model: Any, endpoint: str) -> pd.DataFrame:
    """Coefficients per original unit and per pooled SD (and SEs / hazard ratios for Cox)."""
    out = pd.DataFrame({"feature": model.features, "coef": model.coef, "coef_std": model.coef_std})
    if endpoint == "survival":
        out["se"] = model.se
        out["hazard_ratio_per_sd"] = np.exp(model.coef_std)
    else:
        out = pd.concat([out, pd.DataFrame([{"feature": "(intercept)", "coef": model.intercept,
                                             "coef_std": model.intercept_std}])], ignore_index=True)
    out["mean"] = list(model.moments.mean) + ([] if endpoint == "survival" else [np.nan])
    out["sd"] = list(model.moments.sd) + ([] if endpoint == "survival" else [np.nan])
    return out


def _index(fed: Federation, model: Any, endpoint: str, sites: Sequence[str]) -> Any:
    from radsurv.federated.evaluation import federated_auc, federated_cindex

    return federated_cindex(fed, model, sites=sites) if endpoint == "survival" else \
        federated_auc(fed, model, sites=sites)


def evaluate(fed: Federation, model: Any, settings: FederatedSettings, sites: Sequence[str],
             qc: list[dict[str, str]], fit_kw: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per-site and pooled (within-site pairs) C-index / AUC of the model (apparent: fitted on
    these sites), and, when asked, leave-one-site-out (each site scored by a model fitted on
    the others; ``fit_kw`` go to those refits). Rows: ``scope``, ``site``, ``metric``, ``estimate``,
    ``pairs``, ``rounds``."""
    metric = "harrell_c" if settings.endpoint == "survival" else "auc"
    rows: list[dict[str, Any]] = []
    scored = []
    for name in sites:  # one request per site: a refusal costs only that site's number
        try:
            idx = _index(fed, model, settings.endpoint, [name])
        except SITE_ERRORS as exc:
            qc.append(qc_site_row(name, f"the {metric} counts", _site_error(exc), status="warning"))
            rows.append({"scope": "apparent", "site": name, "metric": metric, "estimate": np.nan, "pairs": 0})
            continue
        scored.append(name)
        rows.append({"scope": "apparent", "site": name, "metric": metric, "estimate": idx.per_site[name],
                     "pairs": idx.pairs[name]})
    if scored:
        pooled = _index(fed, model, settings.endpoint, scored)
        rows.append({"scope": "apparent", "site": "pooled (within-site pairs)", "metric": metric,
                     "estimate": pooled.pooled, "pairs": int(sum(pooled.pairs.values()))})
    if settings.leave_one_site_out and len(sites) >= 2:
        rows += _leave_one_site_out(fed, settings, model.features, sites, metric, qc, dict(fit_kw or {}))
    return pd.DataFrame(rows, columns=["scope", "site", "metric", "estimate", "pairs", "rounds"])


def _leave_one_site_out(fed: Federation, settings: FederatedSettings, features: list[str], sites: Sequence[str],
                        metric: str, qc: list[dict[str, str]], fit_kw: dict[str, Any]) -> list[dict[str, Any]]:
    rows, num, den = [], 0.0, 0
    for held in sites:
        train = [s for s in sites if s != held]
        try:
            fold = _fit(fed, settings, features, train, **fit_kw)
            idx = _index(fed, fold, settings.endpoint, [held])
        except SITE_ERRORS as exc:
            qc.append(qc_site_row(held, f"the leave-one-site-out fold holding it out ({metric})", _site_error(exc),
                                  status="warning"))
            rows.append({"scope": "leave_one_site_out", "site": held, "metric": metric, "estimate": np.nan,
                         "pairs": 0, "rounds": np.nan})
            continue
        est, pairs = idx.per_site[held], idx.pairs[held]
        if pairs:
            num += est * pairs
            den += pairs
        rows.append({"scope": "leave_one_site_out", "site": held, "metric": metric, "estimate": est,
                     "pairs": pairs, "rounds": fold.rounds})
    rows.append({"scope": "leave_one_site_out", "site": "pooled (within-site pairs)", "metric": metric,
                 "estimate": num / den if den else np.nan, "pairs": den, "rounds": np.nan})
    return rows


#: Risk groups of the federated Kaplan-Meier curves: the linear predictor on the pooled
#: standardised scale has mean 0 over all sites' patients, so 0 splits at the pooled mean risk.
KM_GROUPS = ("below the mean risk", "above the mean risk")


def km_table(fed: Federation, model: Any, settings: FederatedSettings, sites: Sequence[str],
             qc: list[dict[str, str]]) -> tuple[pd.DataFrame, list[str]]:
    """Kaplan-Meier per risk group (split at the pooled mean linear predictor) from binned counts.

    Each site is first asked alone (it merges the time bins until every cell holds 0 or at
    least k patients); a site that still refuses (e.g. a risk group with fewer than k events
    there) is left out of the curves with a QC row, and the curves pool the other sites.
    Returns the long table ``time, group, at_risk, events, survival`` (empty, with a QC row,
    when no site can answer) and the sites it pools.
    """
    from radsurv.federated.evaluation import federated_km
    from radsurv.qc import qc_row

    empty = pd.DataFrame(columns=["time", "group", "at_risk", "events", "survival"])
    accepted = []
    for name in sites:
        try:
            federated_km(fed, model, [0.0], settings.km_times, sites=[name], labels=list(KM_GROUPS))
            accepted.append(name)
        except SITE_ERRORS as exc:
            qc.append(qc_site_row(name, "the Kaplan-Meier counts", _site_error(exc) + "; the curves pool the "
                                  "other sites", status="warning"))
    try:
        if not accepted:
            raise PrivacyError("no site could send Kaplan-Meier counts")
        km = federated_km(fed, model, [0.0], settings.km_times, sites=accepted, labels=list(KM_GROUPS))
    except SITE_ERRORS as exc:
        qc.append(qc_row("", "", f"{STAGE}:km", "warning", f"no Kaplan-Meier curves: {_site_error(exc)} (even "
                         "after merging the time bins; try other federated.km_times)"))
        return empty, []
    rows = []
    for group in KM_GROUPS:
        for t in km.survival.index:
            rows.append({"time": float(t), "group": group, "at_risk": int(km.at_risk.loc[t, group]),
                         "events": int(km.events.loc[t, group]), "survival": float(km.survival.loc[t, group])})
    return pd.DataFrame(rows), accepted


def dp_effect(make_federation: Callable[[NoiseConfig | None], Federation], settings: FederatedSettings,
              features: list[str], sites: Sequence[str], exact_rounds: int) -> dict[str, Any]:
    """Effect of the DP noise on the coefficients (:func:`~radsurv.federated.privacy.noise_effect`):
    ``repeats`` noisy fits (as many Newton rounds as the exact fit) against the exact one, on the
    standardised scale; empty ``{"enabled": False}`` without DP."""
    from radsurv.federated.privacy import noise_effect

    noise = settings.noise
    if noise is None:
        return {"enabled": False}

    def fit(cfg: NoiseConfig | None) -> np.ndarray:
        kw: dict[str, Any] = {} if cfg is None else {"max_rounds": exact_rounds, "strict": False}
        return np.asarray(_fit(make_federation(cfg), settings, features, sites, **kw).coef_std)

    eff = noise_effect(fit, noise, repeats=settings.dp_repeats)
    return {"enabled": True, "rounds": int(exact_rounds), "scale": "standardised coefficients (per pooled SD)",
            **eff}


def run_federated_study(make_federation: Callable[[NoiseConfig | None], Federation], settings: FederatedSettings,
                        columns: Sequence[str]) -> FederatedStudyResult:
    """The study: admission, features, fit, evaluation, Kaplan-Meier (survival), DP effect.

    ``make_federation(noise)`` gives the federation whose sites add ``noise`` (``None``:
    exact aggregates). With differential privacy the study itself (features, model,
    leave-one-site-out refits) runs on noised aggregates, each fit for as many Newton rounds as
    the exact fit needs (noised derivatives never meet a tolerance); the exact fit is then only
    the reference of the reported DP effect (:func:`dp_effect`). Counts (admission, C-index / AUC
    pairs, Kaplan-Meier) are never noised. ``columns``: the feature names every site holds.
    """
    qc: list[dict[str, str]] = []
    exact_fed = make_federation(None)
    fed = exact_fed if settings.noise is None else make_federation(settings.noise)
    sites, site_table = admit_sites(fed, settings, qc)
    features, icc = resolve_features(settings, columns, fed, sites, qc)
    exact = _fit(exact_fed, settings, features, sites) if settings.noise is not None else None
    fit_kw: dict[str, Any] = {} if exact is None else {"max_rounds": exact.rounds, "strict": False}
    model = _fit(fed, settings, features, sites, **fit_kw)
    dp = {"enabled": False} if exact is None else dp_effect(make_federation, settings, features, sites, exact.rounds)
    performance = evaluate(fed, model, settings, sites, qc, fit_kw)
    survival = settings.endpoint == "survival"
    km, km_sites = km_table(fed, model, settings, sites, qc) if survival else \
        (pd.DataFrame(columns=["time", "group", "at_risk", "events", "survival"]), [])
    summary = {"endpoint": settings.endpoint, "sites": list(fed.site_names), "sites_in_study": sites,
               "features": features, "rounds": int(model.rounds), "converged": bool(model.converged),
               "min_patients": settings.min_patients,
               "penalty": {"penalizer": settings.penalizer} if survival else {"C": settings.C},
               "differential_privacy": settings.noise is not None, "dp_sigma": settings.dp_sigma,
               "km_sites": km_sites, "robust_icc": icc.to_dict(orient="records") if len(icc) else None}
    return FederatedStudyResult(sites=site_table, features=features,
                                coefficients=coefficient_table(model, settings.endpoint), performance=performance,
                                km=km, dp=dp, qc=qc, summary=summary, model=model,
                                exact_model=exact if exact is not None else model)
