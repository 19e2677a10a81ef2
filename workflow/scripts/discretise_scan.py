"""Rule discretise_scan: one call of :func:`radsurv.workflow.robustness.discretise_scan`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.robustness import discretise_scan

run_rule(snakemake, discretise_scan)  # noqa: F821 - `snakemake` is injected by Snakemake
