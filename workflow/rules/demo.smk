rule demo_cohort:
    output:
        dicom=directory(f"{DEMO_DIR}/dicom"),
        clinical=f"{DEMO_DIR}/clinical.csv",
        truth=f"{DEMO_DIR}/truth.csv",
        phi=f"{DEMO_DIR}/phi_values.json",
    params:
        patients=config.get("demo", {}).get("patients", 40),
        retest=config.get("demo", {}).get("retest", 15),
        seed=config["seed"],
    log:
        "results/logs/demo_cohort.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/demo_cohort.py"
