"""Rule assemble_features: one call of :func:`radsurv.workflow.features.assemble_features`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.features import assemble_features

run_rule(snakemake, assemble_features)  # noqa: F821 - `snakemake` is injected by Snakemake
