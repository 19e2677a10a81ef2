"""Rule extract: unpack ``snakemake`` and call :func:`radsurv.stages.scan_features`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.scan_features(sm.input[0], sm.output.preprocessed, sm.output.features, dict(sm.params.preprocessing),
                     dict(sm.params.extraction), sm.threads)
