"""Rule model: unpack ``snakemake`` and call :func:`radsurv.stages.modelling`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.modelling(sm.input.features, sm.input.robust, sm.input.clinical, dict(sm.params.modelling),
                 sm.params.seed, sm.output.predictions, sm.output.metrics, sm.output.coefficients,
                 sm.output.signature, sm.output.selection)
