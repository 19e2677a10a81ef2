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
* :mod:`~radsurv.federated.flower` -- the Flower transport (simulation and SuperLink / SuperNodes).

Library only: not yet wired into the Snakemake workflow or the report.
"""

from radsurv.federated.cox import FederatedCoxResult, fit_cox
from radsurv.federated.evaluation import federated_cindex, federated_km, leave_one_site_out
from radsurv.federated.icc import federated_icc
from radsurv.federated.logistic import FederatedLogisticResult, fit_logistic
from radsurv.federated.privacy import NoiseConfig, PrivacyError, SiteGuard
from radsurv.federated.site import LocalFederation, Site

__all__ = [
    "FederatedCoxResult", "FederatedLogisticResult", "LocalFederation", "NoiseConfig", "PrivacyError", "Site",
    "SiteGuard", "federated_cindex", "federated_icc", "federated_km", "fit_cox", "fit_logistic",
    "leave_one_site_out",
]
