"""Rule perturb_scan: :func:`radsurv.workflow.robustness.perturb_scan` with the rule's files and params as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.robustness import perturb_scan

run_rule(snakemake, perturb_scan)  # noqa: F821 - `snakemake` is injected by Snakemake
