"""Privacy-preserving distributed (federated) learning across hospitals (issue #20, library core).

Each site keeps its patients' data and answers requests with aggregates of at
least ``min_patients`` patients (:mod:`~radsurv.federated.privacy`); the
server fits exactly the model a central analysis of the pooled data would fit:

* :mod:`~radsurv.federated.cox` -- Cox stratified by site (Efron ties, lifelines' ridge penaliser);
* :mod:`~radsurv.federated.logistic` -- L2 logistic regression as scikit-learn's;
* :mod:`~radsurv.federated.standardise` -- pooled means / SDs;
* :mod:`~radsurv.federated.icc` -- ICC from per-site ANOVA sums;
* :mod:`~radsurv.federated.evaluation` -- C-index / AUC from pair counts, KM from binned counts,
  leave-one-site-out CV;
* :mod:`~radsurv.federated.site` -- a site and the in-process federation;
* :mod:`~radsurv.federated.flower` -- the Flower transport (simulation and SuperLink / SuperNodes);
* :mod:`~radsurv.federated.study` -- a whole study from the config's ``federated`` block (rule
  ``federated_study``, entry point :mod:`radsurv.workflow.federated`);
* :mod:`~radsurv.federated.split` -- per-site tables from a single-centre cohort (tutorials).
"""

from importlib import import_module
from typing import Any

#: Public names and their modules; imported on first use, so that a site's Flower ClientApp
#: process (one per message) loads only what a request needs.
_EXPORTS = {
    "FederatedCoxResult": "cox", "fit_cox": "cox",
    "federated_auc": "evaluation", "federated_cindex": "evaluation", "federated_km": "evaluation",
    "leave_one_site_out": "evaluation",
    "federated_icc": "icc",
    "FederatedLogisticResult": "logistic", "fit_logistic": "logistic",
    "NoiseConfig": "privacy", "PrivacyError": "privacy", "SiteGuard": "privacy",
    "LocalFederation": "site", "Site": "site",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"radsurv.federated.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'radsurv.federated' has no attribute {name!r}")
