"""radsurv.resume: outputs a killed Snakemake left marked incomplete are removed before a rerun."""

from __future__ import annotations

import base64
from pathlib import Path

from radsurv.resume import clear_interrupted, incomplete_outputs


def _mark(workdir: Path, output: str, chunk: int | None = None) -> None:
    """Snakemake's marker of an incomplete output (a long name split into '@' folders)."""
    b64 = base64.urlsafe_b64encode(output.encode()).decode()
    parts = [b64] if chunk is None else [b64[i:i + chunk] for i in range(0, len(b64), chunk)]
    marker = workdir / ".snakemake" / "incomplete" / Path(*["@" + p for p in parts[:-1]], parts[-1])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('{"external_jobid": null}')


def test_outputs_left_marked_incomplete_are_removed(tmp_path):
    scan = tmp_path / "results" / "features" / "scans" / "RSD-001_S1.json"
    conv = tmp_path / "results" / "scans" / "RSD-001_S1" / "converted"
    kept = tmp_path / "results" / "features" / "scans" / "RSD-002_S1.json"
    outside = tmp_path / "elsewhere.txt"
    for f in (scan, conv / "image.nrrd", kept, outside):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    _mark(tmp_path, "results/features/scans/RSD-001_S1.json")
    _mark(tmp_path, "results/scans/RSD-001_S1/converted", chunk=10)
    _mark(tmp_path, "elsewhere.txt")
    _mark(tmp_path, "results/never/written.tsv")
    assert set(incomplete_outputs(tmp_path)) == {"results/features/scans/RSD-001_S1.json", "elsewhere.txt",
                                                 "results/scans/RSD-001_S1/converted", "results/never/written.tsv"}

    (tmp_path / ".snakemake" / "locks").mkdir()
    (tmp_path / ".snakemake" / "locks" / "0.output.lock").write_text("")
    assert clear_interrupted(tmp_path) == []  # a run holds the lock (or a killed one's is not released)
    assert scan.exists() and conv.exists()

    (tmp_path / ".snakemake" / "locks" / "0.output.lock").unlink()
    removed = clear_interrupted(tmp_path)
    assert sorted(removed) == ["results/features/scans/RSD-001_S1.json", "results/scans/RSD-001_S1/converted"]
    assert not scan.exists() and not conv.exists()
    assert kept.exists() and outside.exists()  # unmarked outputs and anything outside results/ stay
    assert clear_interrupted(tmp_path) == []
