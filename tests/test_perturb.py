"""Image perturbations (Zwanenburg et al. 2019) and their features through the pipeline's own steps."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radsurv.errors import CaseError
from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE
from radsurv.robustness.perturbation import (
    PerturbationParams,
    PerturbationSettings,
    adapt_mask,
    draw_params,
    estimate_noise_sd,
    perturb,
    perturbed_features,
)

SPACING = (0.8, 0.8, 2.0)


def _phantom(noise_sd: float = 0.0, seed: int = 0, shape=(24, 64, 64)):
    """Smooth 'CT' (z, y, x) with an ellipsoidal tumour (mask) of internal structure, plus noise."""
    z, y, x = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    zc, yc, xc = (np.array(shape) - 1) / 2
    r = np.sqrt(((z - zc) * SPACING[2] / 12) ** 2 + ((y - yc) * SPACING[1] / 14) ** 2
                + ((x - xc - 3) * SPACING[0] / 11) ** 2)
    inside = r <= 1.0
    smooth = -800 + 60 * np.sin(x / 9.0) + 40 * np.cos(y / 11.0)
    tumour = 30 + 25 * np.sin(x / 3.0) * np.cos(y / 4.0) + 15 * np.cos(z / 2.0)
    arr = np.where(inside, tumour, smooth)
    if noise_sd:
        arr = arr + np.random.default_rng(seed).normal(0, noise_sd, shape)
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing(SPACING)
    img.SetOrigin((-20.0, 10.0, 5.0))
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(img)
    return img, mask


def _identity(**kw) -> PerturbationParams:
    base = dict(index=0, angle_deg=0.0, shift_mm=(0.0, 0.0, 0.0), noise=False, volume_change=0.0,
                contour_sd_mm=0.0, seed=1)
    base.update(kw)
    return PerturbationParams(**base)


def test_parameters_are_deterministic_per_seed_and_scan_and_within_range():
    s = PerturbationSettings(n=20, rotation_deg=10, translation_fraction=0.5, volume_change=0.2)
    a = draw_params(s, 42, "P001_S1", (2.0, 2.0, 3.0))
    assert a == draw_params(s, 42, "P001_S1", (2.0, 2.0, 3.0))
    assert a != draw_params(s, 42, "P002_S1", (2.0, 2.0, 3.0))
    assert a != draw_params(s, 43, "P001_S1", (2.0, 2.0, 3.0))
    assert len(a) == 20 and [p.index for p in a] == list(range(20))
    assert max(abs(p.angle_deg) for p in a) <= 10 and np.std([p.angle_deg for p in a]) > 2
    assert all(abs(p.shift_mm[0]) <= 1.0 and abs(p.shift_mm[2]) <= 1.5 for p in a)
    assert all(abs(p.volume_change) <= 0.2 for p in a)
    with pytest.raises(ValueError):
        PerturbationSettings(n=1)


def test_noise_estimate_recovers_the_added_noise():
    for sd in (10.0, 30.0):
        img, mask = _phantom(noise_sd=sd)
        est = estimate_noise_sd(img, mask)
        assert est == pytest.approx(sd, rel=0.08), (sd, est)
    img, mask = _phantom(noise_sd=0.0)
    assert estimate_noise_sd(img, mask) < 1.5  # smooth image: almost nothing in the HHH band


def test_volume_adaptation_is_exact_and_erodes_or_dilates():
    _, mask = _phantom()
    m = sitk.GetArrayFromImage(mask).astype(bool)
    sp = np.array(SPACING[::-1])
    n0 = m.sum()
    rng = np.random.default_rng(0)
    grown = adapt_mask(m, sp, 0.15, 0.0, 4.0, rng).astype(bool)
    shrunk = adapt_mask(m, sp, -0.15, 0.0, 4.0, rng).astype(bool)
    assert grown.sum() == round(1.15 * n0) and shrunk.sum() == round(0.85 * n0)
    assert (grown | m).sum() == grown.sum()  # pure dilation contains the ROI
    assert (shrunk & m).sum() == shrunk.sum()  # pure erosion lies inside it
    assert np.array_equal(adapt_mask(m, sp, 0.0, 0.0, 4.0, rng).astype(bool), m)
    # Contour randomisation keeps the volume target but moves the surface both ways.
    rand = adapt_mask(m, sp, 0.0, 1.5, 4.0, np.random.default_rng(1)).astype(bool)
    assert rand.sum() == n0
    assert (rand & ~m).sum() > 0.02 * n0 and (m & ~rand).sum() > 0.02 * n0
    assert (rand ^ m).sum() < 0.5 * n0  # local, not a different ROI
    with pytest.raises(CaseError):
        adapt_mask(np.zeros_like(m), sp, 0.1, 0.0, 4.0, rng)


def test_identity_perturbation_returns_the_input():
    img, mask = _phantom(noise_sd=5.0)
    out_img, out_mask = perturb(img, mask, _identity(), 5.0, PerturbationSettings())
    assert np.array_equal(sitk.GetArrayFromImage(out_img), sitk.GetArrayFromImage(img))
    assert np.array_equal(sitk.GetArrayFromImage(out_mask), sitk.GetArrayFromImage(mask))
    for a, b in ((out_img, img), (out_mask, mask)):
        assert a.GetSize() == b.GetSize() and a.GetOrigin() == b.GetOrigin()
        assert a.GetSpacing() == b.GetSpacing() and a.GetDirection() == b.GetDirection()


def test_translation_moves_the_content_by_the_recorded_shift():
    img, mask = _phantom()
    # +2 voxels along x: B-spline interpolation at whole-voxel offsets reproduces the voxel values.
    out_img, out_mask = perturb(img, mask, _identity(shift_mm=(2 * SPACING[0], 0.0, 0.0)), 0.0,
                                PerturbationSettings())
    a, b = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(out_img)
    np.testing.assert_allclose(b[:, :, 12:-12], a[:, :, 10:-14], atol=1e-2)
    m, mo = sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(out_mask)
    assert np.array_equal(mo[:, :, 2:], m[:, :, :-2])


def test_rotation_is_in_plane_about_the_roi_and_keeps_its_volume():
    img, mask = _phantom()
    m = sitk.GetArrayFromImage(mask).astype(bool)
    _, out_mask = perturb(img, mask, _identity(angle_deg=90.0), 0.0, PerturbationSettings())
    mo = sitk.GetArrayFromImage(out_mask).astype(bool)
    assert mo.sum() == pytest.approx(m.sum(), rel=0.03)
    # Same slices (rotation about z), same centroid, but the long axis turned: y and x extents swap.
    assert np.array_equal(np.unique(np.nonzero(mo)[0]), np.unique(np.nonzero(m)[0]))
    c0, c1 = np.array(np.nonzero(m)).mean(axis=1), np.array(np.nonzero(mo)).mean(axis=1)
    assert np.allclose(c0, c1, atol=0.6)
    ext = lambda a, ax: np.ptp(np.nonzero(a)[ax]) * SPACING[::-1][ax]  # noqa: E731
    assert ext(mo, 1) == pytest.approx(ext(m, 2), abs=2.0) and ext(mo, 2) == pytest.approx(ext(m, 1), abs=2.0)


def test_noise_is_added_at_the_given_level():
    img, mask = _phantom()
    out_img, _ = perturb(img, mask, _identity(noise=True), 20.0, PerturbationSettings())
    diff = sitk.GetArrayFromImage(out_img) - sitk.GetArrayFromImage(img)
    assert diff.std() == pytest.approx(20.0, rel=0.03) and abs(diff.mean()) < 0.5


PREPROCESSING = {"spacing_mm": [2.0, 2.0, 2.0], "image_interpolator": "linear", "mask_threshold": 0.5,
                 "round_intensities": True, "crop_margin_mm": 10.0, "resegment_range": [-1000, 400]}
EXTRACTION = {"bin_width": 25, "resegment_range": [-1000, 400], "feature_classes": ["shape", "firstorder", "glcm"]}


def _files(tmp_path):
    img, mask = _phantom(noise_sd=15.0)
    ip, mp = tmp_path / "image.nii.gz", tmp_path / "mask.nii.gz"
    sitk.WriteImage(sitk.Cast(sitk.Round(img), sitk.sitkInt16), str(ip))
    sitk.WriteImage(mask, str(mp))
    return ip, mp


def _pipeline_features(tmp_path, ip, mp):
    """The unperturbed scan through the workflow's own per-scan steps."""
    import json

    from radsurv.features import scan as stages
    from radsurv.qc import write_status

    conv = tmp_path / "ref_converted"
    conv.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(ip)), str(conv / CONVERTED_IMAGE_FILE))
    sitk.WriteImage(sitk.ReadImage(str(mp)), str(conv / CONVERTED_MASK_FILE))
    write_status(conv / "status.json", True, "conversion", "", scan_id="P1_S1", patient_id="P1", session=1)
    stages.preprocessing(conv, tmp_path / "ref_pre", PREPROCESSING)
    stages.extraction(tmp_path / "ref_pre", tmp_path / "ref.json", EXTRACTION, PREPROCESSING)
    rec = json.loads((tmp_path / "ref.json").read_text())
    assert rec["ok"], rec["reason"]
    return rec["features"]


def test_perturbed_features_use_the_pipelines_preprocessing_and_extraction(tmp_path, monkeypatch):
    import radsurv.features.extract as features
    import radsurv.features.preprocess as preprocess

    calls = {"preprocess": 0, "extract": 0, "params": []}
    real_pre, real_ext = preprocess.preprocess_files, features.extract

    def spy_pre(*a, **k):
        calls["preprocess"] += 1
        return real_pre(*a, **k)

    def spy_ext(image, mask, params, *a, **k):
        calls["extract"] += 1
        calls["params"].append(params)
        return real_ext(image, mask, params, *a, **k)

    monkeypatch.setattr(preprocess, "preprocess_files", spy_pre)
    monkeypatch.setattr(features, "extract", spy_ext)
    ip, mp = _files(tmp_path)
    s = PerturbationSettings(n=3)
    res = perturbed_features(ip, mp, "P1_S1", 7, s, PREPROCESSING, EXTRACTION)
    assert calls["preprocess"] == 3 and calls["extract"] == 3
    assert all(p == features.pyradiomics_params(EXTRACTION, PREPROCESSING) for p in calls["params"])
    assert res["noise_sd_hu"] == pytest.approx(15.0, rel=0.15)
    recs = res["perturbations"]
    assert [r["ok"] for r in recs] == [True] * 3, [r["reason"] for r in recs]
    vols = [r["features"]["original_shape_VoxelVolume"] for r in recs]
    assert len(set(vols)) == 3  # every copy differs ...
    assert max(vols) / min(vols) < 1.3  # ... but only a little
    monkeypatch.undo()
    ref = _pipeline_features(tmp_path, ip, mp)
    assert set(recs[0]["features"]) == set(ref)  # the same features as the real scan
    again = perturbed_features(ip, mp, "P1_S1", 7, s, PREPROCESSING, EXTRACTION)["perturbations"]
    assert [r["features"] for r in again] == [r["features"] for r in recs]  # deterministic


def test_identity_settings_reproduce_the_unperturbed_features(tmp_path):
    """With every perturbation switched off, the copies equal the pipeline's own features."""
    ip, mp = _files(tmp_path)
    s = PerturbationSettings(n=2, rotation_deg=0, translation_fraction=0, noise=False, volume_change=0,
                             contour_sd_mm=0)
    recs = perturbed_features(ip, mp, "P1_S1", 7, s, PREPROCESSING, EXTRACTION)["perturbations"]
    ref = _pipeline_features(tmp_path, ip, mp)
    for r in recs:
        assert r["ok"], r["reason"]
        for k, v in ref.items():
            assert r["features"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_a_failing_copy_is_recorded_not_raised(tmp_path, monkeypatch):
    import radsurv.features.preprocess as preprocess

    ip, mp = _files(tmp_path)
    real = preprocess.preprocess_files
    state = {"n": 0}

    def flaky(*a, **k):
        state["n"] += 1
        if state["n"] == 2:
            raise CaseError("preprocessing", "the ROI vanished after resampling")
        return real(*a, **k)

    monkeypatch.setattr(preprocess, "preprocess_files", flaky)
    recs = perturbed_features(ip, mp, "P1_S1", 7, PerturbationSettings(n=3), PREPROCESSING,
                              EXTRACTION)["perturbations"]
    assert [r["ok"] for r in recs] == [True, False, True]
    assert "vanished" in recs[1]["reason"]
