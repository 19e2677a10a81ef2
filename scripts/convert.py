"""Rule convert: unpack ``snakemake`` and call :func:`radsurv.stages.conversion`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.conversion(sm.input.manifest, sm.output[0], sm.params.roi_pattern, sm.params.roi_policy,
                  dict(sm.params.preprocessing))
