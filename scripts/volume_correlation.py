"""Rule volume_correlation: unpack ``snakemake`` and call :func:`radsurv.stages.volume_correlation`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.volume_correlation(sm.input[0], sm.output[0], sm.params.volume_feature, float(sm.params.threshold))
