"""Rule discretisation_icc: one call of :func:`radsurv.workflow.robustness.discretisation_icc`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.robustness import discretisation_icc

run_rule(snakemake, discretisation_icc)  # noqa: F821 - `snakemake` is injected by Snakemake
