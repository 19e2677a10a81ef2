"""Negative-control images (READII; Kazmierski et al., "Multi-institutional evaluation of
radiomic feature robustness using negative controls", and the READII package's
``readii.negative_controls`` definitions).

A radiomics model that only re-learns volume, or learns nothing, should do as well on features
from control images that carry no tumour biology. READII's three intensity transformations,
each applied to a region (READII's ``roi`` or ``full``; its ``non_roi`` changes only voxels that
ROI features do not read, so it is not offered):

* ``shuffled`` (READII ``shuffled_roi``): the voxel intensities inside the ROI randomly
  permuted; shape and volume kept, texture and spatial structure destroyed, first-order
  statistics unchanged.
* ``randomized`` (READII ``randomized_roi``): every ROI voxel replaced by a uniform random value
  between the ROI's minimum and maximum (inclusive; whole numbers for whole-number images such as
  HU, as READII draws them, continuous otherwise); shape kept, texture and the intensity
  distribution destroyed (only the range is kept). The range is the ROI's, not the whole image's,
  as in READII (bhklab/readii ``src/readii/negative_controls_refactor/negative_controls.py``
  ``RandomizedControl.transform`` takes min/max of the values it is given, which
  ``abstract_classes.py`` ``NegativeControlStrategy.__call__`` restricts to the ROI's voxels;
  ``src/readii/negative_controls.py`` ``negativeControlROIOnly`` -> ``makeRandomImage`` on the ROI's
  values, and the older ``makeRandomRoi``, take min/max over the ROI too). On whole-number images
  every intensity control here equals READII's voxel for voxel for the same seed
  (``tests/test_negative_controls.py``). One deviation: on non-whole-number images (PET SUV)
  READII's ``Generator.integers`` truncates the bounds and draws whole numbers; here the draw is
  continuous in the ROI's range.
* ``sampled`` (READII ``randomized_sampled_roi``): every ROI voxel drawn with replacement from the
  ROI's own intensities; shape kept, texture destroyed, first-order statistics kept up to sampling.
* ``shuffled_image``, ``randomized_image``, ``sampled_image`` (READII ``*_full``): the same applied
  to every voxel of the image, so the ROI's voxels come from the whole image's intensities
  (``sampled_image``: drawn from the whole image's distribution; ``randomized_image``: uniform in
  the whole image's range). In the workflow "the whole image" is the converted image, which for
  CT and PET is the ROI's neighbourhood (:func:`radsurv.features.preprocess.conversion_margin_mm`).
* ``moved_roi`` (:func:`moved_roi`, "randomised ROI"): the ROI moved by a random whole-voxel shift
  to a place inside the body that does not overlap the tumour; the image is unchanged, so the
  features describe non-tumour tissue with the tumour's shape and volume. It needs the whole
  scan (see :func:`radsurv.features.scan.control_scan`).

A model whose C-index on an intensity control is not near the volume-only model's learned
little beyond volume; one that keeps its C-index on the moved ROI learned something that is
not the tumour. All are deterministic given ``seed`` (``numpy.random.default_rng(seed)``).
Arrays are ``z, y, x`` as SimpleITK's ``GetArrayFromImage`` gives them;
:func:`control_image_files` applies them to files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["CONTROLS", "INTENSITY_CONTROLS", "intensity_control", "shuffled_roi", "moved_roi", "body_mask",
           "control_image_files"]

#: The negative controls offered: name -> what it does (for configs and reports).
CONTROLS = {
    "shuffled": "voxel intensities randomly permuted inside the ROI (shape and volume kept)",
    "randomized": "ROI intensities replaced by uniform random values within the ROI's range (shape kept)",
    "sampled": "ROI intensities drawn with replacement from the ROI's own intensities (shape kept)",
    "shuffled_image": "every voxel of the image randomly permuted (shape kept)",
    "randomized_image": "every voxel replaced by a uniform random value within the image's range (shape kept)",
    "sampled_image": "every voxel drawn with replacement from the whole image's intensities (shape kept)",
    "moved_roi": "ROI moved to a random non-tumour location inside the body (image unchanged)",
}


def _shuffle(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(values)


def _randomize(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo, hi = values.min(), values.max()
    if values.dtype.kind in "iu" or np.array_equal(values, np.round(values)):
        return rng.integers(int(lo), int(hi), endpoint=True, size=values.shape).astype(values.dtype)
    return rng.uniform(float(lo), float(hi), size=values.shape).astype(values.dtype)


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(values, size=values.shape, replace=True)


#: The intensity controls: name -> (transformation of a 1-d array of intensities, region).
INTENSITY_CONTROLS: dict[str, tuple[Callable[[np.ndarray, np.random.Generator], np.ndarray], str]] = {
    "shuffled": (_shuffle, "roi"), "randomized": (_randomize, "roi"), "sampled": (_sample, "roi"),
    "shuffled_image": (_shuffle, "image"), "randomized_image": (_randomize, "image"),
    "sampled_image": (_sample, "image"),
}


def intensity_control(image: np.ndarray, mask: np.ndarray, control: str, seed: int) -> np.ndarray:
    """A copy of ``image`` with the intensity ``control`` (a key of :data:`INTENSITY_CONTROLS`)
    applied to the voxels inside ``mask`` (region ``roi``) or to every voxel (region ``image``)."""
    if control not in INTENSITY_CONTROLS:
        raise ValueError(f"unknown intensity control {control!r}; choose from {sorted(INTENSITY_CONTROLS)}")
    fn, region = INTENSITY_CONTROLS[control]
    img = np.array(image, copy=True)
    m = np.asarray(mask).astype(bool)
    if m.shape != img.shape:
        raise ValueError(f"image {img.shape} and mask {m.shape} differ in shape")
    if not m.any():
        raise ValueError("the ROI is empty: nothing to randomise")
    sel = m if region == "roi" else np.ones_like(m)
    img[sel] = fn(img[sel], np.random.default_rng(seed))
    return img


def shuffled_roi(image: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    """A copy of ``image`` whose voxels inside ``mask`` are randomly permuted among themselves."""
    return intensity_control(image, mask, "shuffled", seed)


def body_mask(image: np.ndarray, threshold: float = -500.0) -> np.ndarray:
    """The body of a CT (HU): voxels above ``threshold`` in the largest connected component,
    holes (lungs) filled slice by slice."""
    from scipy import ndimage

    m = np.asarray(image) > threshold
    lab, n = ndimage.label(m)
    if n == 0:
        return m
    sizes = ndimage.sum(m, lab, index=range(1, n + 1))
    body = lab == (int(np.argmax(sizes)) + 1)
    return np.stack([ndimage.binary_fill_holes(s) for s in body])


def moved_roi(mask: np.ndarray, body: np.ndarray, seed: int, attempts: int = 2000,
              margin_voxels: int = 1) -> np.ndarray:
    """``mask`` moved by a random whole-voxel shift so that it lies inside ``body`` and does not
    touch the original ROI (dilated by ``margin_voxels``). ``ValueError`` when no such place is
    found in ``attempts`` random shifts (a ROI too large for the body or field of view)."""
    from scipy import ndimage

    m = np.asarray(mask).astype(bool)
    b = np.asarray(body).astype(bool)
    if m.shape != b.shape:
        raise ValueError(f"mask {m.shape} and body {b.shape} differ in shape")
    if not m.any():
        raise ValueError("the ROI is empty: nothing to move")
    keep_out = ndimage.binary_dilation(m, iterations=int(margin_voxels)) if margin_voxels > 0 else m
    idx = np.argwhere(m)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    shape = np.array(m.shape)
    rng = np.random.default_rng(seed)
    for _ in range(int(attempts)):
        # shifts that keep the ROI's bounding box inside the array
        shift = np.array([rng.integers(-lo[d], shape[d] - hi[d]) for d in range(3)])
        if not shift.any():
            continue
        moved_idx = idx + shift
        if not b[tuple(moved_idx.T)].all() or keep_out[tuple(moved_idx.T)].any():
            continue
        out = np.zeros_like(m)
        out[tuple(moved_idx.T)] = True
        return out
    raise ValueError(f"no place inside the body away from the tumour fits the ROI ({int(m.sum())} voxels) "
                     f"after {attempts} random shifts (field of view too small, e.g. an image cropped to the "
                     "tumour's neighbourhood)")


def control_image_files(image_path: str | Path, mask_path: str | Path, control: str, seed: int,
                        image_out: str | Path, mask_out: str | Path, body_threshold: float = -500.0) -> None:
    """Write the ``control`` (a key of :data:`CONTROLS`) of one scan's image and mask."""
    import SimpleITK as sitk

    if control not in CONTROLS:
        raise ValueError(f"unknown negative control {control!r}; choose from {sorted(CONTROLS)}")
    img = sitk.ReadImage(str(image_path))
    msk = sitk.ReadImage(str(mask_path))
    arr = sitk.GetArrayFromImage(img)
    m = sitk.GetArrayFromImage(msk) > 0
    if control in INTENSITY_CONTROLS:
        out_img, out_mask = intensity_control(arr, m, control, seed), m
    else:
        out_img, out_mask = arr, moved_roi(m, body_mask(arr, body_threshold), seed)
    oi = sitk.GetImageFromArray(out_img)
    oi.CopyInformation(img)
    om = sitk.GetImageFromArray(out_mask.astype(np.uint8))
    om.CopyInformation(msk)
    Path(image_out).parent.mkdir(parents=True, exist_ok=True)
    Path(mask_out).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(oi, str(image_out), useCompression=True)
    sitk.WriteImage(om, str(mask_out), useCompression=True)
