"""The cost of a run: per-rule summary of Snakemake's ``benchmark:`` files, and the
bare pyradiomics extraction it is compared against.

* :func:`summarise` reads ``results/benchmarks`` (one TSV per job) into one row per
  rule: jobs, wall, CPU and peak memory; :func:`stage_summary` splits the per-scan job
  (rule ``scan``) into its stages -- conversion, preprocessing, extraction -- from the
  cost file each job writes beside its benchmark file (``results/benchmarks/stages``).
* :func:`bare_extraction` times pyradiomics alone, in one already-warm process, on the
  preprocessed cases of a run: the irreducible cost of the features themselves.
* :func:`pyradiomics_batch` times pyradiomics' own command line (batch mode,
  ``--jobs N``) on the same cases: the peer a user would otherwise run.
* :func:`overhead` puts a run's numbers together as ratios measured in one run, and
  :func:`markdown_table` formats them for the README.

``python -m radsurv.benchmarks [results/benchmarks]`` prints the per-rule and per-stage tables.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

SUMMARY_COLUMNS = ["rule", "jobs", "total_s", "mean_s", "max_s", "cpu_s", "peak_rss_mb"]

#: Sub-folder of the benchmark folder with the per-scan job's stage costs
#: (:func:`radsurv.features.scan.run_scan`); not Snakemake benchmark files.
STAGES_DIR = "stages"


def summarise(bench_dir: str | Path) -> pd.DataFrame:
    """One row per rule: jobs, total / mean / max wall seconds, CPU seconds, peak RSS (MB).

    Benchmark files are ``<bench_dir>/<rule>.tsv`` (one job) or
    ``<bench_dir>/<rule>/<wildcards>.tsv`` (one file per job). Snakemake writes
    ``max_rss`` in MB and ``cpu_time`` in seconds (user + system of the job's
    process tree); ``NA`` (a job too short to sample) counts as 0.
    """
    root = Path(bench_dir)
    rows = []
    for f in sorted(root.rglob("*.tsv")):
        if f.parent == root / STAGES_DIR:
            continue
        rule = f.parent.name if f.parent != root else f.stem
        b = pd.read_csv(f, sep="\t")
        rows.append({"rule": rule, "s": float(b["s"].iloc[0]),
                     "cpu_time": float(pd.to_numeric(b["cpu_time"], errors="coerce").fillna(0).iloc[0]),
                     "max_rss": float(pd.to_numeric(b["max_rss"], errors="coerce").fillna(0).iloc[0])})
    return _per_group(pd.DataFrame(rows, columns=["rule", "s", "cpu_time", "max_rss"]))


def stage_summary(bench_dir: str | Path) -> pd.DataFrame:
    """The per-scan jobs split by stage: one row per stage (``rule`` column = stage name),
    with the columns of :func:`summarise`, from ``<bench_dir>/stages/<scan>.tsv``.

    Measured inside the job (:func:`radsurv.features.scan.run_scan`): wall and CPU seconds of each
    stage, and the job's peak RSS at the end of the stage (so a later stage's peak is at
    least an earlier one's). Unlike Snakemake's sampled benchmark files, CPU is exact.
    """
    from radsurv.features.scan import STAGE_COST_COLUMNS

    files = sorted(Path(bench_dir, STAGES_DIR).glob("*.tsv"))
    frames = [pd.read_csv(f, sep="\t") for f in files]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(STAGE_COST_COLUMNS))
    return _per_group(df.rename(columns={"stage": "rule"}), sort=False)


def _per_group(df: pd.DataFrame, sort: bool = True) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    g = df.groupby("rule", sort=False)
    out = pd.DataFrame({
        "jobs": g.size(),
        "total_s": g["s"].sum(),
        "mean_s": g["s"].mean(),
        "max_s": g["s"].max(),
        "cpu_s": g["cpu_time"].sum(),
        "peak_rss_mb": g["max_rss"].max(),
    }).reset_index()
    if sort:
        out = out.sort_values("total_s", ascending=False, kind="stable")
    return out.reset_index(drop=True)


def preprocessed_cases(results: str | Path) -> list[tuple[str, Path, Path]]:
    """``(scan_id, image, mask)`` of every scan a run preprocessed successfully."""
    cases = []
    for d in sorted(Path(results, "scans").glob("*/preprocessed")):
        img, mask = d / "image.nii.gz", d / "mask.nii.gz"
        if img.is_file() and mask.is_file():
            cases.append((d.parent.name, img, mask))
    return cases


def pyradiomics_only(params: Mapping[str, Any], resegment_range: Sequence[float] | None = None) -> dict[str, Any]:
    """The plain pyradiomics part of :func:`radsurv.features.extract.pyradiomics_params`.

    radsurv adds its own keys (e.g. ``radsurv.bin_origin``) and re-segments the intensity
    mask itself; a pyradiomics user would give ``resegmentRange`` to pyradiomics instead.
    This is that peer configuration: same settings, image types and feature classes.
    """
    out = {k: _plain(params[k]) for k in ("setting", "imageType", "featureClass") if k in params}
    if resegment_range:
        out["setting"]["resegmentRange"] = [float(v) for v in resegment_range]
    return out


def bare_extraction(cases: Sequence[tuple[str, Path, Path]], params: Mapping[str, Any]) -> pd.DataFrame:
    """Time pyradiomics alone on each case, in this process, one case at a time.

    The import of pyradiomics and a first warm-up call are outside the timers, so
    the result is the feature computation itself (reading the two NIfTI files
    included, as pyradiomics does it). One row per case: ``scan_id``, ``wall_s``,
    ``cpu_s`` (this process's user + system time), ``n_features``.
    """
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = RadiomicsFeatureExtractor(dict(params))
    if cases:  # warm-up: first-call costs (C extension set-up, caches) are not per case
        extractor.execute(str(cases[0][1]), str(cases[0][2]), label=1)
    rows = []
    for scan_id, img, mask in cases:
        t0, c0 = time.perf_counter(), time.process_time()
        result = extractor.execute(str(img), str(mask), label=1)
        rows.append({"scan_id": scan_id, "wall_s": time.perf_counter() - t0,
                     "cpu_s": time.process_time() - c0,
                     "n_features": sum(not k.startswith("diagnostics_") for k in result)})
    return pd.DataFrame(rows, columns=["scan_id", "wall_s", "cpu_s", "n_features"])


def pyradiomics_batch(cases: Sequence[tuple[str, Path, Path]], params: Mapping[str, Any],
                      workdir: str | Path, jobs: int = 2, timeout: float = 24 * 3600) -> dict[str, Any]:
    """Run pyradiomics' own CLI in batch mode (``--jobs``) on ``cases``; its wall time.

    Writes ``batch.csv`` (columns Image, Mask), ``params.yaml`` and ``features.csv``
    under ``workdir``. Returns ``wall_s``, ``cases`` and the number of rows written.
    """
    import yaml

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    batch = work / "batch.csv"
    with batch.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "Image", "Mask"])
        for scan_id, img, mask in cases:
            w.writerow([scan_id, str(Path(img).resolve()), str(Path(mask).resolve())])
    param_file = work / "params.yaml"
    param_file.write_text(yaml.safe_dump(_plain(params), sort_keys=False))
    out = work / "features.csv"
    exe = Path(sys.executable).parent / "pyradiomics"
    cmd = [str(exe), str(batch), "--param", str(param_file), "-o", str(out), "-f", "csv",
           "--jobs", str(jobs), "--verbosity", "1"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"pyradiomics batch failed ({res.returncode}): {res.stderr[-2000:]}")
    with out.open() as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh))
    return {"wall_s": wall, "cases": len(cases), "rows": n_rows, "jobs": jobs}


#: What a per-scan job's fresh Python process imports before its first line of work:
#: Snakemake's script preamble plus the stage's libraries (see workflow/scripts/*.py, radsurv.workflow).
STARTUP_IMPORTS = {
    "extract_scan_features": ("import snakemake.script, radsurv.workflow.features, radsurv.features.scan, "
                              "radsurv.ingest.convert, radiomics.featureextractor"),
}


def startup_seconds(imports: str, repeats: int = 3) -> float:
    """Median wall time of a fresh ``python -c "<imports>"``: a job's fixed start-up cost."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", imports], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def startup_costs(summary: pd.DataFrame, repeats: int = 3) -> pd.DataFrame:
    """Per per-scan rule: start-up seconds per job, jobs, and start-up's share of the rule's time."""
    rules = summary.set_index("rule")
    rows = []
    for rule, imports in STARTUP_IMPORTS.items():
        if rule not in rules.index:
            continue
        per_job = startup_seconds(imports, repeats)
        jobs, total = int(rules.loc[rule, "jobs"]), float(rules.loc[rule, "total_s"])
        rows.append({"rule": rule, "startup_s_per_job": per_job, "jobs": jobs,
                     "startup_s": per_job * jobs, "share_of_rule": per_job * jobs / total if total else float("nan")})
    return pd.DataFrame(rows, columns=["rule", "startup_s_per_job", "jobs", "startup_s", "share_of_rule"])


def _plain(obj: Any) -> Any:
    """Mappings/sequences to plain dict/list (for YAML)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def overhead(summary: pd.DataFrame, pipeline_wall_s: float, bare: pd.DataFrame, n_patients: int,
             n_scans: int, cores: int, batch_wall_s: float | None = None,
             dag_s: float | None = None, run_cpu_s: float | None = None,
             stages: pd.DataFrame | None = None) -> dict[str, Any]:
    """The run's cost as ratios measured in one run (``stages``: :func:`stage_summary`).

    * ``ratio_total_vs_bare``: the pipeline's wall time (all stages, ``cores`` cores)
      over the summed bare pyradiomics time of the same cases (one core): how much
      more than the feature computation the whole pipeline costs.
    * ``ratio_total_vs_bare_per_core``: the same with the bare time divided by
      ``cores`` (perfect parallel extraction) — the stricter reading.
    * ``ratio_extract_vs_bare``: the extraction stage's summed time inside the per-scan
      jobs over the bare time: pyradiomics in a fresh job process (first-call costs,
      one SimpleITK thread, its share of two busy cores) against in one warm process.
    * ``ratio_cpu_vs_bare_cpu``: CPU seconds of all jobs (their benchmark files) over the
      bare extraction's CPU seconds. Snakemake samples a job's CPU only while it runs
      and reports NA for jobs shorter than its first sample, so short jobs count too little.
    * ``ratio_run_cpu_vs_bare_cpu``: ``run_cpu_s`` -- user + system time of Snakemake and
      every process it waited for (``getrusage`` of the run) -- over the bare CPU seconds:
      the reliable CPU ratio, which other load on the machine barely changes (wall does).
    * ``ratio_total_vs_pyradiomics_batch``: pipeline wall over pyradiomics' own
      batch CLI with the same number of jobs.
    """
    rules = summary.set_index("rule") if len(summary) else pd.DataFrame(columns=SUMMARY_COLUMNS).set_index("rule")
    bare_s = float(bare["wall_s"].sum()) if len(bare) else float("nan")
    per_stage = stages.set_index("rule") if stages is not None and len(stages) else None
    extract_s = float(per_stage["total_s"].get("extraction", float("nan"))) if per_stage is not None else float("nan")
    bare_cpu = float(bare["cpu_s"].sum()) if len(bare) else float("nan")
    out: dict[str, Any] = {
        "n_patients": n_patients,
        "n_scans": n_scans,
        "cores": cores,
        "pipeline_wall_s": pipeline_wall_s,
        "jobs_cpu_s": float(rules["cpu_s"].sum()) if len(rules) else 0.0,
        "jobs_wall_s": float(rules["total_s"].sum()) if len(rules) else 0.0,
        "bare_extraction_s": bare_s,
        "extraction_stage_s": extract_s,
        "extraction_stage_cpu_s": (float(per_stage["cpu_s"].get("extraction", float("nan")))
                                   if per_stage is not None else float("nan")),
        "scan_jobs_overhead_s": scan_jobs_overhead(summary, stages),
        "peak_rss_mb": float(rules["peak_rss_mb"].max()) if len(rules) else float("nan"),
        "s_per_patient": pipeline_wall_s / n_patients if n_patients else float("nan"),
        "ratio_total_vs_bare": pipeline_wall_s / bare_s if bare_s else float("nan"),
        "ratio_total_vs_bare_per_core": pipeline_wall_s / (bare_s / cores) if bare_s else float("nan"),
        "ratio_extract_vs_bare": extract_s / bare_s if bare_s else float("nan"),
        "bare_extraction_cpu_s": bare_cpu,
        "ratio_cpu_vs_bare_cpu": (float(rules["cpu_s"].sum()) / bare_cpu) if bare_cpu and len(rules) else float("nan"),
        "dag_s": dag_s,
        "pyradiomics_batch_s": batch_wall_s,
        "ratio_total_vs_pyradiomics_batch": (pipeline_wall_s / batch_wall_s) if batch_wall_s else None,
        "run_cpu_s": run_cpu_s,
    }
    return with_derived(out)


#: Rules whose jobs run the per-scan stages (one scan per job, or a batch of scans per job).
SCAN_RULES = ("extract_scan_features", "extract_scan_batch")


def scan_jobs_overhead(summary: pd.DataFrame, stages: pd.DataFrame | None) -> float:
    """Wall seconds the per-scan jobs (:data:`SCAN_RULES`) spent outside their measured stages:
    process start-up, imports, the engine's start-up (pictologics: once per batch job), writing
    outputs. Their summed benchmark wall minus the summed stage walls; NaN without stage costs."""
    if stages is None or not len(stages) or not len(summary):
        return float("nan")
    jobs = summary[summary["rule"].isin(SCAN_RULES)]
    if not len(jobs):
        return float("nan")
    return max(0.0, float(jobs["total_s"].sum()) - float(stages["total_s"].sum()))


#: The targets of issue #21 for a faster engine (``engine_comparison``).
ENGINE_TARGETS = {"extraction_speedup": 5.0, "pipeline_vs_bare_speedup": 3.0, "peak_rss_mb": 2048.0}


def _extraction_with_startup(run: Mapping[str, Any]) -> tuple[float, float, float]:
    """``(extraction_s, scan_jobs_overhead_s, extraction_with_startup_s)`` of one :func:`overhead` row: the
    extraction stage summed over scans, the per-scan jobs' time outside their stages, and their sum (the
    stage alone where the outside time is unknown, NaN)."""
    ext = float(run.get("extraction_stage_s", float("nan")))
    ovh = float(run.get("scan_jobs_overhead_s", float("nan")))
    return ext, ovh, ext + (ovh if ovh == ovh else 0.0)


def engine_comparison(runs: Mapping[str, Mapping[str, Any]], bare_s: float,
                      reference: str = "pyradiomics") -> dict[str, Any]:
    """The same cohort through the pipeline once per engine (``runs``: engine -> :func:`overhead` row),
    against bare pyradiomics on the same cases (``bare_s``: its summed wall seconds).

    Per engine: ``extraction_s`` (the extraction stage summed over scans), ``extraction_with_startup_s``
    (plus the per-scan jobs' time outside their stages, :func:`scan_jobs_overhead`, which holds the
    engine's start-up: the stricter reading), the pipeline's wall and peak RSS per job; and against
    the ``reference`` engine's run and bare pyradiomics, speed-ups (> 1: faster) with the
    :data:`ENGINE_TARGETS` checked (``meets_*``; the extraction target on the stricter reading).
    """
    ref = runs.get(reference)
    out: dict[str, Any] = {"reference": reference, "bare_extraction_s": bare_s, "targets": dict(ENGINE_TARGETS),
                           "engines": {}}
    for name, r in runs.items():
        ext, ovh, ext_all = _extraction_with_startup(r)
        wall, rss = float(r["pipeline_wall_s"]), float(r.get("peak_rss_mb", float("nan")))
        e: dict[str, Any] = {
            "pipeline_wall_s": wall, "extraction_s": ext,
            "extraction_cpu_s": float(r.get("extraction_stage_cpu_s", float("nan"))),
            "scan_jobs_overhead_s": ovh, "extraction_with_startup_s": ext_all, "peak_rss_mb": rss,
            "pipeline_speedup_vs_bare": bare_s / wall if wall else float("nan"),
            "meets_peak_rss": rss < ENGINE_TARGETS["peak_rss_mb"],
        }
        e["meets_pipeline_vs_bare"] = e["pipeline_speedup_vs_bare"] >= ENGINE_TARGETS["pipeline_vs_bare_speedup"]
        if ref is not None and name != reference:
            ref_ext, _, ref_all = _extraction_with_startup(ref)
            e["extraction_speedup"] = ref_ext / ext if ext else float("nan")
            e["extraction_with_startup_speedup"] = ref_all / ext_all if ext_all else float("nan")
            e["pipeline_speedup_vs_reference"] = float(ref["pipeline_wall_s"]) / wall if wall else float("nan")
            e["meets_extraction"] = e["extraction_with_startup_speedup"] >= ENGINE_TARGETS["extraction_speedup"]
        out["engines"][name] = e
    return out


def engine_markdown(comparison: Mapping[str, Any]) -> str:
    """The README table of :func:`engine_comparison`: one row per engine, then bare pyradiomics."""
    ref = comparison["reference"]
    lines = ["| run | pipeline wall (s) | extraction stage, sum: wall / CPU (s) | + per-scan jobs' time outside "
             "stages (start-up) (s) | extraction vs " + ref + " (with start-up) | pipeline vs " + ref
             + " | bare pyradiomics sum / pipeline wall | peak RSS per job (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None or (isinstance(v, float) and v != v) else fmt.format(v)

    for name, e in comparison["engines"].items():
        sp = (f"{f(e.get('extraction_speedup'), '{:.1f}x')} ({f(e.get('extraction_with_startup_speedup'), '{:.1f}x')})"
              if "extraction_speedup" in e else "-")
        lines.append(f"| pipeline, {name} | {f(e['pipeline_wall_s'], '{:.0f}')} | {f(e['extraction_s'], '{:.0f}')} / "
                     f"{f(e['extraction_cpu_s'], '{:.0f}')} | {f(e['scan_jobs_overhead_s'], '{:.0f}')} | {sp} | "
                     f"{f(e.get('pipeline_speedup_vs_reference'), '{:.2f}x')} | "
                     f"{f(e['pipeline_speedup_vs_bare'], '{:.2f}x')} | {f(e['peak_rss_mb'], '{:.0f}')} |")
    lines.append(f"| bare pyradiomics, same cases (one warm process) | - | "
                 f"{f(comparison['bare_extraction_s'], '{:.0f}')} / - | - | - | - | - | - |")
    return "\n".join(lines)


def with_derived(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` plus the ratios computable from its raw numbers (for rows saved before a
    ratio existed): ``ratio_run_cpu_vs_bare_cpu`` and ``snakemake_own_cpu_s``."""
    out = dict(row)
    run_cpu, bare_cpu = out.get("run_cpu_s"), out.get("bare_extraction_cpu_s")
    if run_cpu is not None and run_cpu == run_cpu and bare_cpu:
        out["ratio_run_cpu_vs_bare_cpu"] = run_cpu / bare_cpu
        if out.get("jobs_cpu_s") is not None:
            out["snakemake_own_cpu_s"] = run_cpu - out["jobs_cpu_s"]
    return out


#: Columns of the README table: (key of :func:`overhead`, header, format).
TABLE = [
    ("n_patients", "N patients", "{:d}"),
    ("n_scans", "scans", "{:d}"),
    ("pipeline_wall_s", "pipeline wall (s)", "{:.0f}"),
    ("s_per_patient", "s / patient", "{:.2f}"),
    ("bare_extraction_s", "bare pyradiomics, sum (s)", "{:.0f}"),
    ("ratio_total_vs_bare", "pipeline / bare sum", "{:.2f}"),
    ("ratio_total_vs_bare_per_core", "pipeline / (bare sum / cores)", "{:.2f}"),
    ("ratio_extract_vs_bare", "extraction stage / bare", "{:.2f}"),
    ("ratio_run_cpu_vs_bare_cpu", "run CPU / bare CPU", "{:.2f}"),
    ("pyradiomics_batch_s", "pyradiomics CLI --jobs 2 (s)", "{:.0f}"),
    ("ratio_total_vs_pyradiomics_batch", "pipeline / CLI", "{:.2f}"),
    ("dag_s", "DAG build (s)", "{:.1f}"),
    ("peak_rss_mb", "peak RSS per job (MB)", "{:.0f}"),
]


def markdown_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """The README's benchmark table, one row per run (missing values as ``-``)."""
    lines = ["| " + " | ".join(h for _, h, _ in TABLE) + " |",
             "|" + "|".join("---:" for _ in TABLE) + "|"]
    for row in map(with_derived, rows):
        cells = []
        for key, _, fmt in TABLE:
            v = row.get(key)
            cells.append("-" if v is None or (isinstance(v, float) and v != v) else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_markdown(summary: pd.DataFrame) -> str:
    """Per-stage markdown table (jobs, wall, CPU, peak memory) of :func:`summarise`."""
    lines = ["| stage | jobs | wall, sum (s) | wall, mean per job (s) | CPU (s) | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in summary.itertuples(index=False):
        lines.append(f"| {r.rule} | {r.jobs} | {r.total_s:.1f} | {r.mean_s:.2f} | {r.cpu_s:.1f} | "
                     f"{r.peak_rss_mb:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m radsurv.benchmarks [results/benchmarks] [--markdown]``: per-rule, then per-stage table."""
    args = sys.argv[1:] if argv is None else argv
    md = "--markdown" in args
    paths = [a for a in args if a != "--markdown"]
    root = paths[0] if paths else "results/benchmarks"
    for table in (summarise(root), stage_summary(root)):
        if md:
            print(stage_markdown(table) + "\n")
        else:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}") + "\n")


if __name__ == "__main__":
    main()
