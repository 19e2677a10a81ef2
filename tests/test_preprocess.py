"""Preprocessing: IBSI grid alignment, mask partial-volume handling, cropping."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radsurv.errors import CaseError
from radsurv.features.preprocess import PreprocessSettings, centred_grid, preprocess


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


# ------------------------------------------------------------ re-segmentation
def _img(arr, spacing=(2.0, 2.0, 2.0)):
    im = sitk.GetImageFromArray(np.asarray(arr, np.float32))
    im.SetSpacing(spacing)
    return im


def test_range_then_outlier_resegmentation_of_the_intensity_mask_only():
    rng = np.random.default_rng(0)
    arr = rng.normal(0, 20, (12, 12, 12)).round()
    arr[6, 6, 6] = 2000.0   # out of range
    arr[5, 5, 5] = 150.0    # in range, but an outlier once 2000 is gone
    image = _img(arr)
    morph = _img(np.ones_like(arr))
    morph = sitk.Cast(morph, sitk.sitkUInt8)
    from radsurv.features.preprocess import resegment

    inten = sitk.GetArrayFromImage(resegment(image, morph, (-1000, 400), 3.0)).astype(bool)
    kept = (arr >= -1000) & (arr <= 400)
    mu, sd = arr[kept].mean(), arr[kept].std()
    expected = kept & (np.abs(arr - mu) <= 3 * sd)
    np.testing.assert_array_equal(inten, expected)
    assert not inten[6, 6, 6] and not inten[5, 5, 5]
    # outlier statistics on the whole ROI (range not first) would keep the 150 voxel: the order matters
    whole = np.abs(arr - arr.mean()) <= 3 * arr.std()
    assert whole[5, 5, 5]
    # open bounds
    only_low = sitk.GetArrayFromImage(resegment(image, morph, (0, None), None)).astype(bool)
    np.testing.assert_array_equal(only_low, arr >= 0)


def test_preprocess_all_keeps_the_morphological_mask():
    image, mask, _ = _phantom()
    s = PreprocessSettings(spacing_mm=(2.0, 2.0, 2.0), resegment_range=(0.0, 400.0))
    from radsurv.features.preprocess import preprocess_all

    img, morph, inten = preprocess_all(image, mask, s)
    _, morph_plain = preprocess(image, mask, PreprocessSettings(spacing_mm=(2.0, 2.0, 2.0)))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(morph), sitk.GetArrayFromImage(morph_plain))
    a, m, i = (sitk.GetArrayFromImage(x) for x in (img, morph, inten))
    assert i.sum() < m.sum() and not (i & ~m).any()
    assert a[i > 0].min() >= 0 and a[(m > 0) & (i == 0)].max() < 0


def test_everything_resegmented_away_is_a_case_error():
    image, mask, _ = _phantom()
    from radsurv.features.preprocess import preprocess_all

    with pytest.raises(CaseError, match="re-segmentation"):
        preprocess_all(image, mask, PreprocessSettings(resegment_range=(1000.0, 2000.0)))


def test_null_axis_keeps_that_spacing_for_2d_work():
    image, mask, _ = _phantom()
    img, m = preprocess(image, mask, PreprocessSettings(spacing_mm=(2.0, 2.0, None)))
    assert img.GetSpacing() == (2.0, 2.0, 2.5)
    size, origin = centred_grid(image, (2.0, 2.0, None))
    assert size[2] == image.GetSize()[2] and origin[2] == pytest.approx(image.GetOrigin()[2])


def test_nearest_mask_interpolation_differs_from_linear():
    image, mask, _ = _phantom()
    _, lin = preprocess(image, mask, PreprocessSettings(spacing_mm=(1.7, 1.7, 1.7)))
    _, nn = preprocess(image, mask, PreprocessSettings(spacing_mm=(1.7, 1.7, 1.7), mask_interpolator="nearest"))
    assert not np.array_equal(sitk.GetArrayFromImage(lin), sitk.GetArrayFromImage(nn))


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="low bound"):
        PreprocessSettings(resegment_range=(400.0, -1000.0))
    with pytest.raises(ValueError, match="modality"):
        PreprocessSettings(modality="XR")
    s = PreprocessSettings.from_config({"spacing_mm": [2, 2, None], "resegment_range": [0, None], "outlier_sigma": 3})
    assert s.spacing_mm == (2.0, 2.0, None) and s.resegment_range == (0.0, None) and s.outlier_sigma == 3.0


# ----------------------------------------------------------------- MR and PET
def _mr_phantom():
    """A head-like ellipsoid with tissue contrast, a smooth multiplicative bias field and noise."""
    rng = np.random.default_rng(5)
    z, y, x = np.indices((40, 64, 64)).astype(float)
    head = ((x - 32) / 28) ** 2 + ((y - 32) / 28) ** 2 + ((z - 20) / 18) ** 2 < 1
    tumour = ((x - 40) ** 2 + (y - 30) ** 2 + (z - 20) ** 2) < 36
    tissue = np.where(head, 400.0, 0.0) + np.where(tumour, 200.0, 0.0)
    bias = 1.0 + 0.4 * (x - 32) / 32
    arr = tissue * bias + rng.normal(0, 5, tissue.shape) + 10
    img = _img(arr, (1.0, 1.0, 1.0))
    mask = sitk.Cast(_img(tumour.astype(np.uint8), (1.0, 1.0, 1.0)), sitk.sitkUInt8)
    return img, mask, head & ~tumour


def test_mr_n4_removes_bias_and_zscore_normalises_the_foreground():
    from radsurv.features.preprocess import foreground_mask, n4_correct, normalise

    img, _, brain = _mr_phantom()
    fg = foreground_mask(img)
    overlap = (sitk.GetArrayFromImage(fg) > 0) & brain
    assert overlap.sum() > 0.95 * brain.sum()
    before = sitk.GetArrayFromImage(img)[brain]
    after = sitk.GetArrayFromImage(n4_correct(img, fg))[brain]
    cv = lambda v: v.std() / v.mean()  # noqa: E731
    assert cv(after) < 0.5 * cv(before)
    z = sitk.GetArrayFromImage(normalise(img, fg, "zscore"))[sitk.GetArrayFromImage(fg) > 0]
    assert z.mean() == pytest.approx(0, abs=1e-4) and z.std() == pytest.approx(1, abs=1e-4)
    p = sitk.GetArrayFromImage(normalise(img, fg, "percentile", (1, 99)))[sitk.GetArrayFromImage(fg) > 0]
    assert np.percentile(p, 1) == pytest.approx(0, abs=1e-4) and np.percentile(p, 99) == pytest.approx(1, abs=1e-4)


def test_brain_mr_preset_runs_end_to_end():
    from radsurv.config import load_site
    from radsurv.features.preprocess import preprocess_all

    img, mask, _ = _mr_phantom()
    s = PreprocessSettings.from_config(load_site("brain_mr")["preprocessing"])
    out, morph, inten = preprocess_all(img, mask, s)
    vals = sitk.GetArrayFromImage(out)[sitk.GetArrayFromImage(inten) > 0]
    assert 0 < vals.mean() < 10  # tumour brighter than the head average, in SD units
    assert sitk.GetArrayFromImage(inten).sum() <= sitk.GetArrayFromImage(morph).sum()


def test_pet_not_in_suv_is_a_case_error():
    image, mask, _ = _phantom()
    bq = image * 0 + 15000.0  # Bq/ml-like values
    with pytest.raises(CaseError, match="SUV"):
        preprocess(bq, mask, PreprocessSettings(modality="PET", round_intensities=False, suv_max_plausible=100.0))
    suv = image * 0 + 8.0
    preprocess(suv, mask, PreprocessSettings(modality="PET", round_intensities=False, suv_max_plausible=100.0))


# ------------------------------------------------------------------ site presets
def test_site_presets_validate_and_merge():
    import copy
    from pathlib import Path

    import yaml

    from radsurv.config import SITES_DIR, apply_site
    from radsurv.schema import load_schema, problems

    repo = Path(__file__).resolve().parents[1]
    schema = load_schema(repo / "workflow" / "schemas" / "config.schema.yaml")
    base = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    sites = sorted(p.stem for p in SITES_DIR.glob("*.yaml"))
    assert {"lung_ct", "hn_ct", "brain_mr", "fdg_pet", "ibsi_a", "ibsi_e", "ibsi_digital_phantom"} <= set(sites)
    for site in sites:
        cfg = copy.deepcopy(base)
        cfg["site"] = site
        cfg.pop("extraction", None)
        apply_site(cfg)
        assert problems(cfg, schema) == [], site
        PreprocessSettings.from_config(cfg["preprocessing"])  # the library accepts it too
    # the study config's keys override the preset's one by one
    cfg = {"site": "lung_ct", "extraction": {"bin_width": 10}, "preprocessing": {"spacing_mm": [1, 1, 1]}}
    apply_site(cfg)
    assert cfg["extraction"]["bin_width"] == 10 and cfg["extraction"]["feature_classes"]
    assert cfg["preprocessing"]["spacing_mm"] == [1, 1, 1] and cfg["preprocessing"]["resegment_range"] == [-1000, 400]
    # legacy place of the range
    legacy = {"preprocessing": {}, "extraction": {"resegment_range": [-500, 400]}}
    apply_site(legacy)
    assert legacy["preprocessing"]["resegment_range"] == [-500, 400] and "resegment_range" not in legacy["extraction"]
    with pytest.raises(ValueError, match="shipped sites"):
        apply_site({"site": "lung_mri"})


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.float32])
def test_array_bbox_equals_the_nonzero_voxels_extent(dtype):
    from radsurv.features.preprocess import array_bbox

    rng = np.random.default_rng(3)
    for _ in range(20):
        arr = np.zeros((12, 20, 16), dtype=dtype)
        for _ in range(rng.integers(1, 4)):  # separate islands, e.g. a ROI on non-adjacent slices
            z, y, x = rng.integers(0, 12), rng.integers(0, 20), rng.integers(0, 16)
            arr[z, y:y + rng.integers(1, 5), x:x + rng.integers(1, 5)] = 1
        zz, yy, xx = np.nonzero(arr)
        lo, hi = array_bbox(arr)
        assert lo.tolist() == [xx.min(), yy.min(), zz.min()] and hi.tolist() == [xx.max(), yy.max(), zz.max()]
    assert array_bbox(np.zeros((3, 4, 5), dtype=dtype)) is None
