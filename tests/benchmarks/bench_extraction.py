"""Benchmark: radsurv's extraction stage vs a bare ``RadiomicsFeatureExtractor.execute``.

Not a pytest test (no ``test_`` prefix); run it directly::

    python tests/benchmarks/bench_extraction.py [--repeats 5] [--synthetic]

Case: the IBSI CT phantom (../shared/data/ibsi, lung tumour, 60 slices) run
through radsurv's preprocessing with the ``lung_ct`` site preset (2 mm IBSI
grid, [-1000, 400] HU); with ``--synthetic`` or without the shared data, a
seeded noisy sphere of similar size. Both contenders get the same preprocessed
files and the same pyradiomics settings (``pyradiomics_params`` of the site):

* radsurv: :func:`radsurv.features.scan.extraction` -- reads the status, runs
  pyradiomics twice when the masks differ (shape on the morphological mask,
  the rest on the intensity mask, IBSI bin origin) and writes the scan's JSON;
* bare: one ``RadiomicsFeatureExtractor(params).execute(image, intensity
  mask)`` -- pyradiomics alone, its own bin origin, shape on the same mask.

Timed in one process, alternating the two, best of ``--repeats``; reported as
the ratio radsurv / bare (target <= 1.1), without filters and with LoG
(1, 3 mm) + wavelet (the demo's 1,040 features).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radsurv.config import load_site
from radsurv.features import scan as stages
from radsurv.features.extract import pyradiomics_params
from radsurv.qc import write_status

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ibsi" / "ct_phantom" / "nifti"


def _synthetic(out: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    z, y, x = np.indices((60, 120, 120)).astype(float)
    r = np.sqrt(((x - 60) * 0.98) ** 2 + ((y - 60) * 0.98) ** 2 + ((z - 30) * 2.0) ** 2)
    arr = np.where(r < 28, 30.0, -800.0) + rng.normal(0, 40, r.shape)
    img = sitk.GetImageFromArray(np.round(arr).astype(np.int16))
    img.SetSpacing((0.98, 0.98, 2.0))
    msk = sitk.GetImageFromArray((r < 30).astype(np.uint8))
    msk.CopyInformation(img)
    sitk.WriteImage(img, str(out / "image.nii.gz"))
    sitk.WriteImage(msk, str(out / "mask.nii.gz"))
    return out / "image.nii.gz", out / "mask.nii.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args()
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    site = load_site("lung_ct")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        conv = tmp / "converted"
        conv.mkdir()
        if SHARED.is_dir() and not args.synthetic:
            case = "IBSI CT phantom"
            sitk.WriteImage(sitk.ReadImage(str(SHARED / "image" / "phantom.nii.gz")), str(conv / "image.nii.gz"))
            sitk.WriteImage(sitk.ReadImage(str(SHARED / "mask" / "mask.nii.gz")), str(conv / "mask.nii.gz"))
        else:
            case = "synthetic sphere"
            _synthetic(conv)
        write_status(conv / "status.json", True, "conversion", scan_id="B_S1", patient_id="B", session=1)
        prep = tmp / "preprocessed"
        stages.preprocessing(conv, prep, site["preprocessing"])
        n_morph = int(sitk.GetArrayFromImage(sitk.ReadImage(str(prep / "mask.nii.gz"))).sum())
        n_intensity = int(sitk.GetArrayFromImage(sitk.ReadImage(str(prep / "mask_intensity.nii.gz"))).sum())
        print(f"case: {case}; preprocessed ROI: {n_morph} voxels (morphological), {n_intensity} (intensity)")
        print("| filters | features | radsurv stage (s) | bare execute (s) | ratio |")
        print("|---|---|---|---|---|")
        for label, filters in (("none", {"log_sigma_mm": [], "wavelet": False}),
                               ("LoG 1,3 mm + wavelet", {"log_sigma_mm": [1.0, 3.0], "wavelet": True})):
            extraction = {**site["extraction"], "filters": filters}
            params = pyradiomics_params(extraction, site["preprocessing"])
            bare_params = {k: v for k, v in params.items() if k != "radsurv"}
            out = tmp / "scan.json"

            def ours(out: Path = out, extraction: dict = extraction) -> None:
                stages.extraction(prep, out, extraction, site["preprocessing"])

            def bare(bare_params: dict = bare_params) -> None:
                RadiomicsFeatureExtractor(bare_params).execute(
                    str(prep / "image.nii.gz"), str(prep / "mask_intensity.nii.gz"), label=1)

            ours(), bare()  # warm-up (imports, caches)
            t_ours, t_bare = float("inf"), float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                ours()
                t_ours = min(t_ours, time.perf_counter() - t0)
                t0 = time.perf_counter()
                bare()
                t_bare = min(t_bare, time.perf_counter() - t0)
            import json

            n = len(json.loads(out.read_text())["features"])
            print(f"| {label} | {n} | {t_ours:.3f} | {t_bare:.3f} | {t_ours / t_bare:.3f} |")


if __name__ == "__main__":
    main()
