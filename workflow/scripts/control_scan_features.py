"""Rule control_scan_features: :func:`radsurv.workflow.controls.control_scan_features`."""
from radsurv.logutil import run_rule
from radsurv.workflow.controls import control_scan_features

run_rule(snakemake, control_scan_features)  # noqa: F821 - `snakemake` is injected by Snakemake
