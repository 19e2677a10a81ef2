"""Rule scan: unpack ``snakemake`` and call :func:`radsurv.stages.scan`."""
from radsurv import stages
from radsurv.logutil import setup_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
setup_logging(sm.log[0])
stages.scan(sm.input.manifest, sm.output.converted, sm.output.preprocessed, sm.output.features,
            sm.output.stage_costs, sm.params.roi_pattern, sm.params.roi_policy, dict(sm.params.preprocessing),
            dict(sm.params.extraction), sm.threads)
