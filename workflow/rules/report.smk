rule qc_table:
    input:
        "results/qc/discovery.tsv",
        "results/qc/extraction.tsv",
        "results/qc/clinical.tsv",
    output:
        report("results/qc/qc.tsv", caption="../report/qc.rst", category="Quality control"),
    log:
        "results/logs/qc_table.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/qc_table.py"


rule report:
    input:
        qc="results/qc/qc.tsv",
        scans="results/ingest/scans.tsv",
        clinical="results/clinical/clinical.tsv",
        features="results/features/features.tsv",
        icc="results/robustness/icc.tsv",
        robustness="results/robustness/summary.json",
        icc_plot="results/robustness/icc_by_class.png",
        predictions="results/model/predictions.tsv",
        metrics="results/model/metrics.json",
        coefficients="results/model/coefficients.tsv",
        selection="results/model/selection.tsv",
        km_test="results/model/km_test.png",
        km_train="results/model/km_train.png",
    output:
        report("results/report/report.html", caption="../report/report.rst", category="Report"),
    params:
        config=config,
    log:
        "results/logs/report.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/report.py"
