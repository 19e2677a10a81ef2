# Delta radiomics (issue #18): tumour and organs at risk followed over treatment (logic in
# radsurv.longitudinal; entry points radsurv.workflow.longitudinal). Target: snakemake longitudinal.
# Time points are assigned by a checkpoint; then one job per assigned scan.
LONG = "results/longitudinal"


rule longitudinal_demo_cohort:
    output:
        images=f"{LONG_DEMO_DIR}/images.tsv",
        contours=f"{LONG_DEMO_DIR}/contours.tsv",
        clinical=f"{LONG_DEMO_DIR}/clinical.tsv",
        truth=f"{LONG_DEMO_DIR}/truth.tsv",
    log:
        "results/logs/longitudinal_demo_cohort.log",
    conda:
        "../envs/ingest.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        patients=config["demo"]["longitudinal_patients"],
        retest=config["demo"]["longitudinal_retest"],
        size=config["demo"]["longitudinal_size"],
        seed=config["seed"],
    script:
        "../scripts/longitudinal_demo_cohort.py"


checkpoint longitudinal_timepoints:
    input:
        images=config["longitudinal"]["images"],
    output:
        assigned=f"{LONG}/assigned.tsv",
        qc=f"{LONG}/timepoints_qc.tsv",
    log:
        "results/logs/longitudinal_timepoints.log",
    conda:
        "../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        longitudinal=wf.longitudinal_upstream(config),
        seed=config["seed"],
    script:
        "../scripts/longitudinal_timepoints.py"


rule longitudinal_scan_features:
    input:
        images=config["longitudinal"]["images"],
        contours=config["longitudinal"]["contours"],
        assigned=rules.longitudinal_timepoints.output.assigned,
    output:
        features=f"{LONG}/scans/{{scan}}/features.tsv",
        propagation=f"{LONG}/scans/{{scan}}/propagation.tsv",
        qc=f"{LONG}/scans/{{scan}}/qc.tsv",
    log:
        "results/logs/longitudinal_scan_features/{scan}.log",
    benchmark:
        "results/benchmarks/longitudinal_scan_features/{scan}.tsv"
    conda:
        "../envs/features.yaml"
    threads: config["longitudinal"]["propagation"]["threads"]
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        longitudinal=wf.longitudinal_upstream(config),
        seed=config["seed"],
    script:
        "../scripts/longitudinal_scan_features.py"


rule longitudinal_delta_table:
    input:
        scan_features=longitudinal_scan_files("features"),
        scan_propagation=longitudinal_scan_files("propagation"),
        scan_qc=longitudinal_scan_files("qc"),
        timepoint_qc=rules.longitudinal_timepoints.output.qc,
    output:
        features=f"{LONG}/features.tsv",
        propagation=f"{LONG}/propagation.tsv",
        rc=f"{LONG}/repeatability.tsv",
        delta=f"{LONG}/delta.tsv",
        selection=f"{LONG}/delta_selection.tsv",
        qc=f"{LONG}/delta_qc.tsv",
    log:
        "results/logs/longitudinal_delta_table.log",
    benchmark:
        "results/benchmarks/longitudinal_delta_table.tsv"
    conda:
        "../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        longitudinal=wf.longitudinal_upstream(config),
        seed=config["seed"],
    script:
        "../scripts/longitudinal_delta_table.py"


rule longitudinal_study:
    input:
        features=rules.longitudinal_delta_table.output.features,
        delta=rules.longitudinal_delta_table.output.delta,
        rc=rules.longitudinal_delta_table.output.rc,
        selection=rules.longitudinal_delta_table.output.selection,
        delta_qc=rules.longitudinal_delta_table.output.qc,
        assigned=rules.longitudinal_timepoints.output.assigned,
        clinical=config["longitudinal"]["clinical"],
    output:
        landmark=f"{LONG}/landmark.tsv",
        performance=f"{LONG}/performance.tsv",
        predictions=f"{LONG}/predictions.tsv",
        qc=f"{LONG}/qc.tsv",
    log:
        "results/logs/longitudinal_study.log",
    benchmark:
        "results/benchmarks/longitudinal_study.tsv"
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        longitudinal=config["longitudinal"],
        seed=config["seed"],
    script:
        "../scripts/longitudinal_study.py"


rule longitudinal_figures:
    input:
        features=rules.longitudinal_delta_table.output.features,
        delta=rules.longitudinal_delta_table.output.delta,
        predictions=rules.longitudinal_study.output.predictions,
        landmark=rules.longitudinal_study.output.landmark,
    output:
        trajectories_png=report(
            f"{LONG}/trajectories.png",
            caption="../report/longitudinal.rst",
            category="Delta radiomics",
        ),
        waterfall_png=report(
            f"{LONG}/waterfall.png",
            caption="../report/longitudinal.rst",
            category="Delta radiomics",
        ),
    log:
        "results/logs/longitudinal_figures.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        longitudinal=config["longitudinal"],
        seed=config["seed"],
    script:
        "../scripts/longitudinal_figures.py"


rule longitudinal:
    """The delta-radiomics study only (snakemake longitudinal): results/longitudinal/."""
    input:
        rules.longitudinal_study.output,
        rules.longitudinal_figures.output,


# The report's "Delta radiomics" section inputs (write_report) and QC rows, only when longitudinal.enabled.
LONGITUDINAL_REPORT = (
    {
        "longitudinal_features": rules.longitudinal_delta_table.output.features,
        "longitudinal_propagation": rules.longitudinal_delta_table.output.propagation,
        "longitudinal_selection": rules.longitudinal_delta_table.output.selection,
        "longitudinal_landmark": rules.longitudinal_study.output.landmark,
        "longitudinal_performance": rules.longitudinal_study.output.performance,
        "longitudinal_predictions": rules.longitudinal_study.output.predictions,
        "longitudinal_trajectories_png": rules.longitudinal_figures.output.trajectories_png,
        "longitudinal_waterfall_png": rules.longitudinal_figures.output.waterfall_png,
        "longitudinal_qc": rules.longitudinal_study.output.qc,
    }
    if wf.longitudinal_enabled(config)
    else {}
)
LONGITUDINAL_QC = (
    [rules.longitudinal_study.output.qc] if wf.longitudinal_enabled(config) else []
)
