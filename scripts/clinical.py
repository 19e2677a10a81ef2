"""Rule clinical: unpack ``snakemake`` and call :func:`radsurv.stages.clinical`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.clinical(sm.input.table, dict(sm.params.columns), sm.input.scans, sm.output.table, sm.output.qc)
