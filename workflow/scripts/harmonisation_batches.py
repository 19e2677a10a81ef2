"""Rule harmonisation_batches: :func:`radsurv.workflow.harmonisation.harmonisation_batches`."""
from radsurv.logutil import run_rule
from radsurv.workflow.harmonisation import harmonisation_batches

run_rule(snakemake, harmonisation_batches)  # noqa: F821 - `snakemake` is injected by Snakemake
