rule demo_cohort:
    output:
        dicom=directory(f"{DEMO_DIR}/dicom"),
        clinical=f"{DEMO_DIR}/clinical.csv",
        truth=f"{DEMO_DIR}/truth.csv",
        phi=f"{DEMO_DIR}/phi_values.json",
    log:
        "results/logs/demo_cohort.log",
    conda:
        "../envs/ingest.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        patients=config["demo"]["patients"],
        retest=config["demo"]["retest"],
        seed=config["seed"],
        scanners=config["demo"]["scanners"],
        texture=config["demo"]["texture"],
    script:
        "../scripts/demo_cohort.py"
