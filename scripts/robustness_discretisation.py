"""Rule robustness_discretisation: unpack ``snakemake`` and call :func:`radsurv.stages.robustness_discretisation`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.robustness_discretisation(list(sm.input), dict(sm.params.settings), sm.output.table, sm.output.plot,
                                 sm.output.summary)
