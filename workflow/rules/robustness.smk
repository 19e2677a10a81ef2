# Robustness: test-retest ICC, image perturbation (Zwanenburg et al. 2019), discretisation.
# Wiring only; the logic lives in radsurv.robustness.selection / radsurv.robustness.perturbation / radsurv.stages.
from radsurv.robustness.selection import analysis_files, first_scans

ROBUSTNESS = config["robustness"]
ROB_TABLES = analysis_files(ROBUSTNESS, "table")
ROB_SUMMARIES = analysis_files(ROBUSTNESS, "summary")
# Each patient's first scan (the one modelling uses); retest scans never take part.
ROB_SCANS = lambda: first_scans(pd.read_csv(checkpoints.discover.get().output.scans, sep="\t", dtype=str))


rule robustness_test_retest:
    input:
        features="results/features/features.tsv",
        scans="results/ingest/scans.tsv",
    output:
        table="results/robustness/test_retest.tsv",
        summary="results/robustness/test_retest_summary.json",
        bland_altman=report(
            "results/robustness/bland_altman_test_retest.png",
            caption="../report/bland_altman.rst",
            category="Robustness",
        ),
    params:
        settings=ROBUSTNESS,
    log:
        "results/logs/robustness_test_retest.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/robustness_test_retest.py"


rule robustness_perturb:
    input:
        "results/scans/{scan}/converted",
    output:
        "results/robustness/perturbation/scans/{scan}.json",
    params:
        perturbation=ROBUSTNESS.get("perturbation", {}),
        preprocessing=config["preprocessing"],
        extraction=config["extraction"],
        seed=config["seed"],
    log:
        "results/logs/robustness_perturb/{scan}.log",
    benchmark:
        "results/benchmarks/robustness_perturb/{scan}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/robustness_perturb.py"


rule robustness_perturbation:
    input:
        lambda wc: expand("results/robustness/perturbation/scans/{scan}.json", scan=ROB_SCANS()),
    output:
        table="results/robustness/perturbation.tsv",
        features="results/robustness/perturbation/features.tsv",
        summary="results/robustness/perturbation_summary.json",
        bland_altman=report(
            "results/robustness/bland_altman_perturbation.png",
            caption="../report/bland_altman.rst",
            category="Robustness",
        ),
    params:
        settings=ROBUSTNESS,
    log:
        "results/logs/robustness_perturbation.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/robustness_perturbation.py"


rule robustness_discretise:
    input:
        "results/scans/{scan}/preprocessed",
    output:
        "results/robustness/discretisation/scans/{scan}.json",
    params:
        extraction=config["extraction"],
        preprocessing=config["preprocessing"],
        discretisation=ROBUSTNESS.get("discretisation", {}),
    log:
        "results/logs/robustness_discretise/{scan}.log",
    benchmark:
        "results/benchmarks/robustness_discretise/{scan}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/robustness_discretise.py"


rule robustness_discretisation:
    input:
        lambda wc: expand("results/robustness/discretisation/scans/{scan}.json", scan=ROB_SCANS()),
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
    params:
        settings=ROBUSTNESS,
    log:
        "results/logs/robustness_discretisation.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/robustness_discretisation.py"


rule robustness:
    input:
        **{f"table_{k.replace('-', '_')}": v for k, v in ROB_TABLES.items()},
        **{f"summary_{k.replace('-', '_')}": v for k, v in ROB_SUMMARIES.items()},
        features="results/features/features.tsv",
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
    params:
        settings=ROBUSTNESS,
        tables=ROB_TABLES,
        summaries=ROB_SUMMARIES,
    log:
        "results/logs/robustness.log",
    benchmark:
        "results/benchmarks/robustness.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/modelling.yaml"
    script:
        "../../scripts/robustness.py"
