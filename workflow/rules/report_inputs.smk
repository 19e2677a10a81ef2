# Input functions and file names of the report and biology rules (report.smk, biology.smk): kept
# apart from the rules (snakemake --lint). Wiring only: the decisions are the parse-time helpers
# of radsurv.workflow.rules (survival_study, classification_endpoints, biology_columns).


def biology_inputs(wildcards):
    """Input files of rule radiogenomics_screen (radsurv.workflow.rules.biology_inputs)."""
    clinical_table()
    return wf.biology_inputs(
        config,
        {
            "features": rules.assemble_features.output.features,
            "robust": rules.select_robust_features.output.robust,
        },
    )


def qc_parts(wildcards):
    """Every stage's QC rows: ingest, features, clinical table, the survival model (when the study
    has a survival endpoint), each categorical endpoint, the radiogenomics screen and the multi-centre,
    negative-control and federated rules."""
    parts = [
        rules.discover_scans.output.qc,
        rules.assemble_features.output.qc,
        rules.standardise_clinical.output.qc,
    ]
    if SURVIVAL:
        parts.append(rules.fit_models.output.qc)
    parts += expand(rules.fit_classifier.output.qc, endpoint=list(ENDPOINTS))
    if wf.biology_columns(config):
        parts.append(rules.radiogenomics_screen.output.qc)
    parts += harmonisation_report_inputs(qc=True)
    parts += FEDERATED_QC
    parts += LONGITUDINAL_QC
    return parts


def survival_figure_inputs(wildcards):
    """The survival tables rule report_figures draws; none without a survival endpoint."""
    if not SURVIVAL:
        return {}
    return {
        "performance": rules.fit_models.output.performance,
        "calibration": rules.fit_models.output.calibration,
        "coefficients": rules.fit_models.output.coefficients,
    }


def survival_report_inputs(wildcards):
    """The survival model's files the report shows; none without a survival endpoint."""
    if not SURVIVAL:
        return {}
    return {
        "predictions": rules.fit_models.output.predictions,
        "metrics": rules.fit_models.output.metrics,
        "coefficients": rules.fit_models.output.coefficients,
        "selection": rules.fit_models.output.selection,
        "km_test": expand(rules.km_figure.output.figure, subset="test")[0],
        "km_train": expand(rules.km_figure.output.figure, subset="train")[0],
        "performance": rules.fit_models.output.performance,
        "calibration": rules.fit_models.output.calibration,
        "selection_frequency": rules.fit_models.output.selection_frequency,
        "published": rules.fit_models.output.published,
        "td_auc_png": rules.report_figures.output.td_auc_png,
        "calibration_png": rules.report_figures.output.calibration_png,
        "forest_png": rules.report_figures.output.forest_png,
    }
