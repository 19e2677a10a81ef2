"""Rule test_retest_icc: one call of :func:`radsurv.workflow.robustness.test_retest_icc`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.robustness import test_retest_icc

run_rule(snakemake, test_retest_icc)  # noqa: F821 - `snakemake` is injected by Snakemake
