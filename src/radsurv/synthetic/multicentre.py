"""Multi-centre switch of the synthetic demo cohort (``demo.scanners``; issue #19).

With ``scanners = n`` (2 or 3) every patient is scanned at one of ``n`` centres, each with its
own CT scanner: a different noise level, reconstruction-kernel blur and HU offset (calibration),
written into the DICOM headers (Manufacturer, ManufacturerModelName, ConvolutionKernel) and the
clinical table (column ``centre``). The centre is drawn from the patient's own random stream
:data:`STREAM` (``numpy.random.default_rng([seed, i, STREAM])``), independent of every planted
quantity, so the outcome is independent of the scanner: whatever the features learn about the
centre is a batch effect, which in-fold ComBat should remove. With ``scanners = 0`` (default)
nothing here runs and the demo is byte-identical to the single-scanner one.

Scanner effects are applied to the rendered HU image (noise already added by
:func:`radsurv.synthetic.render.render_ct`): Gaussian blur of ``blur_mm`` (smooth kernel; it
also smooths the noise, as a reconstruction kernel does), then ``offset_hu``, then extra white
noise of ``extra_noise_hu`` (sharp kernel / low dose) from the scan's own stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from radsurv.synthetic.truth import Geometry, patient_rng

__all__ = ["SCANNERS", "STREAM", "Scanner", "scanner_of", "apply_scanner", "centre_column"]

#: The patient's random stream that draws its centre (unused by the single-centre demo).
STREAM = 91


@dataclass(frozen=True)
class Scanner:
    """One centre's scanner: DICOM facts and image effects."""

    centre: str
    manufacturer: str
    model: str
    kernel: str
    blur_mm: float
    offset_hu: float
    extra_noise_hu: float

    def tags(self) -> dict[str, Any]:
        return {"Manufacturer": self.manufacturer, "ManufacturerModelName": self.model,
                "ConvolutionKernel": self.kernel}


#: The demo's scanners: A as the single-centre demo (standard kernel), B a sharp kernel with more
#: noise and a +40 HU calibration offset, C a smooth kernel (1.2 mm blur) reading 35 HU low.
SCANNERS = (
    Scanner("A", "radsurv-demo", "SynthCT 64", "STANDARD", 0.0, 0.0, 0.0),
    Scanner("B", "radsurv-demo-north", "SynthCT 128", "SHARP", 0.0, 40.0, 30.0),
    Scanner("C", "radsurv-demo-south", "SynthCT 16", "SMOOTH", 1.2, -35.0, 0.0),
)


def scanner_of(seed: int, patient: int, scanners: int) -> Scanner:
    """The scanner of patient ``patient`` (1-based) in a demo with ``scanners`` centres."""
    if not 2 <= int(scanners) <= len(SCANNERS):
        raise ValueError(f"demo.scanners must be 0 (single centre) or 2..{len(SCANNERS)}, got {scanners}")
    k = int(patient_rng(seed, patient, STREAM).integers(int(scanners)))
    return SCANNERS[k]


def apply_scanner(hu: np.ndarray, scanner: Scanner, geometry: Geometry, seed: int, patient: int,
                  study: int) -> np.ndarray:
    """The rendered HU image (``z x y x x``) as ``scanner`` would reconstruct it."""
    from scipy.ndimage import gaussian_filter

    out = np.asarray(hu, dtype=float)
    if scanner.blur_mm > 0:
        sig = (scanner.blur_mm / geometry.slice_thickness, scanner.blur_mm / geometry.pixel_spacing,
               scanner.blur_mm / geometry.pixel_spacing)
        out = gaussian_filter(out, sig, mode="nearest")
    out = out + scanner.offset_hu
    if scanner.extra_noise_hu > 0:
        rng = patient_rng(seed, patient, STREAM + 10 + study)
        out = out + rng.normal(0.0, scanner.extra_noise_hu, out.shape)
    return out


def centre_column(seed: int, patients: list[int], scanners: int) -> list[str]:
    """The ``centre`` clinical column of the patients (1-based indices)."""
    return [scanner_of(seed, i, scanners).centre for i in patients]
