"""Rule robustness_test_retest: unpack ``snakemake`` and call :func:`radsurv.stages.robustness_test_retest`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.robustness_test_retest(sm.input.features, sm.input.scans, dict(sm.params.settings), sm.output.table,
                              sm.output.bland_altman, sm.output.summary)
