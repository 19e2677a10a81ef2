"""Rule robustness_discretise: unpack ``snakemake`` and call :func:`radsurv.stages.robustness_discretise`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.robustness_discretise(sm.input[0], sm.output[0], dict(sm.params.extraction), dict(sm.params.preprocessing),
                             dict(sm.params.discretisation))
