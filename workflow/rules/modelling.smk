rule model:
    input:
        features="results/features/features.tsv",
        robust="results/robustness/robust_features.txt",
        clinical="results/clinical/clinical.tsv",
    output:
        predictions="results/model/predictions.tsv",
        metrics="results/model/metrics.json",
        coefficients=report(
            "results/model/coefficients.tsv",
            caption="../report/coefficients.rst",
            category="Model",
        ),
        signature="results/model/signature.json",
        selection="results/model/selection.tsv",
    params:
        modelling=config["modelling"],
        seed=config["seed"],
    log:
        "results/logs/model.log",
    benchmark:
        "results/benchmarks/model.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/model.py"


rule km_plot:
    input:
        predictions="results/model/predictions.tsv",
    output:
        report(
            "results/model/km_{subset}.png",
            caption="../report/km.rst",
            category="Model",
            subcategory="Kaplan-Meier",
        ),
    params:
        time_unit=config["cohort"].get("time_unit", "months"),
    wildcard_constraints:
        subset="train|test",
    log:
        "results/logs/km_plot_{subset}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/km_plot.py"
