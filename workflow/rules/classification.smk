# Categorical endpoints (binary / multiclass: tumour biology, nodal status, response ...), one
# job per endpoint of radsurv.workflow.rules.classification_endpoints(config) (issue #17).
# Logic in radsurv.modelling.classification; entry point radsurv.workflow.classification.


rule fit_classifier:
    input:
        unpack(classifier_inputs),
    output:
        predictions="results/endpoints/{endpoint}/predictions.tsv",
        performance="results/endpoints/{endpoint}/performance.tsv",
        metrics="results/endpoints/{endpoint}/metrics.json",
        choices="results/endpoints/{endpoint}/choices.tsv",
        final_models="results/endpoints/{endpoint}/final_models.joblib",
        qc="results/endpoints/{endpoint}/qc.tsv",
    log:
        "results/logs/fit_classifier_{endpoint}.log",
    benchmark:
        "results/benchmarks/fit_classifier_{endpoint}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        "../envs/modelling.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        modelling=config["modelling"],
        seed=config["seed"],
        columns=config["cohort"].get("columns", {}),
        spec=lambda wildcards: ENDPOINTS[wildcards.endpoint],
    script:
        "../scripts/fit_classifier.py"
