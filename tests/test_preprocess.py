"""Preprocessing: IBSI grid alignment, mask partial-volume handling, cropping."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radsurv.errors import CaseError
from radsurv.preprocess import PreprocessSettings, centred_grid, preprocess


def _phantom(spacing=(0.8, 0.8, 2.5), size=(80, 70, 30), radius=12.0, seed=1):
    """A noisy CT-like image with a sphere of known radius (mm) at a known centre."""
    rng = np.random.default_rng(seed)
    img = sitk.Image(size, sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin((-30.0, 12.5, -40.0))
    z, y, x = np.indices(size[::-1]).astype(float)
    cx, cy, cz = 40 * spacing[0], 33 * spacing[1], 14 * spacing[2]
    r = np.sqrt((x * spacing[0] - cx) ** 2 + (y * spacing[1] - cy) ** 2 + (z * spacing[2] - cz) ** 2)
    arr = np.where(r < radius, 40.0, -800.0) + rng.normal(0, 10, r.shape)
    image = sitk.GetImageFromArray(np.round(arr).astype(np.float32))
    image.CopyInformation(img)
    mask = sitk.GetImageFromArray((r < radius).astype(np.uint8))
    mask.CopyInformation(img)
    return image, mask, 4 / 3 * np.pi * radius**3


def test_centred_grid_shares_the_original_centre():
    image, _, _ = _phantom()
    size, origin = centred_grid(image, (2.0, 2.0, 2.0))
    assert size == (32, 28, 38)  # ceil(80*0.8/2), ceil(70*0.8/2), ceil(30*2.5/2)
    old_centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))
    new_centre = np.array(origin) + (np.array(size) - 1) / 2 * 2.0
    np.testing.assert_allclose(new_centre, old_centre, atol=1e-9)


def test_cropped_result_equals_whole_image_resampling():
    image, mask, _ = _phantom()
    s = PreprocessSettings(spacing_mm=(2.0, 2.0, 2.0), crop_margin_mm=10.0)
    img_c, msk_c = preprocess(image, mask, s)
    # Reference: resample the whole image on the centred grid, no cropping.
    size, origin = centred_grid(image, (2.0, 2.0, 2.0))
    full = sitk.Round(sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), size, sitk.Transform(), sitk.sitkLinear,
                                    origin, (2.0, 2.0, 2.0), image.GetDirection(), -9999.0, sitk.sitkFloat32))
    idx = full.TransformPhysicalPointToIndex(img_c.GetOrigin())
    ref = sitk.GetArrayFromImage(full)[idx[2]:idx[2] + img_c.GetSize()[2], idx[1]:idx[1] + img_c.GetSize()[1],
                                       idx[0]:idx[0] + img_c.GetSize()[0]]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img_c), ref)
    assert img_c.GetSpacing() == (2.0, 2.0, 2.0)
    assert msk_c.GetSize() == img_c.GetSize() and msk_c.GetOrigin() == img_c.GetOrigin()


def test_mask_volume_preserved_by_linear_interpolation_at_half():
    image, mask, true_vol = _phantom(radius=12.0)
    _, m = preprocess(image, mask, PreprocessSettings(spacing_mm=(2.0, 2.0, 2.0)))
    vol = sitk.GetArrayFromImage(m).sum() * 8.0
    orig = sitk.GetArrayFromImage(mask).sum() * 0.8 * 0.8 * 2.5
    assert abs(vol - orig) / orig < 0.05
    assert abs(vol - true_vol) / true_vol < 0.08
    assert set(np.unique(sitk.GetArrayFromImage(m))) == {0, 1}


def test_ct_intensities_rounded_to_integers():
    image, mask, _ = _phantom()
    img, _ = preprocess(image, mask, PreprocessSettings(spacing_mm=(1.7, 1.7, 1.7), round_intensities=True))
    arr = sitk.GetArrayFromImage(img)
    np.testing.assert_array_equal(arr, np.round(arr))
    img2, _ = preprocess(image, mask, PreprocessSettings(spacing_mm=(1.7, 1.7, 1.7), round_intensities=False))
    assert not np.array_equal(sitk.GetArrayFromImage(img2), np.round(sitk.GetArrayFromImage(img2)))


def test_no_resampling_keeps_voxels_and_crops():
    image, mask, _ = _phantom()
    img, m = preprocess(image, mask, PreprocessSettings(spacing_mm=None, crop_margin_mm=5.0))
    assert img.GetSpacing() == image.GetSpacing()
    assert sitk.GetArrayFromImage(m).sum() == sitk.GetArrayFromImage(mask).sum()
    assert np.prod(img.GetSize()) < np.prod(image.GetSize())


def test_tiny_roi_that_vanishes_is_a_case_error():
    image, _, _ = _phantom()
    arr = np.zeros(image.GetSize()[::-1], np.uint8)
    arr[14, 33, 40] = 1  # one 0.8x0.8x2.5 mm voxel
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(image)
    with pytest.raises(CaseError, match="vanished"):
        preprocess(image, mask, PreprocessSettings(spacing_mm=(4.0, 4.0, 4.0)))


def test_empty_mask_is_a_case_error():
    image, mask, _ = _phantom()
    with pytest.raises(CaseError, match="empty"):
        preprocess(image, mask * 0, PreprocessSettings())
