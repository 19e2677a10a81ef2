"""Grain texture of the synthetic tumour (``demo.texture: grain``; issue #19).

The default demo (``texture = "spread"``) plants the heterogeneity score ``z_het`` in the spread
of the tumour's intensities (their SD ``h``): a first-order property, which READII's intensity
controls keep by construction (``shuffled`` and ``sampled`` keep the histogram, ``randomized`` its
range, and the range grows with ``h``). A negative-control study on that demo therefore shows the
controls keeping the signal, correctly. To show that a model learned *texture* and that the
intensity controls remove it, ``texture = "grain"`` plants the same score in the spatial scale of
the tumour's structure only:

* every tumour has the same two-phase intensity histogram: half of its volume at
  ``30 - GRAIN_CONTRAST_HU`` HU and half at ``30 + GRAIN_CONTRAST_HU`` HU (-40 and 100 HU, say necrotic
  and enhancing tissue; the noise-free SD is ``GRAIN_CONTRAST_HU`` for every patient, and the range of
  the ROI does not depend on the score). 70 rather than 40 HU because, under the demo's 10-35 HU scan
  noise and 25 HU bins, more features then both track the grain and pass the test-retest ICC (a
  200-patient check, partial Spearman with the score >= 0.4 given volume and centre and ICC lower
  bound > 0.75: 3 features at 40 HU, 18 at 70 HU);
* the phases are a band-limited random field thresholded at its median inside the lesion: a sum of
  ``GRAIN_WAVES`` plane waves in the tumour's own frame (so the same tissue in test and retest),
  random isotropic directions and phases, wavelengths ``lambda * U(0.85, 1.15)`` with
  ``lambda = GRAIN_BASE_MM * exp(-GRAIN_LOG_SD * z_het)`` (``z_het`` clipped to [-2.5, 2.5]:
  5.0-29 mm; +-1 SD: 8.5-17 mm). High ``z_het`` (worse survival; the HPV-like biology negative) is
  a fine-grained, low ``z_het`` a coarse-grained tumour; the patches are about half a wavelength
  across.

The waves, phases and the 4000 points that locate the median are drawn from the patient's own
stream :data:`GRAIN_STREAM`, so every other planted quantity (volume, outcome, noise, centre) is the
same as in the default demo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from radsurv.synthetic.truth import PatientTruth, patient_rng, sample_in_ellipsoid

__all__ = ["GRAIN_BASE_MM", "GRAIN_CONTRAST_HU", "GRAIN_LOG_SD", "GRAIN_STREAM", "GRAIN_WAVES", "Grain",
           "TEXTURES", "check_texture", "draw_grain", "grain_wavelength_mm"]

#: the demo's tumour texture models (``demo.texture``)
TEXTURES = ("spread", "grain")
GRAIN_BASE_MM = 12.0
GRAIN_LOG_SD = 0.35
GRAIN_CONTRAST_HU = 70.0
GRAIN_WAVES = 48
#: the patient's random stream of the grain texture (unused by the default demo)
GRAIN_STREAM = 4


def check_texture(texture: str) -> None:
    """``ValueError`` unless ``texture`` is one of :data:`TEXTURES`."""
    if texture not in TEXTURES:
        raise ValueError(f"demo texture must be one of {TEXTURES}, got {texture!r}")


def grain_wavelength_mm(z_het: float) -> float:
    """The planted wavelength (mm) of a tumour with heterogeneity score ``z_het``."""
    return GRAIN_BASE_MM * math.exp(-GRAIN_LOG_SD * float(z_het))


@dataclass(frozen=True)
class Grain:
    """One tumour's two-phase texture: wave vectors (rad/mm, tumour frame), phases and the median."""

    wave_vectors: np.ndarray  # (GRAIN_WAVES, 3)
    phases: np.ndarray  # (GRAIN_WAVES,)
    threshold: float

    def field(self, u: np.ndarray) -> np.ndarray:
        """The band-limited field at tumour-frame points ``u`` (..., 3)."""
        return np.cos(u @ self.wave_vectors.T + self.phases).sum(axis=-1)

    def values_hu(self, u: np.ndarray, base_hu: float) -> np.ndarray:
        """The tumour's noise-free HU at tumour-frame points ``u``: ``base_hu`` -+ the contrast."""
        return base_hu + np.where(self.field(u) >= self.threshold, GRAIN_CONTRAST_HU, -GRAIN_CONTRAST_HU)


def draw_grain(seed: int, patient: PatientTruth) -> Grain:
    """The grain texture of ``patient`` (stream :data:`GRAIN_STREAM`; deterministic given ``seed``)."""
    rng = patient_rng(seed, patient.index, GRAIN_STREAM)
    direction = rng.normal(size=(GRAIN_WAVES, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    wavelength = grain_wavelength_mm(patient.z_heterogeneity) * rng.uniform(0.85, 1.15, GRAIN_WAVES)
    k = direction * (2.0 * math.pi / wavelength)[:, None]
    phases = rng.uniform(0.0, 2.0 * math.pi, GRAIN_WAVES)
    pts = sample_in_ellipsoid(rng, np.asarray(patient.tumour_semi_axes_mm), 4000)
    return Grain(k, phases, float(np.median(Grain(k, phases, 0.0).field(pts))))
