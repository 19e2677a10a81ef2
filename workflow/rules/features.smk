# Preprocessing and extraction of a scan are one job: both follow the site preset, a change
# to either re-runs both, and one Python start-up per scan is saved (0.4 s of CPU per scan;
# README, "Benchmarks"). The library keeps them apart (radsurv.stages.preprocessing and
# .extraction, each with its own status.json); the robustness rules call them separately.
rule extract:
    input:
        "results/scans/{scan}/converted",
    output:
        preprocessed=directory("results/scans/{scan}/preprocessed"),
        features="results/features/scans/{scan}.json",
    params:
        extraction=config["extraction"],
        preprocessing=config["preprocessing"],
    log:
        "results/logs/extract/{scan}.log",
    benchmark:
        "results/benchmarks/extract/{scan}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/extract.py"


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
