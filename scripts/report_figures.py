"""Rule report_figures: unpack ``snakemake`` and call :func:`radsurv.report.figures.draw_report_figures`."""
from radsurv.logutil import setup_logging
from radsurv.report.figures import draw_report_figures

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
draw_report_figures(sm.input.performance, sm.input.calibration, sm.input.coefficients, sm.input.features,
                    sm.input.robust, sm.output.td_auc, sm.output.calibration, sm.output.forest,
                    sm.output.heatmap, sm.params.time_unit)
