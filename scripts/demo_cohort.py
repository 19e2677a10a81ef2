"""Rule demo_cohort: unpack ``snakemake`` and call :func:`radsurv.stages.demo_cohort`."""
from pathlib import Path

from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.demo_cohort(Path(sm.output.clinical).parent, sm.params.patients, sm.params.retest, sm.params.seed)
