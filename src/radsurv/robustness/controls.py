"""Negative-control images (READII; Kazmierski et al., "Multi-institutional evaluation of
radiomic feature robustness using negative controls", and the READII package definitions).

A radiomics model that only re-learns tumour volume, or learns nothing, should do as well
on features from control images that carry no tumour biology:

* :func:`shuffled_roi` ("shuffled", region ``roi``): the voxel intensities inside the ROI are
  randomly permuted; the ROI (so volume and shape) is kept, texture and spatial structure are
  destroyed, first-order statistics are unchanged.
* :func:`moved_roi` ("randomised ROI"): the ROI is moved by a random whole-voxel shift to a
  place inside the body that does not overlap the tumour; the image is unchanged, so the
  features describe non-tumour tissue with the tumour's shape and volume.

A model whose C-index on the shuffled control is not near the volume-only model's learned
little beyond volume; one that keeps its C-index on the moved ROI learned something that is
not the tumour. Both are deterministic given ``seed``
(``numpy.random.default_rng(seed)``). Arrays are ``z, y, x`` as SimpleITK's
``GetArrayFromImage`` gives them; :func:`control_image_files` applies them to files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["CONTROLS", "shuffled_roi", "moved_roi", "body_mask", "control_image_files"]

#: The negative controls offered: name -> what it does (for configs and reports).
CONTROLS = {
    "shuffled": "voxel intensities randomly permuted inside the ROI (shape and volume kept)",
    "moved_roi": "ROI moved to a random non-tumour location inside the body (image unchanged)",
}


def shuffled_roi(image: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    """A copy of ``image`` whose voxels inside ``mask`` are randomly permuted among themselves."""
    img = np.array(image, copy=True)
    m = np.asarray(mask).astype(bool)
    if m.shape != img.shape:
        raise ValueError(f"image {img.shape} and mask {m.shape} differ in shape")
    if not m.any():
        raise ValueError("the ROI is empty: nothing to shuffle")
    vals = img[m]
    img[m] = np.random.default_rng(seed).permutation(vals)
    return img


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
    if control == "shuffled":
        out_img, out_mask = shuffled_roi(arr, m, seed), m
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
