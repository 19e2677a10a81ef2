"""Rule report: unpack ``snakemake`` and call :func:`radsurv.report.html.write_report`."""
from radsurv.logutil import setup_logging
from radsurv.report.html import write_report

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
write_report(dict(sm.input.items()), dict(sm.params.config), sm.output[0])
