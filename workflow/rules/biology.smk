# Categorical endpoints (issue #17): the figures of each binary or multiclass endpoint and the
# radiogenomics screen. Wiring only: the logic is in radsurv.report.classification and
# radsurv.modelling.classification.radiogenomics (entry points radsurv.workflow.biology).


rule classification_figures:
    input:
        predictions=rules.fit_classifier.output.predictions,
        metrics=rules.fit_classifier.output.metrics,
    output:
        roc=report(
            "results/endpoints/{endpoint}/roc.png",
            caption="../report/classification_roc.rst",
            category="Categorical endpoints",
            subcategory="{endpoint}",
        ),
        calibration=report(
            "results/endpoints/{endpoint}/calibration.png",
            caption="../report/classification_calibration.rst",
            category="Categorical endpoints",
            subcategory="{endpoint}",
        ),
        decision_curve=report(
            "results/endpoints/{endpoint}/decision_curve.png",
            caption="../report/classification_decision_curve.rst",
            category="Categorical endpoints",
            subcategory="{endpoint}",
        ),
        confusion=report(
            "results/endpoints/{endpoint}/confusion.png",
            caption="../report/classification_confusion.rst",
            category="Categorical endpoints",
            subcategory="{endpoint}",
        ),
    log:
        "results/logs/classification_figures_{endpoint}.log",
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/classification_figures.py"


rule radiogenomics_screen:
    input:
        unpack(biology_inputs),
    output:
        table=report(
            "results/biology/radiogenomics.tsv",
            caption="../report/radiogenomics.rst",
            category="Categorical endpoints",
        ),
        figure=report(
            "results/biology/radiogenomics.png",
            caption="../report/radiogenomics.rst",
            category="Categorical endpoints",
        ),
        qc="results/biology/qc.tsv",
    log:
        "results/logs/radiogenomics_screen.log",
    benchmark:
        "results/benchmarks/radiogenomics_screen.tsv"
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        biology=wf.biology_columns(config),
        modelling=config["modelling"],
        columns=config["cohort"].get("columns", {}),
    script:
        "../scripts/radiogenomics_screen.py"
