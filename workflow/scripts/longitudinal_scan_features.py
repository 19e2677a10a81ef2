"""Rule longitudinal_scan_features: the entry point of the same name in radsurv.workflow.longitudinal."""
from radsurv.logutil import run_rule
from radsurv.workflow.longitudinal import longitudinal_scan_features

run_rule(snakemake, longitudinal_scan_features)  # noqa: F821 - `snakemake` is injected by Snakemake
