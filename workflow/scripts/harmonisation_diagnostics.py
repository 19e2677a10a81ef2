"""Rule harmonisation_diagnostics: :func:`radsurv.workflow.harmonisation.harmonisation_diagnostics`."""
from radsurv.logutil import run_rule
from radsurv.workflow.harmonisation import harmonisation_diagnostics

run_rule(snakemake, harmonisation_diagnostics)  # noqa: F821 - `snakemake` is injected by Snakemake
