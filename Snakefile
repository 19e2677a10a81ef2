# radsurv: DICOM -> IBSI features -> test-retest robustness -> survival models -> report.
# This file holds only the minimum version, config, includes and the default target.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/modelling.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/report/report.html",
        "results/qc/qc.tsv",
    default_target: True
