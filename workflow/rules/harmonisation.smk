# Multi-centre studies (harmonisation.enabled): each patient's batch, read by fit_models, which
# refits ComBat inside every training fold; and the batch diagnostics for the report. Logic in
# radsurv.harmonisation; entry points radsurv.workflow.harmonisation.


include: "harmonisation_inputs.smk"


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
