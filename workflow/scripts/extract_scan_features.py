"""Rule extract_scan_features: one call of :func:`radsurv.workflow.features.extract_scan_features`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.features import extract_scan_features

run_rule(snakemake, extract_scan_features)  # noqa: F821 - `snakemake` is injected by Snakemake
