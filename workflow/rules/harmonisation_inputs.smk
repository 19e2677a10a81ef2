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
    """The report's (and, with qc, the QC table's) inputs of the multi-centre rules; none when
    harmonisation is off."""
    if not wf.harmonisation_enabled(config):
        return [] if qc else {}
    if qc:
        return [rules.harmonisation_batches.output.qc]
    files = {
        "harmonisation_counts": rules.harmonisation_batches.output.counts,
        "harmonisation_settings": rules.harmonisation_batches.output.settings,
    }
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
