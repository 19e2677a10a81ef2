"""Rule discover (image-sheet cohort): unpack ``snakemake`` and call :func:`radsurv.stages.sheet_discovery`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.sheet_discovery(sm.input.sheet, sm.output.scans, sm.output.manifests, sm.output.qc,
                       sm.params.retest_max_days)
