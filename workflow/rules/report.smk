rule qc_table:
    input:
        parts=[
            rules.discover_scans.output.qc,
            rules.assemble_features.output.qc,
            rules.standardise_clinical.output.qc,
            rules.fit_models.output.qc,
            *FEDERATED_QC,
        ],
    output:
        table=report(
            "results/qc/qc.tsv", caption="../report/qc.rst", category="Quality control"
        ),
    log:
        "results/logs/qc_table.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/qc_table.py"


rule report_figures:
    input:
        performance=rules.fit_models.output.performance,
        calibration=rules.fit_models.output.calibration,
        coefficients=rules.fit_models.output.coefficients,
        features=rules.assemble_features.output.features,
        robust=rules.select_robust_features.output.robust,
    output:
        td_auc_png=report(
            "results/report/figures/td_auc.png",
            caption="../report/td_auc.rst",
            category="Model",
        ),
        calibration_png=report(
            "results/report/figures/calibration.png",
            caption="../report/calibration_plot.rst",
            category="Model",
        ),
        forest_png=report(
            "results/report/figures/forest.png",
            caption="../report/forest.rst",
            category="Model",
        ),
        heatmap_png=report(
            "results/report/figures/correlation_heatmap.png",
            caption="../report/heatmap.rst",
            category="Features",
        ),
    log:
        "results/logs/report_figures.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        time_unit=config["cohort"]["time_unit"],
    script:
        "../scripts/report_figures.py"


rule write_report:
    input:
        **{f"rob_fig_{k.replace('-', '_')}": ROB_FIGURES[k] for k in ROB_ANALYSES},
        **{
            f"rob_summary_{k.replace('-', '_')}": ROB_RULES[k].output.summary
            for k in ROB_ANALYSES
        },
        **FEDERATED_REPORT,
        qc=rules.qc_table.output.table,
        scans=rules.discover_scans.output.scans,
        clinical=rules.standardise_clinical.output.clinical,
        features=rules.assemble_features.output.features,
        icc=rules.select_robust_features.output.icc,
        robustness=rules.select_robust_features.output.summary,
        icc_plot=rules.select_robust_features.output.plot,
        predictions=rules.fit_models.output.predictions,
        metrics=rules.fit_models.output.metrics,
        coefficients=rules.fit_models.output.coefficients,
        selection=rules.fit_models.output.selection,
        km_test=expand(rules.km_figure.output.figure, subset="test")[0],
        km_train=expand(rules.km_figure.output.figure, subset="train")[0],
        performance=rules.fit_models.output.performance,
        calibration=rules.fit_models.output.calibration,
        selection_frequency=rules.fit_models.output.selection_frequency,
        published=rules.fit_models.output.published,
        volume_correlation=rules.volume_correlation.output.table,
        td_auc_png=rules.report_figures.output.td_auc_png,
        calibration_png=rules.report_figures.output.calibration_png,
        forest_png=rules.report_figures.output.forest_png,
        heatmap_png=rules.report_figures.output.heatmap_png,
        converted=lambda wc: expand(
            rules.extract_scan_features.output.converted, scan=scan_ids()
        ),
    output:
        report=report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        "results/logs/write_report.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=config,
    script:
        "../scripts/write_report.py"
