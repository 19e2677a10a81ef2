# radsurv: DICOM -> IBSI features -> test-retest robustness -> survival models -> report.
# This file holds only the minimum version, config, includes and the targets.
from snakemake.utils import min_version

min_version("9.0")


# A study is one config file. `snakemake --configfile my_cohort.yaml` reads that file alone:
# the bundled demo's config/config.yaml is read only when no --configfile is given, so none of
# the demo's settings (its covariates, demo block, robustness method) reach a user's study.
if not workflow.overwrite_configfiles:

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


rule features:
    """Feature extraction only (snakemake features): discovery, one job per scan, the feature
    table and the QC rows of those steps. Needs no clinical table and no modelling block."""
    input:
        "results/features/features.tsv",
        "results/features/diagnostics.tsv",
        "results/qc/discovery.tsv",
        "results/qc/extraction.tsv",
