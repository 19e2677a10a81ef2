"""Rule assemble_features: unpack ``snakemake`` and call :func:`radsurv.stages.assembly`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.assembly(list(sm.input), sm.output.features, sm.output.diagnostics, sm.output.qc)
