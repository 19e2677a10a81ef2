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


rule control_scan_features:
    input:
        converted=rules.extract_scan_features.output.converted,
        manifest=SCAN_MANIFEST,
    output:
        control_converted=temp(
            directory("results/controls/{control}/scans/{scan}/converted")
        ),
        control_preprocessed=temp(
            directory("results/controls/{control}/scans/{scan}/preprocessed")
        ),
        features="results/controls/{control}/features/{scan}.json",
    log:
        "results/logs/control_scan_features/{control}_{scan}.log",
    benchmark:
        "results/benchmarks/control_scan_features/{control}_{scan}.tsv"
    wildcard_constraints:
        control=wf.NEGATIVE_CONTROLS_PATTERN,
    conda:
        "../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        seed=config["seed"],
        roi_pattern=config["cohort"].get("roi_pattern", ""),
        roi_policy=config["cohort"]["roi_policy"],
        preprocessing=config["preprocessing"],
        extraction=config["extraction"],
    script:
        "../scripts/control_scan_features.py"


rule control_study:
    input:
        unpack(control_study_inputs),
    output:
        table="results/controls/{control}/features.tsv",
        performance="results/controls/{control}/performance.tsv",
        metrics="results/controls/{control}/metrics.json",
        qc="results/qc/control_{control}.tsv",
    log:
        "results/logs/control_study_{control}.log",
    benchmark:
        "results/benchmarks/control_study_{control}.tsv"
    wildcard_constraints:
        control=wf.NEGATIVE_CONTROLS_PATTERN,
    conda:
        "../envs/modelling.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        modelling=config["modelling"],
        seed=config["seed"],
        columns=config["cohort"].get("columns", {}),
    script:
        "../scripts/control_study.py"
