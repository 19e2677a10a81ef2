"""Rule perturbation_icc: one call of :func:`radsurv.workflow.robustness.perturbation_icc`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.robustness import perturbation_icc

run_rule(snakemake, perturbation_icc)  # noqa: F821 - `snakemake` is injected by Snakemake
