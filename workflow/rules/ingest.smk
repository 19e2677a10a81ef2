# Ingestion: a DICOM folder (cohort.dicom_dir) or an image sheet (cohort.image_sheet) becomes
# the same scans.tsv + one manifest per scan, so every later rule is the same for both.
# The manifests hold the absolute input paths the scan jobs read: private (results/ingest/private/),
# never copied into a shareable table; scans.tsv, QC and logs name files by pseudonym.


checkpoint discover_scans:
    input:
        **(
            {"sheet": COHORT_INPUT}
            if COHORT_SOURCE == "sheet"
            else {"dicom": COHORT_INPUT}
        ),
    output:
        scans="results/ingest/scans.tsv",
        manifests=directory("results/ingest/private/manifests"),
        qc="results/qc/discovery.tsv",
    log:
        "results/logs/discover_scans.log",
    benchmark:
        "results/benchmarks/discover_scans.tsv"
    conda:
        "../envs/ingest.yaml"
    # DICOM: header reading in worker processes (the only job running at that point)
    threads: 2 if COHORT_SOURCE == "dicom" else 1
    resources:
        mem_mb=4000 if COHORT_SOURCE == "dicom" else 1000,
        runtime=60 if COHORT_SOURCE == "dicom" else 10,
    params:
        retest_max_days=config["robustness"]["retest_max_days"],
    script:
        "../scripts/discover_scans.py"


rule standardise_clinical:
    input:
        table=clinical_table,
        scans=rules.discover_scans.output.scans,
    output:
        clinical="results/clinical/clinical.tsv",
        qc="results/qc/clinical.tsv",
    log:
        "results/logs/standardise_clinical.log",
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        columns=config["cohort"].get("columns", {}),
        labels=[spec["column"] for spec in ENDPOINTS.values()],
        survival=SURVIVAL,
    script:
        "../scripts/standardise_clinical.py"
