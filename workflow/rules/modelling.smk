# Modelling: honest validation of the radiomics model against volume, clinical and
# combined baselines (logic in radsurv.modelling.study; entry point radsurv.workflow.modelling).


rule fit_models:
    input:
        unpack(model_inputs),
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
        performance=report(
            "results/model/performance.tsv",
            caption="../report/performance.rst",
            category="Model",
        ),
        predictions_all="results/model/predictions_all.tsv",
        final_predictions="results/model/final_predictions.tsv",
        calibration=report(
            "results/model/calibration.tsv",
            caption="../report/calibration.rst",
            category="Model",
        ),
        tuning="results/model/tuning.tsv",
        selection_frequency="results/model/selection_frequency.tsv",
        final_models="results/model/final_models.joblib",
        published=report(
            "results/model/published_signatures.tsv",
            caption="../report/published_signatures.rst",
            category="Model",
        ),
        qc="results/model/qc.tsv",
    log:
        "results/logs/fit_models.log",
    benchmark:
        "results/benchmarks/fit_models.tsv"
    conda:
        "../envs/modelling.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        modelling=config["modelling"],
        seed=config["seed"],
        columns=config["cohort"].get("columns", {}),
    script:
        "../scripts/fit_models.py"


rule km_figure:
    input:
        predictions=rules.fit_models.output.predictions,
        final_predictions=rules.fit_models.output.final_predictions,
    output:
        figure=report(
            "results/model/km_{subset}.png",
            caption="../report/km.rst",
            category="Model",
            subcategory="Kaplan-Meier",
        ),
    log:
        "results/logs/km_figure_{subset}.log",
    wildcard_constraints:
        subset="train|test",
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        time_unit=config["cohort"]["time_unit"],
    script:
        "../scripts/km_figure.py"


rule modelling_only:
    """Target for users who start from their own feature table: the model outputs and
    Kaplan-Meier figures (survival) and every categorical endpoint's outputs, without the
    DICOM part (snakemake modelling_only)."""
    input:
        rules.fit_models.output if SURVIVAL else [],
        (
            expand(rules.km_figure.output.figure, subset=["test", "train"])
            if SURVIVAL
            else []
        ),
        expand(rules.fit_classifier.output, endpoint=list(ENDPOINTS)),
