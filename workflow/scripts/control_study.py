"""Rule control_study: :func:`radsurv.workflow.controls.control_study`."""
from radsurv.logutil import run_rule
from radsurv.workflow.controls import control_study

run_rule(snakemake, control_study)  # noqa: F821 - `snakemake` is injected by Snakemake
