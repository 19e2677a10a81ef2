"""Rule robustness: unpack ``snakemake`` and call :func:`radsurv.stages.robustness`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.robustness(sm.input.features, dict(sm.params.settings), dict(sm.params.tables), dict(sm.params.summaries),
                  sm.output.icc, sm.output.robust, sm.output.selection, sm.output.plot, sm.output.summary)
