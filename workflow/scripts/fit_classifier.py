"""Rule fit_classifier: :func:`radsurv.workflow.classification.fit_classifier` with the rule's files, params and
the endpoint wildcard as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.classification import fit_classifier

run_rule(snakemake, fit_classifier)  # noqa: F821 - `snakemake` is injected by Snakemake
