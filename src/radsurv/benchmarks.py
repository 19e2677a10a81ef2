"""Per-rule cost of a run, from Snakemake's ``benchmark:`` files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def summarise(bench_dir: str | Path) -> pd.DataFrame:
    """One row per rule: jobs, total / mean / max wall seconds, CPU seconds, peak RSS (MB).

    Benchmark files are ``<bench_dir>/<rule>.tsv`` (one job) or
    ``<bench_dir>/<rule>/<wildcards>.tsv`` (one file per job).
    """
    root = Path(bench_dir)
    rows = []
    for f in sorted(root.rglob("*.tsv")):
        rule = f.parent.name if f.parent != root else f.stem
        b = pd.read_csv(f, sep="\t")
        rows.append({"rule": rule, "s": float(b["s"].iloc[0]),
                     "cpu_time": float(pd.to_numeric(b["cpu_time"], errors="coerce").fillna(0).iloc[0]),
                     "max_rss": float(pd.to_numeric(b["max_rss"], errors="coerce").fillna(0).iloc[0])})
    if not rows:
        return pd.DataFrame(columns=["rule", "jobs", "total_s", "mean_s", "max_s", "cpu_s", "peak_rss_mb"])
    df = pd.DataFrame(rows)
    g = df.groupby("rule", sort=False)
    out = pd.DataFrame({
        "jobs": g.size(),
        "total_s": g["s"].sum(),
        "mean_s": g["s"].mean(),
        "max_s": g["s"].max(),
        "cpu_s": g["cpu_time"].sum(),
        "peak_rss_mb": g["max_rss"].max(),
    }).reset_index()
    return out.sort_values("total_s", ascending=False, kind="stable").reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m radsurv.benchmarks [results/benchmarks]``: print the per-rule table."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    table = summarise(args[0] if args else "results/benchmarks")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
