"""Rule model: unpack ``snakemake`` and call :func:`radsurv.stages.modelling`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.modelling(sm.input.features, sm.input.clinical, None if sm.params.from_table else sm.input.robust,
                 dict(sm.params.modelling), sm.params.seed, dict(sm.params.columns), sm.params.out_dir,
                 threads=sm.threads)
