# Files of each categorical endpoint (rules fit_classifier and classification_figures) and of the
# radiogenomics screen that the report shows (radsurv.workflow.rules.endpoint_files).
ENDPOINT_REPORT_FILES = {
    **{
        k: getattr(rules.fit_classifier.output, k)
        for k in ("predictions", "performance", "metrics", "qc")
    },
    **dict(rules.classification_figures.output.items()),
}
BIOLOGY_REPORT_FILES = {
    "radiogenomics_tsv": rules.radiogenomics_screen.output.table,
    "radiogenomics_png": rules.radiogenomics_screen.output.figure,
}


rule qc_table:
    input:
        parts=qc_parts,
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
        unpack(survival_figure_inputs),
        features=rules.assemble_features.output.features,
        robust=rules.select_robust_features.output.robust,
    output:
        **wf.survival_only(
            config,
            {
                "td_auc_png": report(
                    "results/report/figures/td_auc.png",
                    caption="../report/td_auc.rst",
                    category="Model",
                ),
                "calibration_png": report(
                    "results/report/figures/calibration.png",
                    caption="../report/calibration_plot.rst",
                    category="Model",
                ),
                "forest_png": report(
                    "results/report/figures/forest.png",
                    caption="../report/forest.rst",
                    category="Model",
                ),
            },
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
        unpack(survival_report_inputs),
        **{f"rob_fig_{k.replace('-', '_')}": ROB_FIGURES[k] for k in ROB_ANALYSES},
        **{
            f"rob_summary_{k.replace('-', '_')}": ROB_RULES[k].output.summary
            for k in ROB_ANALYSES
        },
        **wf.endpoint_files(config, ENDPOINT_REPORT_FILES),
        **(BIOLOGY_REPORT_FILES if wf.biology_columns(config) else {}),
        **harmonisation_report_inputs(),
        **FEDERATED_REPORT,
        **LONGITUDINAL_REPORT,
        qc=rules.qc_table.output.table,
        scans=rules.discover_scans.output.scans,
        clinical=rules.standardise_clinical.output.clinical,
        features=rules.assemble_features.output.features,
        icc=rules.select_robust_features.output.icc,
        robustness=rules.select_robust_features.output.summary,
        icc_plot=rules.select_robust_features.output.plot,
        volume_correlation=rules.volume_correlation.output.table,
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
