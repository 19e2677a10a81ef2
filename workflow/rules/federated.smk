# Federated study (issue #20): a model fitted across sites from aggregates only (logic in
# radsurv.federated; entry point radsurv.workflow.federated). Target: snakemake federated.


rule federated_study:
    input:
        unpack(lambda wc: wf.federated_inputs(config)),
    output:
        coefficients=report(
            "results/federated/coefficients.tsv",
            caption="../report/federated.rst",
            category="Federated study",
        ),
        performance=report(
            "results/federated/performance.tsv",
            caption="../report/federated.rst",
            category="Federated study",
        ),
        sites="results/federated/sites.tsv",
        km="results/federated/km.tsv",
        km_png=report(
            "results/federated/km.png",
            caption="../report/federated_km.rst",
            category="Federated study",
        ),
        audit="results/federated/audit.jsonl",
        dp_effect="results/federated/dp_effect.json",
        summary="results/federated/summary.json",
        qc="results/federated/qc.tsv",
    log:
        "results/logs/federated_study.log",
    benchmark:
        "results/benchmarks/federated_study.tsv"
    conda:
        "../envs/federated.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        federated=config["federated"],
        modelling=config["modelling"],
        robustness=config["robustness"],
        columns=config["cohort"].get("columns", {}),
        seed=config["seed"],
        time_unit=config["cohort"]["time_unit"],
    script:
        "../scripts/federated_study.py"


rule federated:
    """The federated study only (snakemake federated): results/federated/."""
    input:
        rules.federated_study.output,


# The report's "Federated study" section inputs (write_report), only when federated.enabled.
FEDERATED_REPORT = (
    {
        "federated_summary": rules.federated_study.output.summary,
        "federated_coefficients": rules.federated_study.output.coefficients,
        "federated_performance": rules.federated_study.output.performance,
        "federated_sites": rules.federated_study.output.sites,
        "federated_km_png": rules.federated_study.output.km_png,
        "federated_dp": rules.federated_study.output.dp_effect,
        "federated_audit": rules.federated_study.output.audit,
        "federated_qc": rules.federated_study.output.qc,
    }
    if wf.federated_enabled(config)
    else {}
)
# Its QC rows join the run's QC table (rule qc_table), only when federated.enabled.
FEDERATED_QC = [rules.federated_study.output.qc] if wf.federated_enabled(config) else []
