"""Benchmark: where one scan's conversion stage spends its time (issue #21).

Not a pytest test; run it on a scan manifest of any run (``results/ingest/private/manifests/<scan>.json``,
e.g. of ``bench_pipeline.py --workload clinical_ct``)::

    python tests/benchmarks/bench_conversion_steps.py MANIFEST [--repeats 5] [--out DIR]

Reported, as wall and CPU seconds (CPU of this process, all threads; SimpleITK limited to one
thread as in the workflow's jobs):

* the start-up a fresh job pays: the bare interpreter, and the imports of the conversion stage
  (each in a fresh process, best of ``--repeats``);
* the steps of :func:`radsurv.features.scan.conversion`, averaged over ``--repeats`` runs in one
  warm process (DICOM files in the page cache after the first): header pass and geometry checks,
  the GDCM series read (with the pydicom rescale check on 3 slices), the storage-type decision,
  RTSTRUCT reading and rasterisation, the ROI's bounding box, cropping and writing the NRRD files,
  and the input checksum (a step an older radsurv lacks is left out). The remainder of the stage
  total is the manifest, status and provenance files.
"""

from __future__ import annotations

import argparse
import collections
import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

IMPORTS = "import radsurv.features.scan, radsurv.ingest.convert, radsurv.logutil"


def _fresh(code: str, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` (wall, CPU) seconds of a fresh interpreter running ``code``."""
    best = (float("inf"), float("inf"))
    probe = ("import resource, time, subprocess, sys; t = time.perf_counter(); "
             f"subprocess.run([sys.executable, '-c', {code!r}], check=True); "
             "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "print(time.perf_counter() - t, r.ru_utime + r.ru_stime)")
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
        wall, cpu = float(out[0]), float(out[1])
        best = min(best, (wall, cpu))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--roi-pattern", default="^GTV")
    ap.add_argument("--out", type=Path, help="converted folder (default: a temporary one)")
    args = ap.parse_args()

    bare = _fresh("pass", args.repeats)
    imports = _fresh(IMPORTS, args.repeats)
    print(f"{'start-up: bare interpreter':46s} wall {bare[0]:6.3f} s  CPU {bare[1]:6.3f} s")
    print(f"{'start-up: interpreter + conversion imports':46s} wall {imports[0]:6.3f} s  CPU {imports[1]:6.3f} s")

    import SimpleITK as sitk

    import radsurv.features.scan as scan
    import radsurv.ingest.convert as convert
    import radsurv.ingest.converted as converted
    import radsurv.ingest.images as images

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    acc: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])

    def wrap(mod: Any, name: str, label: str) -> None:
        f = getattr(mod, name, None)
        if f is None:  # an older radsurv (a before/after comparison)
            return

        @functools.wraps(f)
        def timed(*a: Any, **k: Any) -> Any:
            w, c = time.perf_counter(), time.process_time()
            try:
                return f(*a, **k)
            finally:
                acc[label][0] += time.perf_counter() - w
                acc[label][1] += time.process_time() - c
        setattr(mod, name, timed)

    wrap(convert, "check_geometry", "DICOM headers + geometry checks (pydicom)")
    wrap(images, "_read_series", "DICOM pixels (GDCM), incl. rescale check")
    wrap(images, "_verify_rescale", "- rescale check (pydicom, 3 slices)")
    wrap(convert, "storage_pixel_type", "storage type decision (whole scan)")
    wrap(images, "_storage_type", "storage type decision + cast of the whole scan")
    wrap(convert, "_roi_mask", "RTSTRUCT read + rasterisation")
    wrap(converted, "roi_region", "- ROI bounding box")
    wrap(convert, "write_image_and_mask", "crop, cast + write NRRD (incl. bounding box)")
    wrap(convert, "files_sha256", "input SHA-256")
    total = [0.0, 0.0]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "converted"
        for _ in range(args.repeats):
            w, c = time.perf_counter(), time.process_time()
            scan.conversion(args.manifest, out, args.roi_pattern, "first", {})
            total[0] += time.perf_counter() - w
            total[1] += time.process_time() - c
    n = args.repeats
    for label, (w, c) in acc.items():
        print(f"{label:46s} wall {w / n:6.3f} s  CPU {c / n:6.3f} s")
    print(f"{'conversion stage, total':46s} wall {total[0] / n:6.3f} s  CPU {total[1] / n:6.3f} s")


if __name__ == "__main__":
    main()
