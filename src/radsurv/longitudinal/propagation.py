"""Contour propagation: the baseline (planning) contour carried to a later scan by registration.

When a time point's scan has no contour of its own for an ROI, the baseline mask is mapped
onto it with SimpleITK, inside a margin around the ROI only (both images are cropped to the
baseline ROI's bounding box grown by ``margin_mm``, which also bounds the motion that can be
recovered):

1. rigid: a translation from the crops' centres, then :class:`SimpleITK.Euler3DTransform` started
   from it, each by Mattes mutual information (``histogram_bins``) on a seeded random
   ``sampling_fraction`` of the voxels, regular-step gradient descent, two resolution levels
   (shrink 2, 1; smoothing 1, 0 voxels); an Euler fit rotating more than
   ``rigid_max_rotation_deg`` is rejected and the translation kept (``rigid_bounded``).
   With ``rigid_mask_mm`` > 0 the metric samples only the time point's voxels within that
   distance of the baseline ROI (a fixed-image metric mask; known at run time: the baseline
   contour, placed in the same physical space). Over the whole crop the metric is dominated by
   the body outline and the soft-tissue texture, which a smooth deformation shears against the
   ROI: for a low-contrast parotid its optimum can be a rotation of up to ~20 degrees that
   misplaces the ROI by 10-20 mm, which the demons step cannot recover. Off by default: the
   masked metric has wrong optima of its own (a left parotid of the demo moved 23 mm, Dice 0);
2. deformable: symmetric-forces demons (:class:`SimpleITK.FastSymmetricForcesDemonsRegistrationFilter`)
   between the time point's crop and the rigidly resampled baseline crop (histogram-matched to it
   first only with ``histogram_matching``: off by default, for calibrated CT intensities; both
   smoothed by ``image_smoothing_voxels``), the field smoothed by ``demons_smoothing_voxels``;
3. the baseline mask is resampled through the composite transform (linear interpolation of the
   0/1 mask, then > 0.5) onto the time point's voxel grid.

Steps 1 and 2 run on the crops resampled to at least ``registration_spacing_mm`` per axis
(:func:`registration_grid`; the demo's 2 x 2 x 2.5 mm scans are not resampled), so a
512 x 512 CT crop costs what a 2 mm one does and the voxel-based smoothing keys mean the same
in mm at any resolution; step 3 is on the time point's own grid.

Quality is recorded with every mask: Dice against the time point's own contour wherever one
exists, and the range of the deformation's Jacobian determinant inside the crop (min, max, the
fraction of voxels <= 0, i.e. folding). Determinism: the metric sampling is seeded and
``threads`` (default 1) fixes ITK's thread count for the call, so the same inputs give
bit-identical masks (tested); a different thread count may change the last bits of the rigid
optimum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from radsurv.schema import default


def _d(key: str) -> Any:
    return default("longitudinal", "propagation", key)

__all__ = ["PropagationResult", "PropagationSettings", "crop_box", "dice", "propagate_mask", "registration_grid"]


@dataclass(frozen=True)
class PropagationSettings:
    """The ``longitudinal.propagation`` config block (defaults from the config schema)."""

    margin_mm: float = _d("margin_mm")
    rigid_mask_mm: float = _d("rigid_mask_mm")
    rigid_max_rotation_deg: float = _d("rigid_max_rotation_deg")
    registration_spacing_mm: float = _d("registration_spacing_mm")
    deformable: bool = _d("deformable")
    histogram_bins: int = _d("histogram_bins")
    sampling_fraction: float = _d("sampling_fraction")
    rigid_iterations: int = _d("rigid_iterations")
    demons_iterations: int = _d("demons_iterations")
    demons_smoothing_voxels: float = _d("demons_smoothing_voxels")
    demons_levels: int = _d("demons_levels")
    histogram_matching: bool = _d("histogram_matching")
    image_smoothing_voxels: float = _d("image_smoothing_voxels")
    seed: int = _d("seed")
    threads: int = _d("threads")

    def __post_init__(self) -> None:
        if self.margin_mm <= 0:
            raise ValueError(f"longitudinal.propagation.margin_mm must be > 0, got {self.margin_mm}")
        if not 0.0 < self.sampling_fraction <= 1.0:
            raise ValueError("longitudinal.propagation.sampling_fraction must be in (0, 1], "
                             f"got {self.sampling_fraction}")
        if self.seed < 1:  # ITK reads a sampling seed of 0 as "seed from the wall clock"
            raise ValueError("longitudinal.propagation.seed must be >= 1 (0 would reseed from the clock), "
                             f"got {self.seed}")
        if self.rigid_mask_mm < 0:
            raise ValueError(f"longitudinal.propagation.rigid_mask_mm must be >= 0, got {self.rigid_mask_mm}")
        if self.rigid_max_rotation_deg < 0:
            raise ValueError("longitudinal.propagation.rigid_max_rotation_deg must be >= 0, "
                             f"got {self.rigid_max_rotation_deg}")
        if self.registration_spacing_mm < 0:
            raise ValueError("longitudinal.propagation.registration_spacing_mm must be >= 0, "
                             f"got {self.registration_spacing_mm}")
        if self.demons_levels < 1:
            raise ValueError(f"longitudinal.propagation.demons_levels must be >= 1, got {self.demons_levels}")
        if self.threads < 1:
            raise ValueError(f"longitudinal.propagation.threads must be >= 1, got {self.threads}")


@dataclass
class PropagationResult:
    """A propagated mask (on the time point's grid, 0/1 UInt8) and its quality."""

    mask: sitk.Image
    dice: float | None
    jacobian_min: float
    jacobian_max: float
    jacobian_folding_fraction: float
    rigid_metric: float
    rigid_translation_mm: tuple[float, float, float]
    rigid_rotation_deg: float
    rigid_bounded: bool
    seconds: float

    def quality(self) -> dict[str, float | None]:
        """The numbers the feature table and the report carry beside the mask."""
        return {"dice": self.dice, "jacobian_min": self.jacobian_min, "jacobian_max": self.jacobian_max,
                "jacobian_folding_fraction": self.jacobian_folding_fraction, "rigid_metric": self.rigid_metric,
                "rigid_rotation_deg": self.rigid_rotation_deg, "rigid_bounded": self.rigid_bounded,
                "propagation_seconds": self.seconds}


def dice(a: sitk.Image, b: sitk.Image) -> float:
    """Dice coefficient of two masks on the same grid (non-zero = inside); NaN if both are empty."""
    x = sitk.GetArrayViewFromImage(a) > 0
    y = sitk.GetArrayViewFromImage(b) > 0
    s = int(x.sum()) + int(y.sum())
    return float(2.0 * np.logical_and(x, y).sum() / s) if s else float("nan")


def crop_box(mask: sitk.Image, target: sitk.Image, margin_mm: float) -> tuple[list[int], list[int]]:
    """``(index, size)`` of ``target``'s voxels covering ``mask``'s bounding box grown by ``margin_mm``.

    Raises:
        ValueError: the mask is empty.
    """
    arr = sitk.GetArrayViewFromImage(mask) > 0
    nz = np.nonzero(arr)
    if not nz[0].size:
        raise ValueError("the baseline mask is empty: nothing to propagate")
    lo_idx = [int(nz[2].min()), int(nz[1].min()), int(nz[0].min())]
    hi_idx = [int(nz[2].max()), int(nz[1].max()), int(nz[0].max())]
    corners = [mask.TransformIndexToPhysicalPoint([a if bit else b for a, b, bit in
                                                   zip(lo_idx, hi_idx, ((i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1),
                                                       strict=True)])
               for i in range(8)]
    pts = np.array(corners)
    lo_mm, hi_mm = pts.min(axis=0) - margin_mm, pts.max(axis=0) + margin_mm
    t_corners = [target.TransformPhysicalPointToContinuousIndex(
        [float(lo_mm[j]) if (i >> j) & 1 else float(hi_mm[j]) for j in range(3)]) for i in range(8)]
    tc = np.array(t_corners)
    size = np.array(target.GetSize())
    lo = np.clip(np.floor(tc.min(axis=0)).astype(int), 0, size - 1)
    hi = np.clip(np.ceil(tc.max(axis=0)).astype(int), 0, size - 1)
    return [int(v) for v in lo], [int(v) for v in hi - lo + 1]


def _crop(img: sitk.Image, index: list[int], size: list[int]) -> sitk.Image:
    return sitk.RegionOfInterest(img, size, index)


def _register(fixed: sitk.Image, moving: sitk.Image, s: PropagationSettings, init: sitk.Transform,
              metric_mask: sitk.Image | None) -> tuple[sitk.Transform, float]:
    """One Mattes-MI registration (fixed -> moving points) from ``init``, two levels; with
    ``metric_mask`` (on ``fixed``'s grid) the metric samples only the voxels inside it."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=s.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(s.sampling_fraction, s.seed)
    if metric_mask is not None:
        reg.SetMetricFixedMask(metric_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4,
                                                 numberOfIterations=s.rigid_iterations,
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(init, inPlace=False)
    reg.SetNumberOfThreads(s.threads)
    tx = reg.Execute(fixed, moving)
    return tx, float(reg.GetMetricValue())


def _inner(tx: sitk.Transform) -> sitk.Transform:
    """The transform the registration optimised (``Execute`` may return it wrapped in a composite)."""
    if tx.GetName() == "CompositeTransform":
        return sitk.CompositeTransform(tx).GetNthTransform(0)
    return tx


@dataclass(frozen=True)
class RigidResult:
    """The rigid step's outcome: the transform used, its metric, the free fit's largest rotation
    (degrees) and whether that exceeded ``rigid_max_rotation_deg`` (then the translation is used)."""

    transform: sitk.Euler3DTransform
    metric: float
    rotation_deg: float
    bounded: bool


def _rigid(fixed: sitk.Image, moving: sitk.Image, s: PropagationSettings,
           metric_mask: sitk.Image | None = None) -> RigidResult:
    """Translation first (from the crops' centres), then Euler3D from that translation; the Euler
    fit is kept only if no rotation angle exceeds ``s.rigid_max_rotation_deg`` (0: translation only)."""
    centred = sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY))
    shift_tx, shift_metric = _register(fixed, moving, s, sitk.TranslationTransform(3, centred.GetTranslation()),
                                       metric_mask)
    shifted = sitk.Euler3DTransform(centred)
    shifted.SetTranslation(sitk.TranslationTransform(_inner(shift_tx)).GetOffset())
    if s.rigid_max_rotation_deg <= 0:
        return RigidResult(shifted, shift_metric, 0.0, False)
    euler_tx, euler_metric = _register(fixed, moving, s, sitk.Euler3DTransform(shifted), metric_mask)
    euler = sitk.Euler3DTransform(_inner(euler_tx))
    rotation = float(np.degrees(np.max(np.abs([euler.GetAngleX(), euler.GetAngleY(), euler.GetAngleZ()]))))
    if rotation > s.rigid_max_rotation_deg:
        return RigidResult(shifted, shift_metric, rotation, True)
    return RigidResult(euler, euler_metric, rotation, False)


def registration_grid(img: sitk.Image, spacing_mm: float) -> sitk.Image:
    """``img`` on a grid of at least ``spacing_mm`` per axis over the same physical extent: axes
    finer than that are smoothed (Gaussian, variance (new^2 - old^2) / 4 mm^2, so that the
    resampling does not alias) and resampled linearly; coarser axes keep their spacing. Returns
    ``img`` itself when no axis is finer (or ``spacing_mm`` is 0)."""
    old = np.asarray(img.GetSpacing(), dtype=float)
    new = np.maximum(old, float(spacing_mm))
    if spacing_mm <= 0 or np.all(new == old):
        return img
    size = [max(1, int(round(n * o / w))) for n, o, w in zip(img.GetSize(), old, new, strict=True)]
    new = np.asarray(img.GetSize(), dtype=float) * old / np.asarray(size)  # the same extent exactly
    smooth = sitk.DiscreteGaussian(img, variance=[float(v) for v in 0.25 * (new**2 - old**2)],
                                   maximumKernelWidth=64, useImageSpacing=True)
    ref = sitk.Image(size, img.GetPixelID())
    ref.SetSpacing([float(v) for v in new])
    ref.SetDirection(img.GetDirection())
    # the first new voxel's centre sits half a new voxel inside the first old voxel's outer face
    ref.SetOrigin(img.TransformContinuousIndexToPhysicalPoint([float(v) for v in (new / old - 1.0) / 2.0]))
    return sitk.Resample(smooth, ref, sitk.Transform(), sitk.sitkLinear, 0.0, img.GetPixelID())


def _metric_mask(baseline_mask: sitk.Image, m_idx: list[int], m_size: list[int], fixed: sitk.Image,
                 distance_mm: float) -> sitk.Image:
    """The fixed crop's voxels within ``distance_mm`` of the baseline ROI (UInt8 on ``fixed``'s grid):
    a distance map on the baseline crop (linear time, also at 512 x 512 x 100), thresholded, then
    placed on the time point's crop with the identity (same physical space)."""
    roi = sitk.Cast(_crop(baseline_mask, m_idx, m_size) > 0, sitk.sitkUInt8)
    dist = sitk.SignedMaurerDistanceMap(roi, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    near = sitk.Cast(dist <= distance_mm, sitk.sitkUInt8)
    return sitk.Resample(near, fixed, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def _demons(fixed: sitk.Image, moving_on_fixed: sitk.Image, s: PropagationSettings) -> sitk.Image:
    """Symmetric-forces demons displacement field (on ``fixed``'s grid), both images smoothed by
    ``image_smoothing_voxels`` (boundaries drive it, not noise or texture); the moving image
    histogram-matched to the fixed one first only with ``histogram_matching`` (for intensities
    that drift between sessions, e.g. MR: on calibrated CT it shifts the grey levels of an ROI
    whose share of the crop changed, e.g. a shrinking parotid, and demons then follows the shift)."""
    matched = (sitk.HistogramMatching(moving_on_fixed, fixed, numberOfHistogramLevels=256, numberOfMatchPoints=15,
                                      thresholdAtMeanIntensity=False) if s.histogram_matching else moving_on_fixed)
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(s.demons_iterations)
    demons.SetStandardDeviations(s.demons_smoothing_voxels)
    demons.SetSmoothDisplacementField(True)
    demons.SetNumberOfThreads(s.threads)
    sm_f = sitk.SmoothingRecursiveGaussian(fixed, s.image_smoothing_voxels)
    sm_m = sitk.SmoothingRecursiveGaussian(matched, s.image_smoothing_voxels)
    field: sitk.Image | None = None
    for level in range(s.demons_levels - 1, -1, -1):  # coarse to fine: shrink 2**level, then full resolution
        f = 2**level
        lf, lm = (sitk.Shrink(sm_f, [f] * 3), sitk.Shrink(sm_m, [f] * 3)) if f > 1 else (sm_f, sm_m)
        if field is None:
            field = demons.Execute(lf, lm)
        else:
            init = sitk.Resample(field, lf, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
            field = demons.Execute(lf, lm, init)
    assert field is not None
    return field


def _jacobian_stats(field: sitk.Image | None) -> tuple[float, float, float]:
    if field is None:
        return 1.0, 1.0, 0.0
    jac = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(field))
    return float(jac.min()), float(jac.max()), float(np.mean(jac <= 0.0))


def propagate_mask(baseline_image: sitk.Image, baseline_mask: sitk.Image, target_image: sitk.Image,
                   settings: PropagationSettings, own_mask: sitk.Image | None = None) -> PropagationResult:
    """Carry ``baseline_mask`` (on ``baseline_image``'s grid) onto ``target_image``'s grid.

    ``own_mask``: the time point's own contour of the ROI, when it exists (only used for Dice).

    Raises:
        ValueError: empty baseline mask.
    """
    t0 = time.perf_counter()
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(settings.threads)
    try:
        fixed_full = sitk.Cast(target_image, sitk.sitkFloat32)
        moving_full = sitk.Cast(baseline_image, sitk.sitkFloat32)
        f_idx, f_size = crop_box(baseline_mask, fixed_full, settings.margin_mm)
        m_idx, m_size = crop_box(baseline_mask, moving_full, settings.margin_mm)
        fixed = _crop(fixed_full, f_idx, f_size)
        reg_fixed = registration_grid(fixed, settings.registration_spacing_mm)
        moving = registration_grid(_crop(moving_full, m_idx, m_size), settings.registration_spacing_mm)
        mmask = (_metric_mask(baseline_mask, m_idx, m_size, reg_fixed, settings.rigid_mask_mm)
                 if settings.rigid_mask_mm > 0 else None)
        rig = _rigid(reg_fixed, moving, settings, mmask)
        rigid = rig.transform
        field = None
        tx: sitk.Transform = rigid
        if settings.deformable:
            moved = sitk.Resample(moving, reg_fixed, rigid, sitk.sitkLinear, float(np.median(
                sitk.GetArrayViewFromImage(moving))))
            field = _demons(reg_fixed, moved, settings)
            dft = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
            tx = sitk.CompositeTransform([rigid, dft])  # applied last-first: field, then rigid
        jmin, jmax, jfold = _jacobian_stats(field)
        soft = sitk.Resample(sitk.Cast(baseline_mask > 0, sitk.sitkFloat32), fixed, tx, sitk.sitkLinear, 0.0)
        crop_mask = sitk.Cast(soft > 0.5, sitk.sitkUInt8)
        full = sitk.Image(target_image.GetSize(), sitk.sitkUInt8)
        full.CopyInformation(target_image)
        full = sitk.Paste(full, crop_mask, crop_mask.GetSize(), [0, 0, 0], f_idx)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
    d = dice(full, own_mask) if own_mask is not None else None
    trans = tuple(float(v) for v in rigid.GetTranslation())
    return PropagationResult(full, d, jmin, jmax, jfold, rig.metric, trans,  # type: ignore[arg-type]
                             rig.rotation_deg, rig.bounded, time.perf_counter() - t0)
