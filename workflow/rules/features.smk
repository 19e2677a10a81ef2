# The per-scan chain -- conversion (DICOM series + contour), IBSI preprocessing and pyradiomics
# extraction -- is one job per scan: each step takes about a second on a clinical CT, so
# separate jobs would spend a large share of the run on process start-up, imports and
# Snakemake's per-job bookkeeping (README, "Benchmarks"). The library keeps the stages apart
# (radsurv.features.scan: conversion, preprocessing, extraction, each with its own status and
# QC stage; the robustness rules start from their folders), and the job writes each stage's
# wall, CPU and peak memory beside its benchmark file.

SCAN_MANIFEST = "results/ingest/private/manifests/{scan}.json"


if config["extraction"]["engine"] == "pyradiomics":

    rule extract_scan_features:
        input:
            manifest=SCAN_MANIFEST,
        output:
            converted=directory("results/scans/{scan}/converted"),
            preprocessed=directory("results/scans/{scan}/preprocessed"),
            features="results/features/scans/{scan}.json",
            stage_costs="results/benchmarks/stages/{scan}.tsv",
        log:
            "results/logs/extract_scan_features/{scan}.log",
        benchmark:
            "results/benchmarks/extract_scan_features/{scan}.tsv"
        conda:
            "../envs/features.yaml"
        threads: 1
        resources:
            mem_mb=3000,
            runtime=60,
        params:
            roi_pattern=config["cohort"].get("roi_pattern", ""),
            roi_policy=config["cohort"]["roi_policy"],
            preprocessing=config["preprocessing"],
            extraction=config["extraction"],
        script:
            "../scripts/extract_scan_features.py"

else:
    # An engine with a costly start-up (pictologics: ~20 s to load its compiled kernels) extracts
    # extraction.batch_size scans per job (rule extract_scan_batch: one process, one log section
    # and one stage-cost file per scan); this rule then puts each scan's files where the later
    # rules read them (hard links, on the main host).

    rule extract_scan_batch:
        input:
            manifests=lambda wc: expand(
                SCAN_MANIFEST,
                scan=scan_batches()[wc.batch],
            ),
        output:
            batch=directory("results/batches/{batch}"),
        log:
            "results/logs/extract_scan_batch/{batch}.log",
        benchmark:
            "results/benchmarks/extract_scan_batch/{batch}.tsv"
        wildcard_constraints:
            batch=r"\d+",
        conda:
            "../envs/features.yaml"
        threads: 1
        resources:
            mem_mb=3000,
            runtime=lambda wc: 10 + 5 * len(scan_batches()[wc.batch]),
        params:
            roi_pattern=config["cohort"].get("roi_pattern", ""),
            roi_policy=config["cohort"]["roi_policy"],
            preprocessing=config["preprocessing"],
            extraction=config["extraction"],
        script:
            "../scripts/extract_scan_batch.py"

    rule extract_scan_features:
        input:
            batch=lambda wc: f"results/batches/{batch_of(wc.scan)}",
        output:
            converted=directory("results/scans/{scan}/converted"),
            preprocessed=directory("results/scans/{scan}/preprocessed"),
            features="results/features/scans/{scan}.json",
            stage_costs="results/benchmarks/stages/{scan}.tsv",
        log:
            "results/logs/extract_scan_features/{scan}.log",
        benchmark:
            "results/benchmarks/extract_scan_features/{scan}.tsv"
        localrule: True
        conda:
            "../envs/features.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        script:
            "../scripts/extract_scan_features.py"


rule assemble_features:
    input:
        scans=lambda wc: expand(
            rules.extract_scan_features.output.features, scan=scan_ids()
        ),
    output:
        features="results/features/features.tsv",
        diagnostics="results/features/diagnostics.tsv",
        qc="results/qc/extraction.tsv",
    log:
        "results/logs/assemble_features.log",
    conda:
        "../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/assemble_features.py"


rule volume_correlation:
    input:
        features=rules.assemble_features.output.features,
    output:
        table=report(
            "results/features/volume_correlation.tsv",
            caption="../report/volume_correlation.rst",
            category="Features",
        ),
    log:
        "results/logs/volume_correlation.log",
    conda:
        "../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        volume_feature=config["modelling"]["volume_feature"],
        threshold=config["modelling"]["volume_surrogate_rho"],
    script:
        "../scripts/volume_correlation.py"
