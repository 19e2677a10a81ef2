# Robustness: test-retest ICC, image perturbation (Zwanenburg et al. 2019), discretisation.
# Wiring only; the logic lives in radsurv.robustness (entry points: radsurv.workflow.robustness).
ROBUSTNESS = config["robustness"]
# The analyses the config switches on, in order (their rules: ROB_RULES below).
ROB_ANALYSES = wf.robustness_analyses(ROBUSTNESS)


rule test_retest_icc:
    input:
        unpack(robustness_batch_inputs),
        features=rules.assemble_features.output.features,
        scans=rules.discover_scans.output.scans,
    output:
        table="results/robustness/test_retest.tsv",
        summary="results/robustness/test_retest_summary.json",
        bland_altman=report(
            "results/robustness/bland_altman_test_retest.png",
            caption="../report/bland_altman.rst",
            category="Robustness",
        ),
    log:
        "results/logs/test_retest_icc.log",
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=ROBUSTNESS,
        harmonisation=config["harmonisation"],
    script:
        "../scripts/test_retest_icc.py"


rule perturb_scan:
    input:
        converted=rules.extract_scan_features.output.converted,
    output:
        features="results/robustness/perturbation/scans/{scan}.json",
    log:
        "results/logs/perturb_scan/{scan}.log",
    benchmark:
        "results/benchmarks/perturb_scan/{scan}.tsv"
    conda:
        "../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,
    params:
        perturbation=ROBUSTNESS["perturbation"],
        preprocessing=config["preprocessing"],
        extraction=config["extraction"],
        seed=config["seed"],
    script:
        "../scripts/perturb_scan.py"


rule perturbation_icc:
    input:
        unpack(robustness_batch_inputs),
        scans=lambda wc: expand(rules.perturb_scan.output.features, scan=first_scans()),
    output:
        table="results/robustness/perturbation.tsv",
        features="results/robustness/perturbation/features.tsv",
        summary="results/robustness/perturbation_summary.json",
        bland_altman=report(
            "results/robustness/bland_altman_perturbation.png",
            caption="../report/bland_altman.rst",
            category="Robustness",
        ),
    log:
        "results/logs/perturbation_icc.log",
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=ROBUSTNESS,
        harmonisation=config["harmonisation"],
    script:
        "../scripts/perturbation_icc.py"


rule discretise_scan:
    input:
        preprocessed=rules.extract_scan_features.output.preprocessed,
    output:
        features="results/robustness/discretisation/scans/{scan}.json",
    log:
        "results/logs/discretise_scan/{scan}.log",
    benchmark:
        "results/benchmarks/discretise_scan/{scan}.tsv"
    conda:
        "../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,
    params:
        extraction=config["extraction"],
        preprocessing=config["preprocessing"],
        discretisation=ROBUSTNESS["discretisation"],
    script:
        "../scripts/discretise_scan.py"


rule discretisation_icc:
    input:
        scans=lambda wc: expand(
            rules.discretise_scan.output.features, scan=first_scans()
        ),
    output:
        table=report(
            "results/robustness/discretisation.tsv",
            caption="../report/discretisation.rst",
            category="Robustness",
        ),
        summary="results/robustness/discretisation_summary.json",
        plot=report(
            "results/robustness/discretisation_by_class.png",
            caption="../report/discretisation.rst",
            category="Robustness",
        ),
    log:
        "results/logs/discretisation_icc.log",
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=ROBUSTNESS,
    script:
        "../scripts/discretisation_icc.py"


# Each analysis' rule (its table, summary and figure).
ROB_RULES = {
    "test-retest": rules.test_retest_icc,
    "perturbation": rules.perturbation_icc,
    "discretisation": rules.discretisation_icc,
}
ROB_FIGURES = {
    "test-retest": rules.test_retest_icc.output.bland_altman,
    "perturbation": rules.perturbation_icc.output.bland_altman,
    "discretisation": rules.discretisation_icc.output.plot,
}


rule select_robust_features:
    input:
        features=rules.assemble_features.output.features,
        tables=[ROB_RULES[k].output.table for k in ROB_ANALYSES],
        summaries=[ROB_RULES[k].output.summary for k in ROB_ANALYSES],
    output:
        icc="results/robustness/icc.tsv",
        robust="results/robustness/robust_features.txt",
        selection="results/robustness/selection.tsv",
        summary="results/robustness/summary.json",
        plot=report(
            "results/robustness/icc_by_class.png",
            caption="../report/icc_by_class.rst",
            category="Robustness",
        ),
    log:
        "results/logs/select_robust_features.log",
    benchmark:
        "results/benchmarks/select_robust_features.tsv"
    conda:
        "../envs/modelling.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        analyses=ROB_ANALYSES,
        settings=ROBUSTNESS,
    script:
        "../scripts/select_robust_features.py"
