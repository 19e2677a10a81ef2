"""Rule km_plot: unpack ``snakemake`` and call :func:`radsurv.stages.km_figure`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.km_figure(sm.input.predictions, sm.input.final_predictions, sm.output[0], sm.wildcards.subset,
                 sm.params.time_unit)
