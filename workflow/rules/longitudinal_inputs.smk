# Input functions of the delta-radiomics rules (longitudinal.smk): kept apart from the rules
# (snakemake --lint). Wiring only: the scan list is the checkpoint's assignment table.


def longitudinal_scan_files(kind):
    """One file of each assigned scan (after the checkpoint): features, propagation or qc."""

    def files(wildcards):
        assigned = checkpoints.longitudinal_timepoints.get().output.assigned
        out = getattr(rules.longitudinal_scan_features.output, kind)
        return expand(out, scan=wf.scan_ids(assigned))

    return files
