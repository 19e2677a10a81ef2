rule robustness:
    input:
        features="results/features/features.tsv",
        scans="results/ingest/scans.tsv",
    output:
        icc="results/robustness/icc.tsv",
        robust="results/robustness/robust_features.txt",
        summary="results/robustness/summary.json",
        plot=report(
            "results/robustness/icc_by_class.png",
            caption="../report/icc_by_class.rst",
            category="Robustness",
        ),
    params:
        settings=config["robustness"],
    log:
        "results/logs/robustness.log",
    benchmark:
        "results/benchmarks/robustness.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/robustness.py"
