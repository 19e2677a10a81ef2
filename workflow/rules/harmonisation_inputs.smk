# Input functions of the multi-centre rules (rules/harmonisation.smk) and of the report's
# multi-centre inputs; wiring only.


def harmonisation_cohort_inputs(wildcards):
    """The modelling cohort's files (as fit_models reads them) and, when the batch uses
    acquisition facts, the scans' converted folders (their provenance.json)."""
    files = {
        k: v
        for k, v in model_inputs(wildcards).items()
        if k in ("features", "robust", "clinical")
    }
    if config["harmonisation"]["batch"].get("acquisition") and "robust" in files:
        files["converted"] = expand(
            rules.extract_scan_features.output.converted, scan=first_scans()
        )
    return files


def harmonisation_report_inputs(qc=False):
    """The report's (and, with qc, the QC table's) inputs of the multi-centre and negative-control
    rules; none when harmonisation is off and no negative control is asked for."""
    controls = wf.negative_controls(config)
    enabled = wf.harmonisation_enabled(config)
    if qc:
        return ([rules.harmonisation_batches.output.qc] if enabled else []) + [
            f"results/qc/control_{c}.tsv" for c in controls
        ]
    files = negative_control_report_inputs()
    if not enabled:
        return files
    files.update(
        {
            "harmonisation_counts": rules.harmonisation_batches.output.counts,
            "harmonisation_settings": rules.harmonisation_batches.output.settings,
        }
    )
    if wf.harmonisation_diagnostics_enabled(config):
        files.update(
            {
                "harmonisation_site_auc": rules.harmonisation_diagnostics.output.site_auc,
                "harmonisation_kruskal": rules.harmonisation_diagnostics.output.kruskal,
                "harmonisation_pca": rules.harmonisation_diagnostics.output.pca,
                "harmonisation_summary": rules.harmonisation_diagnostics.output.summary,
            }
        )
    return files


def control_study_inputs(wildcards):
    """The control's per-scan feature JSONs (each patient's first scan), the robust list and
    clinical table of the real study, and the harmonisation files when harmonisation is on.
    """
    return {
        "scans": expand(
            "results/controls/{control}/features/{scan}.json",
            control=wildcards.control,
            scan=first_scans(),
        ),
        "robust": rules.select_robust_features.output.robust,
        "clinical": rules.standardise_clinical.output.clinical,
        **wf.harmonisation_model_inputs(config),
    }


def negative_control_report_inputs():
    """The report's negative-control inputs (none when harmonisation.negative_controls is empty)."""
    return {
        f"control_metrics_{c}": f"results/controls/{c}/metrics.json"
        for c in wf.negative_controls(config)
    }
