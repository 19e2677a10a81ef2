"""Rule qc_table: unpack ``snakemake`` and call :func:`radsurv.stages.qc_table`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.qc_table(list(sm.input), sm.output[0])
