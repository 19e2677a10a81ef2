"""Rule robustness_perturbation: unpack ``snakemake`` and call :func:`radsurv.stages.robustness_perturbation`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.robustness_perturbation(list(sm.input), dict(sm.params.settings), sm.output.table, sm.output.features,
                               sm.output.bland_altman, sm.output.summary)
