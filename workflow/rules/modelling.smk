# Modelling: honest validation of the radiomics model against volume, clinical and
# combined baselines (logic in radsurv.modelling.study; wiring only here).
MODEL_DIR = "results/model"
MODEL_FILES = [
    "predictions.tsv", "metrics.json", "coefficients.tsv", "signature.json", "selection.tsv",
    "performance.tsv", "predictions_all.tsv", "final_predictions.tsv", "calibration.tsv",
    "tuning.tsv", "selection_frequency.tsv", "final_models.joblib", "published_signatures.tsv", "qc.tsv",
]
FROM_TABLE = bool(config["modelling"].get("features_table"))

rule model:
    input:
        unpack(model_inputs),
    output:
        predictions=f"{MODEL_DIR}/predictions.tsv",
        metrics=f"{MODEL_DIR}/metrics.json",
        coefficients=report(
            f"{MODEL_DIR}/coefficients.tsv",
            caption="../report/coefficients.rst",
            category="Model",
        ),
        signature=f"{MODEL_DIR}/signature.json",
        selection=f"{MODEL_DIR}/selection.tsv",
        performance=report(
            f"{MODEL_DIR}/performance.tsv",
            caption="../report/performance.rst",
            category="Model",
        ),
        predictions_all=f"{MODEL_DIR}/predictions_all.tsv",
        final_predictions=f"{MODEL_DIR}/final_predictions.tsv",
        calibration=report(
            f"{MODEL_DIR}/calibration.tsv",
            caption="../report/calibration.rst",
            category="Model",
        ),
        tuning=f"{MODEL_DIR}/tuning.tsv",
        selection_frequency=f"{MODEL_DIR}/selection_frequency.tsv",
        final_models=f"{MODEL_DIR}/final_models.joblib",
        published=report(
            f"{MODEL_DIR}/published_signatures.tsv",
            caption="../report/published_signatures.rst",
            category="Model",
        ),
        qc=f"{MODEL_DIR}/qc.tsv",
    params:
        modelling=config["modelling"],
        seed=config["seed"],
        columns=config["cohort"].get("columns", {}),
        from_table=FROM_TABLE,
        out_dir=lambda wildcards, output: os.path.dirname(output.metrics),
    log:
        "results/logs/model.log",
    benchmark:
        "results/benchmarks/model.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/model.py"


rule km_plot:
    input:
        predictions=f"{MODEL_DIR}/predictions.tsv",
        final_predictions=f"{MODEL_DIR}/final_predictions.tsv",
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


rule modelling_only:
    """Target for users who start from their own feature table: the model outputs and
    Kaplan-Meier figures, without the DICOM part (snakemake modelling_only)."""
    input:
        expand(f"{MODEL_DIR}/{{f}}", f=MODEL_FILES),
        expand("results/model/km_{subset}.png", subset=["test", "train"]),
