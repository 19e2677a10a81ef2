from __future__ import annotations

from radsurv.benchmarks import stage_summary, summarise

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_summarise_groups_per_rule(tmp_path):
    (tmp_path / "extract").mkdir()
    (tmp_path / "extract" / "A_S1.tsv").write_text(HEADER + "2.0\t0:00:02\t300.0\t1\t1\t1\t0\t0\t90\t1.8\n")
    (tmp_path / "extract" / "B_S1.tsv").write_text(HEADER + "4.0\t0:00:04\t500.0\t1\t1\t1\t0\t0\t90\t3.9\n")
    (tmp_path / "model.tsv").write_text(HEADER + "10.0\t0:00:10\t800.0\t1\t1\t1\t0\t0\t90\t9.5\n")
    t = summarise(tmp_path).set_index("rule")
    assert t.loc["extract", "jobs"] == 2 and t.loc["extract", "total_s"] == 6.0
    assert t.loc["extract", "peak_rss_mb"] == 500.0 and t.loc["model", "cpu_s"] == 9.5
    assert list(t.index) == ["model", "extract"]
    assert summarise(tmp_path / "none").empty


def test_stage_summary_splits_the_scan_job_and_is_not_a_rule(tmp_path):
    """The per-scan job's stage costs (radsurv.features.scan.run_scan) sit beside the benchmark files:
    they make the per-stage table, and do not count as a rule (no double counting)."""
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "A_S1.tsv").write_text(HEADER + "6.0\t0:00:06\t400.0\t1\t1\t1\t0\t0\t90\t5.0\n")
    (tmp_path / "stages").mkdir()
    for sid, conv in (("A_S1", 1.0), ("B_S1", 2.0)):
        (tmp_path / "stages" / f"{sid}.tsv").write_text(
            "stage\ts\tcpu_time\tmax_rss\n"
            f"conversion\t{conv}\t0.9\t300.0\npreprocessing\t0.5\t0.5\t310.0\nextraction\t3.0\t2.9\t390.0\n")
    assert list(summarise(tmp_path)["rule"]) == ["scan"]
    st = stage_summary(tmp_path)
    assert list(st["rule"]) == ["conversion", "preprocessing", "extraction"]  # pipeline order
    st = st.set_index("rule")
    assert st.loc["conversion", "jobs"] == 2 and st.loc["conversion", "total_s"] == 3.0
    assert st.loc["conversion", "max_s"] == 2.0 and st.loc["extraction", "cpu_s"] == pytest.approx(5.8)
    assert st.loc["extraction", "peak_rss_mb"] == 390.0
    assert stage_summary(tmp_path / "none").empty


# ----------------------------------------------------------------- bare extraction, ratios
import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from radsurv import benchmarks as rb  # noqa: E402

PARAMS = {"setting": {"label": 1, "binWidth": 25.0, "resampledPixelSpacing": None},
          "imageType": {"Original": {}}, "featureClass": {"firstorder": [], "shape": []}}


def _case(root, scan_id, seed):
    import SimpleITK as sitk

    d = root / "scans" / scan_id / "preprocessed"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:24, :24, :24]
    mask = ((z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 <= 49).astype(np.uint8)
    img = sitk.GetImageFromArray((rng.normal(0, 30, mask.shape) + 40 * mask).astype(np.int16))
    m = sitk.GetImageFromArray(mask)
    for im in (img, m):
        im.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(img, str(d / "image.nii.gz"))
    sitk.WriteImage(m, str(d / "mask.nii.gz"))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_cases")
    for i, sid in enumerate(["P1_S1", "P2_S1"]):
        _case(root, sid, i)
    (root / "scans" / "P3_S1" / "preprocessed").mkdir(parents=True)  # failed scan: no image
    return rb.preprocessed_cases(root)


def test_preprocessed_cases_skip_scans_without_images(cases):
    assert [c[0] for c in cases] == ["P1_S1", "P2_S1"]


def test_bare_extraction_times_every_case(cases):
    bare = rb.bare_extraction(cases, PARAMS)
    assert list(bare["scan_id"]) == ["P1_S1", "P2_S1"]
    assert (bare["wall_s"] > 0).all() and (bare["cpu_s"] >= 0).all()
    # firstorder (18) + shape (14 in 3-D) features
    assert (bare["n_features"] == 32).all()


def test_pyradiomics_cli_batch_runs_the_same_cases(cases, tmp_path):
    out = rb.pyradiomics_batch(cases, PARAMS, tmp_path, jobs=1)
    assert out["rows"] == out["cases"] == 2 and out["wall_s"] > 0
    header = (tmp_path / "features.csv").read_text().splitlines()[0]
    assert "original_firstorder_Mean" in header and "original_shape_MeshVolume" in header


def test_overhead_ratios_and_table(tmp_path):
    (tmp_path / "extract").mkdir()
    for i, s in enumerate([3.0, 5.0]):
        (tmp_path / "extract" / f"S{i}.tsv").write_text(HEADER + f"{s}\t0\t200\t1\t1\t1\t0\t0\t90\t{s - 1}\n")
    (tmp_path / "convert.tsv").write_text(HEADER + "2.0\t0\t1900.0\t1\t1\t1\t0\t0\t90\t1.5\n")
    summary = summarise(tmp_path)
    import pandas as pd

    stages = pd.DataFrame({"rule": ["conversion", "extraction"], "jobs": [2, 2], "total_s": [1.0, 6.0],
                           "mean_s": [0.5, 3.0], "max_s": [0.6, 4.0], "cpu_s": [1.0, 5.0],
                           "peak_rss_mb": [100.0, 150.0]})

    bare = pd.DataFrame({"scan_id": ["S0", "S1"], "wall_s": [1.0, 3.0], "cpu_s": [1.0, 3.0], "n_features": 5})
    row = rb.overhead(summary, pipeline_wall_s=6.0, bare=bare, n_patients=2, n_scans=2, cores=2,
                      batch_wall_s=3.0, dag_s=0.5, stages=stages)
    assert row["ratio_total_vs_bare"] == pytest.approx(6.0 / 4.0)
    assert row["ratio_total_vs_bare_per_core"] == pytest.approx(6.0 / 2.0)
    assert row["ratio_extract_vs_bare"] == pytest.approx(6.0 / 4.0)  # the extraction stage, not the job
    assert row["ratio_total_vs_pyradiomics_batch"] == pytest.approx(2.0)
    assert row["peak_rss_mb"] == 1900.0 and row["s_per_patient"] == 3.0
    assert row["jobs_cpu_s"] == pytest.approx(2.0 + 4.0 + 1.5)
    assert row["ratio_cpu_vs_bare_cpu"] == pytest.approx(7.5 / 4.0)
    assert "ratio_run_cpu_vs_bare_cpu" not in row  # no run CPU measured: no ratio invented
    no_stages = rb.overhead(summary, pipeline_wall_s=6.0, bare=bare, n_patients=2, n_scans=2, cores=2)
    assert no_stages["ratio_extract_vs_bare"] != no_stages["ratio_extract_vs_bare"]  # NaN, not a guess
    with_cpu = rb.overhead(summary, pipeline_wall_s=6.0, bare=bare, n_patients=2, n_scans=2, cores=2,
                           run_cpu_s=10.0)
    assert with_cpu["ratio_run_cpu_vs_bare_cpu"] == pytest.approx(10.0 / 4.0)
    assert with_cpu["snakemake_own_cpu_s"] == pytest.approx(10.0 - 7.5)
    # rows saved before the ratio existed get it from their raw numbers
    old = {k: v for k, v in with_cpu.items() if k not in ("ratio_run_cpu_vs_bare_cpu", "snakemake_own_cpu_s")}
    assert rb.with_derived(old)["ratio_run_cpu_vs_bare_cpu"] == pytest.approx(2.5)
    json.dumps(row)  # serialisable for results.json
    table = rb.markdown_table([row, {**row, "pyradiomics_batch_s": None}]).splitlines()
    assert len(table) == 4 and table[0].count("|") == len(rb.TABLE) + 1
    assert "| 1.50 |" in table[2] and table[3].split("|")[10].strip() == "-"
    md = rb.stage_markdown(summary).splitlines()
    assert md[2].startswith("| extract | 2 | 8.0 |")


def test_startup_costs_share(tmp_path):
    import pandas as pd

    summary = pd.DataFrame({"rule": ["extract_scan_features", "fit_models"], "jobs": [4, 1], "total_s": [8.0, 1.0],
                            "mean_s": [2.0, 1.0], "max_s": [2.0, 1.0], "cpu_s": [1.0, 1.0],
                            "peak_rss_mb": [1.0, 1.0]})
    t = rb.startup_costs(summary, repeats=1)
    assert list(t["rule"]) == ["extract_scan_features"] and t.loc[0, "jobs"] == 4
    assert t.loc[0, "startup_s"] == pytest.approx(4 * t.loc[0, "startup_s_per_job"])
    assert 0 < t.loc[0, "share_of_rule"] == pytest.approx(t.loc[0, "startup_s"] / 8.0)


# ------------------------------------------------------------ per-scan job start-up
import subprocess  # noqa: E402
import sys  # noqa: E402


@pytest.mark.parametrize("rule", sorted(rb.STARTUP_IMPORTS))
def test_per_scan_jobs_do_not_import_pandas(rule):
    """A per-scan job is a fresh Python process: importing pandas there costs ~0.4 s per
    scan (x3 stages x every scan). The modules a per-scan rule imports must not pull it in
    (nor matplotlib's pyplot); table-level rules import it inside their functions."""
    heavy = ("pandas", "matplotlib.pyplot", "sklearn")
    code = f"{rb.STARTUP_IMPORTS[rule]}; import sys; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]", f"{rule} imports {out.strip()}"


def test_workloads_are_valid_configs():
    """Every benchmark workload merges into a config that passes the schema."""
    import importlib.util
    from pathlib import Path

    from snakemake.utils import validate

    from radsurv.config import apply_site, deep_merge
    from radsurv.synthetic import demo as demo

    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_pipeline", repo / "tests/benchmarks/bench_pipeline.py")
    bp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bp)
    names = sorted(p.stem for p in bp.WORKLOADS.glob("*.yaml"))
    assert {"demo", "clinical_ct"} <= set(names)
    import yaml

    base = yaml.safe_load((repo / "config/config.yaml").read_text())
    for name in names:
        w = bp.load_workload(name)
        cfg = deep_merge(base, w["config"])
        validate(cfg, str(repo / "workflow/schemas/config.schema.yaml"))
        eff = apply_site(cfg, repo / "config/sites")
        assert eff["robustness"]["method"] == "test-retest", name
        if name == "clinical_ct":
            assert eff["preprocessing"]["spacing_mm"] == [1.0, 1.0, 1.0]
            assert eff["preprocessing"]["resegment_range"] == [-1000, 400]  # from the site preset
            assert w["geometry"]["rows"] == 512 and w["geometry"]["anatomy_scale"] == 1.45
            demo.Geometry(**w["geometry"])  # a valid phantom geometry
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}, "d": 1}


def test_scan_jobs_overhead_is_job_wall_outside_the_stages(tmp_path):
    """A batch job's wall beyond its scans' stages (the engine's start-up) is counted; other rules are not."""
    import pandas as pd

    for rule, s in (("extract_scan_batch", 20.0), ("extract_scan_features", 0.5), ("model", 30.0)):
        (tmp_path / rule).mkdir()
        (tmp_path / rule / "x.tsv").write_text(HEADER + f"{s}\t0\t500.0\t1\t1\t1\t0\t0\t90\t1.0\n")
    summary = summarise(tmp_path)
    stages = pd.DataFrame({"rule": ["conversion", "extraction"], "total_s": [2.0, 6.0]})
    assert rb.scan_jobs_overhead(summary, stages) == pytest.approx(20.5 - 8.0)
    assert np.isnan(rb.scan_jobs_overhead(summary, None))  # no stage costs: no guess
    assert np.isnan(rb.scan_jobs_overhead(summary[summary["rule"] == "model"], stages))  # no scan jobs


def test_engine_comparison_ratios_and_targets():
    ref = {"pipeline_wall_s": 900.0, "extraction_stage_s": 1000.0, "extraction_stage_cpu_s": 900.0,
           "scan_jobs_overhead_s": 100.0, "peak_rss_mb": 600.0}
    fast = {"pipeline_wall_s": 250.0, "extraction_stage_s": 150.0, "extraction_stage_cpu_s": 120.0,
            "scan_jobs_overhead_s": 70.0, "peak_rss_mb": 2100.0}
    c = rb.engine_comparison({"pictologics": fast, "pyradiomics": ref}, bare_s=800.0)
    pic, pyr = c["engines"]["pictologics"], c["engines"]["pyradiomics"]
    assert pic["extraction_speedup"] == pytest.approx(1000.0 / 150.0)
    assert pic["extraction_with_startup_speedup"] == pytest.approx(1100.0 / 220.0)  # exactly 5.0
    assert pic["meets_extraction"]  # judged on the stricter reading, which is 5.0 here
    assert pic["pipeline_speedup_vs_bare"] == pytest.approx(3.2) and pic["meets_pipeline_vs_bare"]
    assert pic["pipeline_speedup_vs_reference"] == pytest.approx(3.6)
    assert not pic["meets_peak_rss"] and pyr["meets_peak_rss"]
    assert "extraction_speedup" not in pyr and not pyr["meets_pipeline_vs_bare"]
    slower = rb.engine_comparison({"pictologics": {**fast, "scan_jobs_overhead_s": 100.0}, "pyradiomics": ref}, 800.0)
    assert not slower["engines"]["pictologics"]["meets_extraction"]  # 6.7x without start-up, 4.4x with it
    json.dumps(c)
    md = rb.engine_markdown(c).splitlines()
    assert len(md) == 5 and md[2].startswith("| pipeline, pictologics | 250 | 150 / 120 | 70 | 6.7x (5.0x) | 3.60x |")
    assert md[4].startswith("| bare pyradiomics") and "| 800 / - |" in md[4]


def test_engine_comparison_without_the_time_outside_stages():
    """A run without stage costs (``scan_jobs_overhead_s`` NaN): the stricter reading falls back to the
    extraction stage alone, for the engine and for the reference alike."""
    nan = float("nan")
    ref = {"pipeline_wall_s": 900.0, "extraction_stage_s": 1000.0, "scan_jobs_overhead_s": nan}
    fast = {"pipeline_wall_s": 250.0, "extraction_stage_s": 200.0, "scan_jobs_overhead_s": 50.0}
    pic = rb.engine_comparison({"pictologics": fast, "pyradiomics": ref}, bare_s=800.0)["engines"]["pictologics"]
    assert pic["extraction_with_startup_s"] == 250.0 and np.isnan(pic["extraction_cpu_s"])
    assert pic["extraction_speedup"] == pytest.approx(5.0)
    assert pic["extraction_with_startup_speedup"] == pytest.approx(1000.0 / 250.0) and not pic["meets_extraction"]
