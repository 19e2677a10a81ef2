"""Is the demo's planted HPV-like label recovered, and not through tumour volume? (issue #17)

Runs :func:`radsurv.modelling.classification.design.run_classification_cv` with the DEFAULT
:class:`~radsurv.modelling.classification.settings.ClassificationSettings` (seed 42) on a finished
demo run: each patient's first scan (``results/features/features.tsv``), the robust features
(``results/robustness/robust_features.txt``) plus tumour volume, against ``hpv_status`` of
``results/demo/clinical.csv``, with age and stage as clinical covariates. Prints each model's
nested-CV AUC with its paired bootstrap 95% CI, the difference to volume and DeLong's p, the
seconds per model, and the truth-level check (AUC of the planted texture latent, of volume).

``--write-contract`` also writes rule ``fit_classifier``'s files (the #17 file contract) to
``results/endpoints/hpv/``: a STAND-IN for that rule on a branch where it does not exist yet, so
that rules ``classification_figures``, ``radiogenomics_screen`` and ``write_report`` can run.

    .venv/bin/python tests/benchmarks/bench_demo_hpv.py [--results results] [--write-contract]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from radsurv.features.table import candidate_columns, modelling_matrix, read_features
from radsurv.modelling.classification.design import ClassificationResult, run_classification_cv
from radsurv.modelling.classification.settings import ClassificationSettings
from radsurv.qc import qc_row, write_qc

VOLUME = "original_shape_MeshVolume"
SPECS = [{"name": "age", "type": "numeric"},
         {"name": "stage", "type": "ordinal", "levels": ["I", "II", "IIIA", "IIIB"]}]


def _write_contract(res: ClassificationResult, labels: pd.Series, settings: ClassificationSettings, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    res.predictions.rename(columns={"patient": "patient_id"}).assign(set="test").to_csv(
        out / "predictions.tsv", sep="\t", index=False)
    res.metrics.to_csv(out / "performance.tsv", sep="\t", index=False)
    res.choices.to_csv(out / "choices.tsv", sep="\t", index=False)
    kept = labels.dropna()
    (out / "metrics.json").write_text(json.dumps({
        "endpoint": "binary", "column": "hpv_status", "classes": ["negative", "positive"],
        "positive_class": "positive", "n": int(len(kept)),
        "n_per_class": {str(k): int(v) for k, v in kept.value_counts().sort_index().items()},
        "design": "cv", "cv_folds": settings.cv_folds, "cv_repeats": settings.cv_repeats,
        "models": list(dict.fromkeys(res.predictions["model"])), "missing_models": {}}, indent=1))
    write_qc([qc_row(str(r.patient), "", "fit_classifier", "excluded", str(r.issue)) for r in res.qc.itertuples()],
             out / "qc.tsv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--write-contract", action="store_true")
    args = ap.parse_args()
    r = args.results
    X = modelling_matrix(read_features(r / "features" / "features.tsv"))
    X.index = X.index.astype(str)
    robust = [ln.strip() for ln in (r / "robustness" / "robust_features.txt").read_text().splitlines() if ln.strip()]
    cols = candidate_columns(X, None, robust)
    cols += [VOLUME] if VOLUME not in cols else []
    clin = pd.read_csv(r / "demo" / "clinical.csv", dtype=str).set_index("patient_id")
    labels = clin["hpv_status"].replace("", None)
    settings = ClassificationSettings(seed=42)
    t0 = time.perf_counter()
    res = run_classification_cv(X[cols], labels, settings, volume_feature=VOLUME, clinical=clin[["age", "stage"]],
                                clinical_specs=SPECS, positive="positive", endpoint_name="hpv")
    print(f"{len(X)} patients, {len(cols)} features (robust + volume), classes {labels.value_counts().to_dict()}; "
          f"default settings: {settings.cv_folds} folds x {settings.cv_repeats} repeat(s), n_boot {settings.n_boot}; "
          f"{time.perf_counter() - t0:.0f} s")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(res.metrics)
    print("seconds per model:", {k: round(v, 1) for k, v in res.seconds.items()})
    truth = pd.read_csv(r / "demo" / "truth.csv", dtype={"patient_id": str}).set_index("patient_id")
    y = (truth["hpv_status"] == "positive").astype(int)
    print(f"truth: AUC of -z_heterogeneity {roc_auc_score(y, -truth['z_heterogeneity']):.3f}, "
          f"of log volume {roc_auc_score(y, truth['log_volume']):.3f}")
    if args.write_contract:
        _write_contract(res, labels, settings, r / "endpoints" / "hpv")
        print("contract files written to", r / "endpoints" / "hpv")


if __name__ == "__main__":
    main()
