"""Benchmark: the whole pipeline on synthetic cohorts of N patients, against bare pyradiomics.

Not a pytest test (no ``test_`` prefix); run it by hand (minutes to hours)::

    python tests/benchmarks/bench_pipeline.py --workload clinical_ct --n 50 200 [--out bench_out]
    python tests/benchmarks/bench_pipeline.py --workload demo --n 50 200
    python tests/benchmarks/bench_pipeline.py --workload clinical_ct --engine pictologics --n 12 --out bench_pic
    python tests/benchmarks/bench_pipeline.py --workload clinical_ct --engine pictologics pyradiomics --n 200 \
        --no-peer --out bench_engines   # one cohort, the pipeline per engine, bare pyradiomics once (#21)
    python tests/benchmarks/bench_pipeline.py --memory-check      # one 512x512x150 CT
    python tests/benchmarks/bench_pipeline.py --out bench_out --markdown   # reprint the table

A *workload* (``tests/benchmarks/workloads/<name>.yaml``) is a phantom CT geometry plus
config overrides laid onto ``config/config.yaml``: ``clinical_ct`` is a clinical-size lung
CT study with filters on (512x512x100, adult thorax, Lung1-size tumours, 1 mm grid, LoG
1-5 mm + wavelet); ``demo`` is the bundled demo's small grid and settings. For each N, in
``<out>/N<N>/``:

1. A synthetic cohort of N patients (+ 30 % test-retest scans, at least 5) is written with
   ``radsurv.synthetic.demo.generate_demo_cohort`` *before* timing starts, and the config points at
   it (the demo rule does not run).
2. ``snakemake -n`` on the fresh directory is timed (the DAG up to the discovery
   checkpoint), then the real run with ``--cores``: its wall time is the *pipeline total*,
   and ``getrusage`` gives the CPU time of Snakemake and every job (*run CPU*). Per-stage
   wall, CPU and peak RSS come from the run's benchmark files, and the per-scan job is split
   into conversion, preprocessing and extraction by the stage costs it writes beside its
   benchmark file (:func:`radsurv.benchmarks.stage_summary`).
3. After the run, ``snakemake -n --forceall`` times building the full DAG (every
   per-scan job known).
4. *Bare extraction*: pyradiomics on the same preprocessed cases, one after the other
   in one warm process (:func:`radsurv.benchmarks.bare_extraction`); its summed time is
   the feature computation itself.
5. *Peer*: pyradiomics' own CLI in batch mode with ``--jobs <cores>`` on the same cases.

Ratios are measured in one run on one machine (:func:`radsurv.benchmarks.overhead`).
Results are written to ``<out>/results.json`` (appended per N) and ``<out>/N<N>/stages.md``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from radsurv import benchmarks as rb  # noqa: E402
from radsurv.config import apply_site, deep_merge  # noqa: E402
from radsurv.features.extract import pyradiomics_params  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} CPUs, {mem:.0f} GiB, Python {platform.python_version()}"


def snakemake(workdir: Path, *args: str, timeout: float = 6 * 3600) -> tuple[float, float]:
    """Run the workflow in ``workdir``; return its wall time and CPU time (raises on failure).

    CPU time is user + system of Snakemake and every process it waited for (its jobs):
    minus the jobs' own CPU (benchmark files) it is Snakemake's scheduling/bookkeeping cost.
    """
    # The default workflow profile, as `snakemake` from the repository uses it; --cores overrides.
    cmd = [SNAKEMAKE, "-s", str(REPO / "workflow" / "Snakefile"), "--workflow-profile",
           str(REPO / "workflow" / "profiles" / "default"), *args]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    (workdir / "snakemake_stdout.log").open("a").write(res.stdout + res.stderr)
    if res.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{res.stderr[-4000:]}")
    return wall, cpu


WORKLOADS = Path(__file__).resolve().parent / "workloads"


def load_workload(name: str) -> dict:
    """``tests/benchmarks/workloads/<name>.yaml``: description, CT geometry, config overrides."""
    w = yaml.safe_load((WORKLOADS / f"{name}.yaml").read_text())
    return {"name": name, "description": w.get("description", name),
            "geometry": dict(w.get("geometry") or {}), "config": dict(w.get("config") or {})}


def write_config(workdir: Path, cohort: Path, overrides: dict | None = None, features_only: bool = False) -> dict:
    cfg = deep_merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), overrides or {})
    cfg["cohort"]["dicom_dir"] = str(cohort / "dicom")
    cfg["cohort"]["clinical_table"] = str(cohort / "clinical.csv")
    if features_only:  # a feature-extraction-only study: no clinical table, no modelling block
        cfg["cohort"].pop("clinical_table")
        cfg.pop("modelling", None)
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def generate_cohort(cohort: Path, n: int, cores: int, geometry: dict) -> tuple[int, float]:
    """The synthetic cohort of N patients (+30 % test-retest, at least 5); (retest scans, seconds)."""
    from radsurv.synthetic.demo import generate_demo_cohort

    retest = min(n, max(5, round(0.3 * n))) if n >= 5 else 0
    t0 = time.perf_counter()
    generate_demo_cohort(cohort, n_patients=n, n_retest=retest, seed=42, workers=cores, **geometry)
    return retest, time.perf_counter() - t0


def run_one(n: int, out: Path, cores: int, geometry: dict, targets: list[str], peer: bool,
            reuse: bool = False, workload: dict | None = None, workdir: Path | None = None,
            cohort: tuple[Path, float] | None = None, bare: pd.DataFrame | None = None) -> tuple[dict, pd.DataFrame]:
    """One pipeline run and its comparisons; returns its results row and the bare extraction table.

    ``workdir`` defaults to ``<out>/N<n>``; ``cohort`` (path, generation seconds) is an already
    generated cohort to run on (else one is generated inside ``workdir``); ``bare`` is bare
    pyradiomics already timed on the same cases (else it is timed after the run).
    """
    workdir = workdir or out / f"N{n}"
    done = workdir / "pipeline.json"
    if reuse and done.is_file():  # the pipeline part of an earlier call; redo the comparisons
        saved = json.loads(done.read_text())
        gen_s, load_before, dag_fresh, wall, dag_full = (saved[k] for k in (
            "generate_s", "load_before", "dag_fresh_s", "wall_s", "dag_full_s"))
        run_cpu = saved.get("run_cpu_s", float("nan"))
        cfg = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
        print(f"[N={n}] reusing the pipeline run in {workdir} ({wall:.1f} s)", flush=True)
    else:
        if workdir.exists():
            subprocess.run(["rm", "-rf", str(workdir)], check=True)
        workdir.mkdir(parents=True)
        if cohort is None:
            cohort_dir = workdir / "cohort"
            retest, gen_s = generate_cohort(cohort_dir, n, cores, geometry)
            print(f"[N={n}] cohort generated in {gen_s:.0f} s ({n} patients, {retest} retest)", flush=True)
        else:
            cohort_dir, gen_s = cohort
        cfg = write_config(workdir, cohort_dir, (workload or {}).get("config"),
                           features_only=targets == ["results/features/features.tsv"])

        load_before = os.getloadavg()[0]
        dag_fresh, _ = snakemake(workdir, "-n", "--cores", str(cores), *targets)
        wall, run_cpu = snakemake(workdir, "--cores", str(cores), *targets)
        print(f"[N={n}] pipeline {wall:.1f} s ({workdir})", flush=True)
        dag_full, _ = snakemake(workdir, "-n", "--forceall", "--cores", str(cores), *targets)
        done.write_text(json.dumps({"generate_s": gen_s, "load_before": load_before, "dag_fresh_s": dag_fresh,
                                    "wall_s": wall, "run_cpu_s": run_cpu, "dag_full_s": dag_full}))

    results = workdir / "results"
    summary = rb.summarise(results / "benchmarks")
    per_stage = rb.stage_summary(results / "benchmarks")
    (workdir / "stages.md").write_text(rb.stage_markdown(summary) + "\n\n" + rb.stage_markdown(per_stage) + "\n")
    summary.to_csv(workdir / "stages.tsv", sep="\t", index=False)
    per_stage.to_csv(workdir / "scan_stages.tsv", sep="\t", index=False)
    cases = rb.preprocessed_cases(results)
    eff = apply_site(copy.deepcopy(cfg), REPO / "config" / "sites")  # the settings the run used
    reseg = eff.get("preprocessing", {}).get("resegment_range")
    params = rb.pyradiomics_only(pyradiomics_params(eff["extraction"], eff.get("preprocessing")), reseg)
    if bare is None:
        bare = rb.bare_extraction(cases, params)
        print(f"[N={n}] bare extraction {bare['wall_s'].sum():.1f} s on {len(cases)} cases", flush=True)
    elif set(bare["scan_id"]) != {c[0] for c in cases}:
        print(f"[N={n}] WARNING: bare extraction timed on other cases than this run's", flush=True)
    bare.to_csv(workdir / "bare_extraction.tsv", sep="\t", index=False)
    batch = rb.pyradiomics_batch(cases, params, workdir / "pyradiomics_cli", jobs=cores)["wall_s"] if peer else None
    startup = rb.startup_costs(summary)
    startup.to_csv(workdir / "startup.tsv", sep="\t", index=False)
    print(startup.to_string(index=False, float_format=lambda v: f"{v:.2f}"), flush=True)
    row = rb.overhead(summary, wall, bare, n_patients=n, n_scans=len(cases), cores=cores,
                      batch_wall_s=batch, dag_s=dag_full, run_cpu_s=run_cpu, stages=per_stage)
    row.update(startup_s=float(startup["startup_s"].sum()),
               startup_share_of_jobs=float(startup["startup_s"].sum()) / row["jobs_wall_s"],
               load_avg_1min=(load_before, os.getloadavg()[0]), dag_fresh_s=dag_fresh, generate_s=gen_s,
               geometry=geometry, targets=targets,
               machine=machine(), date=dt.date.today().isoformat(),
               workload=(workload or {}).get("name", "custom"),
               engine=eff["extraction"].get("engine"), workdir=str(workdir),
               workload_description=(workload or {}).get("description", ""),
               stages=summary.to_dict(orient="records"), scan_stages=per_stage.to_dict(orient="records"))
    print(rb.stage_markdown(summary) + "\n\n" + rb.stage_markdown(per_stage), flush=True)
    print(json.dumps({k: v for k, v in row.items() if k != "stages"}, indent=1, default=str), flush=True)
    return row, bare


def run_engines(n: int, out: Path, cores: int, geometry: dict, targets: list[str], peer: bool,
                workload: dict, engines: list[str], reuse: bool = False) -> tuple[list[dict], dict]:
    """One cohort of N patients through the pipeline once per engine (``<out>/N<n>/<engine>/``), then
    bare pyradiomics (and the peer CLI) once, on the cases of the first engine's run; the engine
    comparison (:func:`radsurv.benchmarks.engine_comparison`) goes to ``<out>/N<n>/engines.json``
    and ``engines.md``."""
    base = out / f"N{n}"
    cohort_dir, meta = base / "cohort", base / "cohort.json"
    if reuse and meta.is_file():
        gen_s = json.loads(meta.read_text())["generate_s"]
    else:
        if base.exists():
            subprocess.run(["rm", "-rf", str(base)], check=True)
        base.mkdir(parents=True)
        retest, gen_s = generate_cohort(cohort_dir, n, cores, geometry)
        meta.write_text(json.dumps({"generate_s": gen_s, "retest": retest}))
        print(f"[N={n}] cohort generated in {gen_s:.0f} s ({n} patients, {retest} retest)", flush=True)
    rows: list[dict] = []
    runs: dict[str, dict] = {}
    bare = None
    # In the order given; the first run is followed by bare pyradiomics (and the peer) on its cases.
    for engine in engines:
        w = dict(workload, name=f"{workload['name']}+{engine}",
                 config=deep_merge(workload["config"], {"extraction": {"engine": engine}}))
        workdir = base / engine
        cohort = (cohort_dir, gen_s)
        if bare is None:  # the first engine's run times bare pyradiomics (and the peer) on its cases
            row, bare = run_one(n, out, cores, geometry, targets, peer, reuse, w, workdir, cohort)
        else:
            row, _ = run_one(n, out, cores, geometry, targets, False, reuse, w, workdir, cohort, bare)
        rows.append(row)
        runs[engine] = row
    comparison = rb.engine_comparison(runs, float(bare["wall_s"].sum()))
    comparison.update(n_patients=n, n_scans=rows[0]["n_scans"], machine=machine(), date=dt.date.today().isoformat(),
                      workload=workload["name"], cores=cores, targets_run=targets,
                      load_avg_1min={e: r["load_avg_1min"] for e, r in runs.items()})
    (base / "engines.json").write_text(json.dumps(comparison, indent=1, default=str))
    (base / "engines.md").write_text(rb.engine_markdown(comparison) + "\n")
    print(rb.engine_markdown(comparison), flush=True)
    return rows, comparison


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--workload", default="demo",
                    help="tests/benchmarks/workloads/<name>.yaml: CT geometry + config overrides "
                         f"({', '.join(sorted(p.stem for p in WORKLOADS.glob('*.yaml')))})")
    ap.add_argument("--rows", type=int, help="CT rows = cols (default: the workload's grid)")
    ap.add_argument("--slices", type=int, help="CT slices (default: the demo's)")
    ap.add_argument("--pixel-spacing", type=float)
    ap.add_argument("--slice-thickness", type=float)
    ap.add_argument("--memory-check", action="store_true",
                    help="2 patients on a 512x512x150 CT (0.8 mm pixels, 2 mm slices, adult thorax), up to "
                         "the feature matrix, with the --workload's settings; report peak RSS per job")
    ap.add_argument("--engine", choices=["pyradiomics", "pictologics"], nargs="+",
                    help="extraction.engine of the pipeline run (default: the workload's / config's); several: "
                         "one cohort through the pipeline once per engine (<out>/N<n>/<engine>/), bare "
                         "pyradiomics once on the same cases, and the engine comparison in <out>/N<n>/engines.md")
    ap.add_argument("--features-only", action="store_true",
                    help="run the pipeline up to the feature matrix (snakemake features), e.g. for cohorts too "
                         "small to model")
    ap.add_argument("--no-peer", action="store_true", help="skip pyradiomics' own CLI")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse <out>/N<N>'s finished pipeline run; redo only the measurements after it")
    ap.add_argument("--markdown", action="store_true", help="print the README table of <out>/results.json")
    args = ap.parse_args()
    args.out = args.out.resolve()  # the config's cohort paths must hold from Snakemake's working directory
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "results.json"
    if args.markdown:
        rows = json.loads(store.read_text())
        print(f"Machine: {rows[-1]['machine']}; date: {rows[-1]['date']}\n")
        print(rb.markdown_table(rows))
        return
    workload = load_workload(args.workload)
    engines: list[str] = list(dict.fromkeys(args.engine or []))
    if len(engines) == 1:  # the same workload, another engine: an override of the workload's config
        workload["config"] = deep_merge(workload["config"], {"extraction": {"engine": engines[0]}})
        workload["name"] = f"{workload['name']}+{engines[0]}"
    geometry: dict = dict(workload["geometry"])
    targets: list[str] = []
    ns = args.n
    if args.features_only:
        targets = ["results/features/features.tsv"]
    if args.memory_check:
        geometry = {"rows": 512, "cols": 512, "n_slices": 150, "pixel_spacing": 0.8, "slice_thickness": 2.0,
                    "anatomy_scale": 1.45}
        targets = ["results/features/features.tsv"]
        ns = [2]
    for key, val in (("rows", args.rows), ("cols", args.rows), ("n_slices", args.slices),
                     ("pixel_spacing", args.pixel_spacing), ("slice_thickness", args.slice_thickness)):
        if val is not None:
            geometry[key] = val
    rows = json.loads(store.read_text()) if store.exists() else []
    peer = not args.no_peer and not args.memory_check
    for n in ns:
        if len(engines) > 1:
            new, comparison = run_engines(n, args.out, args.cores, geometry, targets, peer, workload, engines,
                                          reuse=args.reuse)
            rows.extend(new)
            comparisons = args.out / "engines.json"
            saved = json.loads(comparisons.read_text()) if comparisons.exists() else []
            comparisons.write_text(json.dumps(saved + [comparison], indent=1, default=str))
        else:
            row, _ = run_one(n, args.out, args.cores, geometry, targets, peer=peer, reuse=args.reuse,
                             workload=workload)
            rows.append(row)
        store.write_text(json.dumps(rows, indent=1, default=str))
    print(f"\nMachine: {machine()}; date: {dt.date.today().isoformat()}\n")
    print(rb.markdown_table(rows))


if __name__ == "__main__":
    main()
