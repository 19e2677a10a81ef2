# Ingestion: a DICOM folder (cohort.dicom_dir) or an image sheet (cohort.image_sheet) becomes
# the same scans.tsv + one manifest per scan, so every later rule is the same for both.
# The manifests hold the absolute input paths the scan jobs read: private (results/ingest/private/),
# never copied into a shareable table; scans.tsv, QC and logs name files by pseudonym.
RETEST_MAX_DAYS = config["robustness"].get("retest_max_days", 30)

if COHORT_SOURCE == "sheet":

    checkpoint discover:
        input:
            sheet=COHORT_INPUT,
        output:
            scans="results/ingest/scans.tsv",
            manifests=directory("results/ingest/private/manifests"),
            qc="results/qc/discovery.tsv",
        params:
            retest_max_days=RETEST_MAX_DAYS,
        log:
            "results/logs/discover.log",
        benchmark:
            "results/benchmarks/discover.tsv"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        conda:
            "../../envs/ingest.yaml"
        script:
            "../../scripts/discover_sheet.py"

else:

    checkpoint discover:
        input:
            dicom=COHORT_INPUT,
        output:
            scans="results/ingest/scans.tsv",
            manifests=directory("results/ingest/private/manifests"),
            qc="results/qc/discovery.tsv",
        params:
            retest_max_days=RETEST_MAX_DAYS,
        log:
            "results/logs/discover.log",
        benchmark:
            "results/benchmarks/discover.tsv"
        threads: 2  # header reading in worker processes (the only job running at that point)
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../../envs/ingest.yaml"
        script:
            "../../scripts/discover.py"


rule clinical:
    input:
        table=clinical_table,
        scans="results/ingest/scans.tsv",
    output:
        table="results/clinical/clinical.tsv",
        qc="results/qc/clinical.tsv",
    params:
        columns=config["cohort"].get("columns", {}),
    log:
        "results/logs/clinical.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/clinical.py"
