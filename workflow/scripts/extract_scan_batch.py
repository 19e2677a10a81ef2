"""Rule extract_scan_batch: one call of :func:`radsurv.workflow.features.extract_scan_batch`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.features import extract_scan_batch

run_rule(snakemake, extract_scan_batch)  # noqa: F821 - `snakemake` is injected by Snakemake
