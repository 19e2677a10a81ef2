"""Benchmark: radsurv DICOM ingestion vs SimpleITK's plain series read of the same files.

Not a pytest test (no ``test_`` prefix); run it directly::

    python tests/benchmarks/bench_ingest.py [--rows 512 --slices 150 --repeats 3 --keep DIR]

Data: one patient of the synthetic demo cohort (:func:`radsurv.synthetic.demo.generate_demo_cohort`)
rendered on a 512 x 512 x 150 grid (0.8 mm pixels, 2 mm slices: 409.6 mm field of view,
300 mm z extent), i.e. 150 CT files of 512 KB plus an RTSTRUCT with 4 ROIs
(GTV, two lungs, body; 64-128 vertices per polygon).

Measured, each in a fresh Python process (so that peak memory is that of one task):

* ``radsurv``: :func:`radsurv.ingest.discovery.discover` on the folder + :func:`convert_scan`
  (header pass with geometry checks, GDCM read, pydicom rescale check on 3 slices,
  RTSTRUCT rasterisation of the GTV, NIfTI writing with compression).
* ``sitk``: ``ImageSeriesReader.GetGDCMSeriesFileNames`` + ``ImageSeriesReader.Execute``
  (the plain read: no checks, no mask, nothing written).

Reported: best-of-``--repeats`` wall seconds, peak resident memory (VmHWM) of the process
and that peak minus the memory after imports, and the ratios radsurv / sitk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _vm(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1]) / 1024.0  # MB
    return float("nan")


def _worker(kind: str, folder: Path, out: Path) -> None:
    import SimpleITK as sitk

    from radsurv.ingest.convert import convert_scan
    from radsurv.ingest.discovery import discover

    base = _vm("VmRSS")
    t0 = time.perf_counter()
    if kind == "radsurv":
        disc = discover(folder)
        assert len(disc.scans) == 1, disc.qc
        prov = convert_scan(disc.scans[0], "^GTV", out / "image.nii.gz", out / "mask.nii.gz")
        extra = {"voxels": prov["voxel_count"], "size": prov["size"]}
    else:
        reader = sitk.ImageSeriesReader()
        files = reader.GetGDCMSeriesFileNames(str(next(folder.rglob("CT"))))
        reader.SetFileNames(files)
        img = reader.Execute()
        extra = {"size": list(img.GetSize())}
    dt = time.perf_counter() - t0
    print(json.dumps({"kind": kind, "seconds": dt, "peak_mb": _vm("VmHWM"), "base_mb": base, **extra}))


def _run(kind: str, folder: Path, out: Path) -> dict:
    res = subprocess.run([sys.executable, __file__, "--worker", kind, "--folder", str(folder), "--out", str(out)],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--slices", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="generate the data here (and reuse it if present)")
    ap.add_argument("--worker", choices=["radsurv", "sitk"], help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.folder, args.out)
        return

    from radsurv.synthetic.demo import generate_demo_cohort

    tmp = tempfile.TemporaryDirectory()
    root = args.keep or Path(tmp.name)
    dicom = root / "dicom"
    if not dicom.is_dir():
        t0 = time.perf_counter()
        generate_demo_cohort(root, n_patients=1, n_retest=0, seed=1, rows=args.rows, cols=args.rows,
                             pixel_spacing=409.6 / args.rows, n_slices=args.slices, slice_thickness=2.0)
        print(f"generated {args.rows}x{args.rows}x{args.slices} CT + RTSTRUCT in {time.perf_counter() - t0:.1f} s")
    out = root / "out"
    out.mkdir(exist_ok=True)
    results: dict[str, list[dict]] = {"radsurv": [], "sitk": []}
    for _ in range(args.repeats):  # interleaved, so machine load affects both alike
        for kind in ("sitk", "radsurv"):
            results[kind].append(_run(kind, dicom, out))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in results.items()}
    peak = {k: max(r["peak_mb"] for r in v) for k, v in results.items()}
    base = {k: min(r["base_mb"] for r in v) for k, v in results.items()}
    print(f"{'':8s} {'best s':>8s} {'peak MB':>8s} {'peak-imports MB':>16s}")
    for k in ("sitk", "radsurv"):
        print(f"{k:8s} {best[k]['seconds']:8.2f} {peak[k]:8.0f} {peak[k] - base[k]:16.0f}")
    print(f"ratio radsurv/sitk: time {best['radsurv']['seconds'] / best['sitk']['seconds']:.2f}x, "
          f"peak memory {peak['radsurv'] / peak['sitk']:.2f}x, "
          f"memory above imports {(peak['radsurv'] - base['radsurv']) / (peak['sitk'] - base['sitk']):.2f}x "
          f"(GTV {best['radsurv']['voxels']} voxels, image size {best['radsurv']['size']})")


if __name__ == "__main__":
    main()
