# Multi-centre studies (harmonisation.enabled): each patient's batch, read by fit_models, which
# refits ComBat inside every training fold; and the batch diagnostics for the report. Logic in
# radsurv.harmonisation; entry points radsurv.workflow.harmonisation.


def harmonisation_cohort_inputs(wildcards):
    """The modelling cohort's files (as fit_models reads them) and, when the batch uses
    acquisition facts, the scans' converted folders (their provenance.json)."""
    files = {
        k: v
        for k, v in model_inputs(wildcards).items()
        if k in ("features", "robust", "clinical")
    }
    if config["harmonisation"]["batch"].get("acquisition") and "robust" in files:
        files["converted"] = expand(
            rules.extract_scan_features.output.converted, scan=first_scans()
        )
    return files


rule harmonisation_batches:
    input:
        unpack(harmonisation_cohort_inputs),
    output:
        batches=wf.HARMONISATION_FILES["harmonisation_batches"],
        settings=wf.HARMONISATION_FILES["harmonisation_settings"],
        counts=report(
            "results/harmonisation/batch_counts.tsv",
            caption="../report/harmonisation_counts.rst",
            category="Multi-centre harmonisation",
        ),
        qc="results/qc/harmonisation.tsv",
    log:
        "results/logs/harmonisation_batches.log",
    conda:
        "../envs/harmonisation.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        harmonisation=config["harmonisation"],
        modelling=config["modelling"],
        seed=config["seed"],
        columns=config["cohort"].get("columns", {}),
    script:
        "../scripts/harmonisation_batches.py"


rule harmonisation_diagnostics:
    input:
        unpack(harmonisation_cohort_inputs),
        batches=rules.harmonisation_batches.output.batches,
        settings=rules.harmonisation_batches.output.settings,
    output:
        site_auc=report(
            "results/harmonisation/site_auc.tsv",
            caption="../report/harmonisation_site_auc.rst",
            category="Multi-centre harmonisation",
        ),
        kruskal="results/harmonisation/kruskal.tsv",
        pca=report(
            "results/harmonisation/pca.png",
            caption="../report/harmonisation_pca.rst",
            category="Multi-centre harmonisation",
        ),
        summary="results/harmonisation/diagnostics.json",
    log:
        "results/logs/harmonisation_diagnostics.log",
    benchmark:
        "results/benchmarks/harmonisation_diagnostics.tsv"
    conda:
        "../envs/harmonisation.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        modelling=config["modelling"],
        seed=config["seed"],
        columns=config["cohort"].get("columns", {}),
    script:
        "../scripts/harmonisation_diagnostics.py"


def harmonisation_report_inputs(qc=False):
    """The report's (and, with qc, the QC table's) inputs of the multi-centre rules; none when
    harmonisation is off."""
    if not wf.harmonisation_enabled(config):
        return [] if qc else {}
    if qc:
        return [rules.harmonisation_batches.output.qc]
    files = {
        "harmonisation_counts": rules.harmonisation_batches.output.counts,
        "harmonisation_settings": rules.harmonisation_batches.output.settings,
    }
    if wf.harmonisation_diagnostics_enabled(config):
        files.update(
            {
                "harmonisation_site_auc": rules.harmonisation_diagnostics.output.site_auc,
                "harmonisation_kruskal": rules.harmonisation_diagnostics.output.kruskal,
                "harmonisation_pca": rules.harmonisation_diagnostics.output.pca,
                "harmonisation_summary": rules.harmonisation_diagnostics.output.summary,
            }
        )
    return files
