"""Rule robustness_perturb: unpack ``snakemake`` and call :func:`radsurv.stages.robustness_perturb`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.robustness_perturb(sm.input[0], sm.output[0], int(sm.params.seed), dict(sm.params.perturbation),
                          dict(sm.params.preprocessing), dict(sm.params.extraction))
