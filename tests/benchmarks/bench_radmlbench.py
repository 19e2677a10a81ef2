"""Benchmark: radsurv's classification design on the 20 radMLBench tables (issue #17).

Not a pytest test; run it directly::

    python tests/benchmarks/bench_radmlbench.py [--out DIR] [--jobs 2] [--datasets A B ...]
    python tests/benchmarks/bench_radmlbench.py --permutations 5 --datasets Arita2018 HNSCC ...
    python tests/benchmarks/bench_radmlbench.py --repeats 1 --set inner_repeats=2 'selection="one_se"'

The recorded tables used ``--repeats 1`` (one outer 5-fold; the library default is the
schema's ``modelling.cv_repeats``, 3, three times the time).

Every table of ``../shared/data/radmlbench`` (gzipped CSV: ``ID``, ``Target`` 0/1,
features) goes through :func:`radsurv.modelling.classification.design.run_classification_cv`
with the DEFAULT :class:`ClassificationSettings` (repeated nested CV; the inner loop
chooses the number of screened features, the learner, its hyperparameters and a small
ensemble). Models: radiomics, volume (when the table has a shape volume feature) and
the prevalence model. Written to ``--out``:

* ``radmlbench_auc.csv`` / ``.md``: nested-CV AUC with paired-bootstrap 95% CI per data
  set beside the radMLBench authors' reference AUC (``auc_standard`` of
  ``datasets.csv``: tuned standard pipeline, model selection NOT nested, so optimistic),
  the volume-only AUC, the chosen configurations and seconds; the mean and total time;
* with ``--permutations N``: ``radmlbench_permuted.csv`` / ``.md``: the same design on
  labels permuted N times (seeded); mean nested-CV AUC per table (target 0.50 +- 0.03:
  no leakage).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from radsurv.modelling.classification.design import run_classification_cv
from radsurv.modelling.classification.models import STEP_SECONDS
from radsurv.modelling.classification.settings import ClassificationSettings

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "radmlbench"
VOLUME_NAMES = ("shape_MeshVolume", "shape_VoxelVolume", "shape_Volume")


def load(name: str, data: Path = DATA) -> tuple[pd.DataFrame, pd.Series, str | None]:
    df = pd.read_csv(data / f"{name}.csv.gz")
    X = df.drop(columns=["ID", "Target"])
    X.index = df["ID"].astype(str)
    y = pd.Series(df["Target"].to_numpy(), index=X.index, name="Target")
    vol = next((c for v in VOLUME_NAMES for c in X.columns if c.endswith(v) or v in c), None)
    return X, y, vol


def run_one(name: str, data: Path, settings: dict, permutation: int | None = None,
            out: Path | None = None) -> dict:
    """One data set (or one permutation of it); the row is also written to ``out`` at once,
    so a long run that is stopped keeps what finished."""
    try:
        row = _run_one(name, data, settings, permutation)
    except Exception as exc:  # noqa: BLE001 - a failing table must not lose the others
        print(f"{name}: FAILED: {exc}", flush=True)
        row = {"dataset": name, "permutation": permutation, "error": str(exc), "auc": np.nan}
    if out is not None:
        tag = "" if permutation is None else f"_perm{permutation}"
        (out / "rows").mkdir(parents=True, exist_ok=True)
        (out / "rows" / f"{name}{tag}.json").write_text(json.dumps(row, default=float))
    return row


def _run_one(name: str, data: Path, settings: dict, permutation: int | None = None) -> dict:
    X, y, vol = load(name, data)
    s = ClassificationSettings(**settings)
    models = ["radiomics", "volume", "prevalence"]
    if permutation is not None:
        rng = np.random.default_rng(permutation)
        y = pd.Series(rng.permutation(y.to_numpy()), index=y.index, name="Target")
        models = ["radiomics"]
        s.n_boot = 200
    STEP_SECONDS.clear()
    t0 = time.perf_counter()
    res = run_classification_cv(X, y, s, volume_feature=vol, models=models)
    sec = time.perf_counter() - t0
    m = res.metrics.set_index("model")
    out = {"dataset": name, "n": len(y), "features": X.shape[1], "auc": m.loc["radiomics", "auc"],
           "ci_low": m.loc["radiomics", "ci_low"], "ci_high": m.loc["radiomics", "ci_high"],
           "auc_fold_mean": m.loc["radiomics", "auc_fold_mean"], "auc_fold_sd": m.loc["radiomics", "auc_fold_sd"],
           "seconds": round(sec, 1), "permutation": permutation,
           "steps": json.dumps({k: round(v, 1) for k, v in STEP_SECONDS.items()})}
    if permutation is None:
        out.update({
            "balanced_accuracy": m.loc["radiomics", "balanced_accuracy"], "brier": m.loc["radiomics", "brier"],
            "cal_slope": m.loc["radiomics", "cal_slope"], "volume_feature": vol or "",
            "volume_auc": m.loc["volume", "auc"] if "volume" in m.index else np.nan,
            "diff_vs_volume_ci": (f"{m.loc['radiomics', 'diff_ci_low']:.2f} to {m.loc['radiomics', 'diff_ci_high']:.2f}"
                                  if "volume" in m.index else ""),
            "chosen": " | ".join(res.choices["chosen"].value_counts().index[:3]),
        })
    print(f"{name}: AUC {out['auc']:.3f} ({out['ci_low']:.3f}-{out['ci_high']:.3f}) {sec:.0f} s"
          + (f" [permutation {permutation}]" if permutation is not None else ""), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("radmlbench_out"))
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--jobs", type=int, default=1, help="data sets run in parallel processes")
    ap.add_argument("--permutations", type=int, default=0, help="label-permutation runs per data set")
    ap.add_argument("--repeats", type=int, default=None, help="override cv_repeats (default: the library's)")
    ap.add_argument("--ensemble-sizes", type=int, nargs="+", default=None,
                    help="override ensemble_sizes (e.g. 99 = always the mean of every inner candidate)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help='override other settings, e.g. inner_repeats=2 selection=\'"one_se"\' learners=\'["rf"]\'')
    args = ap.parse_args()
    ref = pd.read_csv(args.data / "datasets.csv").set_index("Dataset")
    names = args.datasets or list(ref.index)
    settings: dict = {}
    if args.repeats is not None:
        settings["cv_repeats"] = args.repeats
    if args.ensemble_sizes is not None:
        settings["ensemble_sizes"] = tuple(args.ensemble_sizes)
    for kv in args.set:
        key, _, value = kv.partition("=")
        v = json.loads(value)
        settings[key] = tuple(v) if isinstance(v, list) else v
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs = [(n, None) for n in names] if not args.permutations else \
        [(n, p) for n in names for p in range(args.permutations)]
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        rows = list(ex.map(run_one, [j[0] for j in jobs], [args.data] * len(jobs), [settings] * len(jobs),
                           [j[1] for j in jobs], [args.out] * len(jobs)))
    total = time.perf_counter() - t0
    df = pd.DataFrame(rows)
    if "error" in df:
        print("failed:", df.loc[df["error"].notna(), ["dataset", "error"]].to_string(index=False))
        df = df[df["error"].isna()].drop(columns="error")
    s = ClassificationSettings(**settings)
    head = (f"Settings: {s.cv_folds}-fold x {s.cv_repeats} outer, {s.inner_folds}-fold inner; learners "
            f"{', '.join(s.learners)}; ensembles {s.ensemble_sizes}; inner repeats {s.inner_repeats}, selection "
            f"{s.selection}; {args.jobs} process(es). "
            f"Total {total / 60:.1f} min.")
    if args.permutations:
        g = df.groupby("dataset").agg(mean_auc=("auc", "mean"), sd_auc=("auc", "std"), runs=("auc", "size"),
                                      fold_auc=("auc_fold_mean", "mean"),
                                      features=("features", "first"), n=("n", "first")).reset_index()
        g.to_csv(args.out / "radmlbench_permuted.csv", index=False)
        df.to_csv(args.out / "radmlbench_permuted_runs.csv", index=False)
        md = [f"# radMLBench, labels permuted ({args.permutations} permutations)", "", head, "",
              "| data set | n | features | mean AUC (pooled) | SD | mean per-fold AUC | within 0.50 +- 0.03 |",
              "|---|---|---|---|---|---|---|"]
        for _, r in g.iterrows():
            md.append(f"| {r.dataset} | {r.n} | {r.features} | {r.mean_auc:.3f} | {r.sd_auc:.3f} | {r.fold_auc:.3f} | "
                      f"{'yes' if abs(r.mean_auc - 0.5) <= 0.03 else 'no'} |")
        (args.out / "radmlbench_permuted.md").write_text("\n".join(md) + "\n")
        print("\n".join(md))
        return
    df["reference_auc"] = [float(ref.loc[n, "auc_standard"]) for n in df["dataset"]]
    df.to_csv(args.out / "radmlbench_auc.csv", index=False)
    md = ["# radMLBench: nested-CV AUC (radsurv.modelling.classification defaults)", "", head, "",
          "| data set | n | features | nested-CV AUC, pooled (95% CI) | per-fold AUC, mean (SD) "
          "| reference (not nested) | volume AUC | chosen (most often) | s |",
          "|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        md.append(f"| {r.dataset} | {r.n} | {r.features} | {r.auc:.3f} ({r.ci_low:.3f}-{r.ci_high:.3f}) | "
                  f"{r.auc_fold_mean:.3f} ({r.auc_fold_sd:.3f}) | "
                  f"{r.reference_auc:.3f} | {r.volume_auc:.3f} | {r.chosen.split(' | ')[0]} | {r.seconds:.0f} |")
    md += ["", f"Mean nested-CV AUC over {len(df)} data sets: **{df.auc.mean():.3f}** pooled held-out "
               f"(headline), {df.auc_fold_mean.mean():.3f} mean of per-fold AUCs "
               f"(reference mean on the same data sets {df.reference_auc.mean():.3f})."]
    (args.out / "radmlbench_auc.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
