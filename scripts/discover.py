"""Rule discover: unpack ``snakemake`` and call :func:`radsurv.stages.discovery`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.discovery(sm.input.dicom, sm.output.scans, sm.output.manifests, sm.output.qc, sm.params.retest_max_days,
                 sm.threads)
