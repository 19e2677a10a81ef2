"""Rule fit_models: :func:`radsurv.workflow.modelling.fit_models` with the rule's files and params as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.modelling import fit_models

run_rule(snakemake, fit_models)  # noqa: F821 - `snakemake` is injected by Snakemake
