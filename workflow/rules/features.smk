# The per-scan chain -- conversion (DICOM series + contour), IBSI preprocessing and pyradiomics
# extraction -- is one job per scan: each step takes about a second on a clinical CT, so
# separate jobs would spend a large share of the run on process start-up, imports and
# Snakemake's per-job bookkeeping (README, "Benchmarks"). The library keeps the stages apart
# (radsurv.stages.conversion, .preprocessing, .extraction, each with its own status and QC
# stage; the robustness rules call them separately), and the job writes each stage's wall,
# CPU and peak memory beside its benchmark file.
rule scan:
    input:
        manifest="results/ingest/private/manifests/{scan}.json",
    output:
        converted=directory("results/scans/{scan}/converted"),
        preprocessed=directory("results/scans/{scan}/preprocessed"),
        features="results/features/scans/{scan}.json",
        stage_costs="results/benchmarks/stages/{scan}.tsv",
    params:
        roi_pattern=config["cohort"].get("roi_pattern", ""),
        roi_policy=config["cohort"].get("roi_policy", "first"),
        preprocessing=config["preprocessing"],
        extraction=config["extraction"],
    log:
        "results/logs/scan/{scan}.log",
    benchmark:
        "results/benchmarks/scan/{scan}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/scan.py"


rule assemble_features:
    input:
        scan_feature_files,
    output:
        features="results/features/features.tsv",
        diagnostics="results/features/diagnostics.tsv",
        qc="results/qc/extraction.tsv",
    log:
        "results/logs/assemble_features.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/assemble_features.py"


rule volume_correlation:
    input:
        "results/features/features.tsv",
    output:
        report(
            "results/features/volume_correlation.tsv",
            caption="../report/volume_correlation.rst",
            category="Features",
        ),
    params:
        volume_feature=config["modelling"].get("volume_feature", "original_shape_MeshVolume"),
        threshold=0.9,
    log:
        "results/logs/volume_correlation.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/volume_correlation.py"
