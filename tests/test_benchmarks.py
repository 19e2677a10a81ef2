from __future__ import annotations

from radsurv.benchmarks import summarise

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
