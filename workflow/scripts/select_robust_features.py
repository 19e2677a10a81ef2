"""Rule select_robust_features: one call of :func:`radsurv.workflow.robustness.select_robust_features`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.robustness import select_robust_features

run_rule(snakemake, select_robust_features)  # noqa: F821 - `snakemake` is injected by Snakemake
