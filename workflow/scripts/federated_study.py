"""Rule federated_study: :func:`radsurv.workflow.federated.federated_study` with the rule's files and params."""
from radsurv.logutil import run_rule
from radsurv.workflow.federated import federated_study

run_rule(snakemake, federated_study)  # noqa: F821 - `snakemake` is injected by Snakemake
