rule qc_table:
    input:
        "results/qc/discovery.tsv",
        "results/qc/extraction.tsv",
        "results/qc/clinical.tsv",
        "results/model/qc.tsv",
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


# The figure each robustness analysis draws (analyses switched on in config, see robustness.smk).
ROB_FIGURES = {
    "test-retest": "results/robustness/bland_altman_test_retest.png",
    "perturbation": "results/robustness/bland_altman_perturbation.png",
    "discretisation": "results/robustness/discretisation_by_class.png",
}


rule report_figures:
    input:
        performance="results/model/performance.tsv",
        calibration="results/model/calibration.tsv",
        coefficients="results/model/coefficients.tsv",
        features="results/features/features.tsv",
        robust="results/robustness/robust_features.txt",
    output:
        td_auc=report("results/report/figures/td_auc.png", caption="../report/td_auc.rst", category="Model"),
        calibration=report(
            "results/report/figures/calibration.png", caption="../report/calibration_plot.rst", category="Model"
        ),
        forest=report("results/report/figures/forest.png", caption="../report/forest.rst", category="Model"),
        heatmap=report(
            "results/report/figures/correlation_heatmap.png", caption="../report/heatmap.rst", category="Features"
        ),
    params:
        time_unit=config["cohort"].get("time_unit", "months"),
    log:
        "results/logs/report_figures.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/report_figures.py"


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
        performance="results/model/performance.tsv",
        calibration="results/model/calibration.tsv",
        selection_frequency="results/model/selection_frequency.tsv",
        published="results/model/published_signatures.tsv",
        volume_correlation="results/features/volume_correlation.tsv",
        td_auc_png="results/report/figures/td_auc.png",
        calibration_png="results/report/figures/calibration.png",
        forest_png="results/report/figures/forest.png",
        heatmap_png="results/report/figures/correlation_heatmap.png",
        converted=lambda wc: expand("results/scans/{scan}/converted", scan=scan_ids()),
        **{f"rob_fig_{k.replace('-', '_')}": ROB_FIGURES[k] for k in ROB_TABLES},
        **{f"rob_summary_{k.replace('-', '_')}": v for k, v in ROB_SUMMARIES.items()},
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
