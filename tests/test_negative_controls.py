"""radsurv.robustness.controls: READII negative-control images on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from radsurv.robustness.controls import (
    CONTROLS,
    body_mask,
    control_image_files,
    intensity_control,
    moved_roi,
    shuffled_roi,
)


def phantom() -> tuple[np.ndarray, np.ndarray]:
    """A 20x40x40 'CT': air -1000, a body disc of 40 HU with a gradient, a textured tumour."""
    z, y, x = np.mgrid[0:20, 0:40, 0:40]
    img = np.full((20, 40, 40), -1000.0)
    body = (y - 20) ** 2 + (x - 20) ** 2 < 18 ** 2
    img[body] = 40.0 + x[body]
    tumour = ((z - 10) ** 2 + (y - 20) ** 2 + (x - 14) ** 2) < 16
    img[tumour] = 100.0 + 10.0 * np.sin(x[tumour]) + z[tumour]
    return img, tumour


def test_shuffled_keeps_shape_and_values_and_permutes_inside_only():
    img, roi = phantom()
    out = shuffled_roi(img, roi, seed=3)
    assert np.array_equal(out[~roi], img[~roi])  # outside untouched
    assert np.array_equal(np.sort(out[roi]), np.sort(img[roi]))  # same values (first order kept)
    assert not np.array_equal(out[roi], img[roi])  # but moved
    assert np.array_equal(out, shuffled_roi(img, roi, seed=3))  # deterministic by seed
    assert not np.array_equal(out, shuffled_roi(img, roi, seed=4))
    with pytest.raises(ValueError, match="empty"):
        shuffled_roi(img, np.zeros_like(roi), 0)


def test_moved_roi_is_inside_the_body_away_from_the_tumour_same_shape():
    img, roi = phantom()
    body = body_mask(img)
    moved = moved_roi(roi, body, seed=5)
    assert moved.sum() == roi.sum()
    assert not (moved & roi).any() and body[moved].all()
    # the same shape: the moved mask is a translate of the ROI
    a, b = np.argwhere(roi), np.argwhere(moved)
    assert np.array_equal(b - b.min(axis=0), a - a.min(axis=0))
    assert np.array_equal(moved, moved_roi(roi, body, seed=5))
    assert not np.array_equal(moved, moved_roi(roi, body, seed=6))
    # no room (a body just the tumour): a clear error
    with pytest.raises(ValueError, match="no place inside the body"):
        moved_roi(roi, roi, seed=0, attempts=50)


def test_control_image_files(tmp_path):
    import SimpleITK as sitk

    img, roi = phantom()
    si = sitk.GetImageFromArray(img.astype(np.int16))
    si.SetSpacing((1.0, 1.0, 2.0))
    sm = sitk.GetImageFromArray(roi.astype(np.uint8))
    sm.CopyInformation(si)
    sitk.WriteImage(si, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(sm, str(tmp_path / "mask.nrrd"))
    for control in CONTROLS:
        control_image_files(tmp_path / "image.nrrd", tmp_path / "mask.nrrd", control, 1,
                            tmp_path / control / "image.nrrd", tmp_path / control / "mask.nrrd")
        oi = sitk.ReadImage(str(tmp_path / control / "image.nrrd"))
        om = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / control / "mask.nrrd"))) > 0
        assert oi.GetSpacing() == (1.0, 1.0, 2.0) and om.sum() == roi.sum()
    with pytest.raises(ValueError, match="unknown negative control"):
        control_image_files(tmp_path / "image.nrrd", tmp_path / "mask.nrrd", "flipped", 1, tmp_path / "a.nrrd",
                            tmp_path / "b.nrrd")


def test_negative_controls_config_and_report_section(tmp_path):
    import json

    import pandas as pd

    from radsurv.report.harmonisation import multicentre_sections
    from radsurv.workflow import rules as wf
    from radsurv.workflow.controls import control_seed

    assert wf.negative_controls({}) == []
    assert wf.negative_controls({"harmonisation": {"negative_controls": ["shuffled"]}}) == ["shuffled"]
    # a user's feature table has no images to build controls from
    assert wf.negative_controls({"harmonisation": {"negative_controls": ["shuffled"]},
                                 "modelling": {"features_table": "f.csv"}}) == []
    assert control_seed(42, "shuffled", "RSD-001_S1") == control_seed(42, "shuffled", "RSD-001_S1")
    assert control_seed(42, "shuffled", "RSD-001_S1") != control_seed(42, "shuffled", "RSD-002_S1")
    # each control's metrics.json carries its paired difference to the volume-only model (by_model's shape)
    delta = {"estimate": 0.002, "ci_low": -0.05, "ci_high": 0.06}
    (tmp_path / "m.json").write_text(json.dumps({"c_index_test": 0.612, "c_index_test_ci_low": 0.55,
                                                 "c_index_test_ci_high": 0.68, "delta_harrell_c_vs_volume": delta}))
    # a control study without a volume model has no difference: an empty cell
    (tmp_path / "nv.json").write_text(json.dumps({"c_index_test": 0.598, "c_index_test_ci_low": 0.51,
                                                  "c_index_test_ci_high": 0.66, "delta_harrell_c_vs_volume": None}))
    metrics = {"by_model": {"radiomics": {"harrell_c": {"estimate": 0.70, "ci_low": 0.64, "ci_high": 0.76},
                                          "delta_harrell_c_vs_volume": {"estimate": 0.09, "ci_low": 0.01,
                                                                        "ci_high": 0.17}},
                            "volume": {"harrell_c": {"estimate": 0.61, "ci_low": 0.54, "ci_high": 0.67}}}}
    html = "".join(multicentre_sections({"control_metrics_shuffled": str(tmp_path / "m.json"),
                                         "control_metrics_sampled": str(tmp_path / "nv.json")}, metrics))
    assert "Negative controls" in html and "Multi-centre harmonisation" not in html
    for text in ("0.700", "0.640-0.760", "0.610", "0.612", "0.550-0.680", "permuted inside the ROI",
                 "minus volume-only C (paired 95% CI)", "+0.090 (0.010 to 0.170)", "+0.002 (-0.050 to 0.060)"):
        assert text in html, text
    sampled_row = html.split("control sampled:", 1)[1].split("</tr>", 1)[0]
    assert "0.598" in sampled_row and sampled_row.endswith("<td></td>"), sampled_row
    assert "Fell to the volume-only level (the paired CI of the difference to volume reaches 0): shuffled " \
           "(+0.002, -0.050 to +0.060)." in html
    assert "Kept an advantage" not in html and "At or above the real model" not in html
    assert multicentre_sections({}, metrics) == []
    # the volume association table (Spearman, BH q) and the volume adjustment join the section
    pd.DataFrame({"feature": ["original_shape_MeshVolume", "original_glszm_ZoneEntropy", "original_firstorder_Mean"],
                  "spearman_rho": [1.0, 0.81, 0.05], "abs_rho": [1.0, 0.81, 0.05], "p": [np.nan, 1e-9, 0.7],
                  "q_bh": [np.nan, 2e-9, 0.7], "volume_associated": [False, True, False],
                  "volume_surrogate": [True, False, False]}).to_csv(tmp_path / "vc.tsv", sep="\t", index=False)
    html = "".join(multicentre_sections({"volume_correlation": str(tmp_path / "vc.tsv")}, metrics,
                                        {"modelling": {"volume_adjust": True}}))
    for text in ("Confound controls", "1 of 2 features are associated with tumour volume", "ZoneEntropy", "0.810",
                 "2e-09", "volume-adjusted features", "No negative control was run", "0.610"):
        assert text in html, text


def test_control_verdicts_name_what_fell_what_kept_an_advantage_and_what_matched_the_real_model():
    """The multi-centre demo's seed-42 numbers with `demo.texture: spread` (README): the real model
    +0.013 over volume with a CI reaching below 0; `randomized` +0.053 (CI above 0) and above the
    real model's C."""
    from radsurv.report.harmonisation import control_verdicts

    def d(e: float, lo: float, hi: float) -> dict:
        return {"estimate": e, "ci_low": lo, "ci_high": hi}

    out = control_verdicts(0.672, d(0.013, -0.024, 0.046), {
        "randomized": (0.712, d(0.053, 0.012, 0.097)), "shuffled": (0.671, d(0.012, -0.008, 0.031)),
        "moved_roi": (0.650, d(-0.008, -0.023, 0.004)), "no_volume_model": (0.6, None)})
    assert out[0].startswith("The real radiomics model itself cannot be told from tumour volume (+0.013, -0.024")
    assert out[1] == ("Fell to the volume-only level (the paired CI of the difference to volume reaches 0): "
                      "moved_roi (-0.008, -0.023 to +0.004), shuffled (+0.012, -0.008 to +0.031).")
    assert out[2].startswith("Kept an advantage over volume (CI above 0): randomized (+0.053, +0.012 to +0.097).")
    assert out[3].startswith("At or above the real model's C: randomized (0.712 against 0.672).")
    assert len(out) == 4
    # a real model clearly above volume, every control fallen: one sentence, no caveat
    assert control_verdicts(0.70, d(0.09, 0.01, 0.17), {"shuffled": (0.61, d(0.0, -0.05, 0.06))}) == [
        "Fell to the volume-only level (the paired CI of the difference to volume reaches 0): "
        "shuffled (+0.000, -0.050 to +0.060)."]


@pytest.mark.parametrize("control", ["randomized", "sampled", "shuffled_image", "randomized_image",
                                     "sampled_image"])
def test_intensity_controls_keep_shape_change_values_as_defined_and_are_deterministic(control):
    img, roi = phantom()
    img = np.round(img)  # HU: whole numbers
    out = intensity_control(img, roi, control, seed=7)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert np.array_equal(out, intensity_control(img, roi, control, seed=7))
    assert not np.array_equal(out, intensity_control(img, roi, control, seed=8))
    assert not np.array_equal(out[roi], img[roi])
    region = roi if not control.endswith("_image") else np.ones_like(roi)
    src = img[region]
    if not control.endswith("_image"):
        assert np.array_equal(out[~roi], img[~roi])  # outside the ROI untouched
    new = out[region]
    if control.startswith("randomized"):
        # uniform whole numbers in the region's [min, max]: the range kept, the distribution not
        assert new.min() >= src.min() and new.max() <= src.max()
        assert np.array_equal(new, np.round(new))
        span = src.max() - src.min()
        assert abs(new.mean() - (src.min() + span / 2)) < 0.1 * span  # centred on the range's middle
    elif control.startswith("sampled"):
        # drawn with replacement from the region's own values: no new value, some repeated
        assert np.isin(new, src).all()
        assert len(np.unique(new)) < len(np.unique(src)) or not np.array_equal(np.sort(new), np.sort(src))
    else:
        assert np.array_equal(np.sort(new), np.sort(src))  # a permutation of the whole image


def test_randomized_destroys_the_roi_first_order_statistics_that_shuffling_keeps():
    """The demo plants its biology in the tumour's intensity SD: shuffling keeps it, randomizing
    inside the ROI's range replaces it by that of a uniform distribution (the same for every tumour
    of the same range)."""
    img, roi = phantom()
    shuf = intensity_control(img, roi, "shuffled", 1)[roi]
    rand = intensity_control(img, roi, "randomized", 1)[roi]
    assert np.isclose(shuf.std(), img[roi].std())
    span = img[roi].max() - img[roi].min()
    assert abs(rand.std() - span / np.sqrt(12)) < 0.15 * span / np.sqrt(12)


def planted_range_image() -> tuple[np.ndarray, np.ndarray]:
    """A 12x12x12 whole-number image whose ROI (a 6x6x6 cube) holds values in [10, 20] only,
    both ends present, while the rest of the image spans [-1000, 1000]: the ROI's range and the
    whole image's range differ."""
    rng = np.random.default_rng(0)
    img = rng.integers(-1000, 1000, endpoint=True, size=(12, 12, 12)).astype(np.int16)
    img[0, 0, 0], img[-1, -1, -1] = -1000, 1000
    roi = np.zeros(img.shape, dtype=bool)
    roi[3:9, 3:9, 3:9] = True
    img[roi] = rng.integers(10, 20, endpoint=True, size=int(roi.sum()))
    img[3, 3, 3], img[8, 8, 8] = 10, 20
    return img, roi


def test_randomized_draws_in_the_roi_range_and_randomized_image_in_the_image_range():
    """READII's randomized ROI control draws from the ROI's own [min, max] (inclusive), not the
    whole image's: ``negative_controls_refactor`` applies ``RandomizedControl.transform`` (min/max
    of the array it is given) to ``image_array[np.nonzero(region_mask)]``, the ROI's voxels; the
    older ``makeRandomRoi`` took min/max over the ROI's voxels. The ``_image`` variant (READII
    ``full``) uses the whole image's range."""
    img, roi = planted_range_image()
    out = intensity_control(img, roi, "randomized", seed=5)
    assert np.array_equal(out[~roi], img[~roi])
    assert out[roi].min() == 10 and out[roi].max() == 20  # the ROI's range, both ends reachable
    assert len(np.unique(out[roi])) == 11 and not np.array_equal(out[roi], img[roi])
    full = intensity_control(img, roi, "randomized_image", seed=5)
    assert full.min() >= -1000 and full.max() <= 1000
    assert full[roi].min() < -500 and full[roi].max() > 500  # the ROI now holds the image's range


def _readii_region_control(image: np.ndarray, mask: np.ndarray, control: str, seed: int) -> np.ndarray:
    """READII's own code path, transcribed (bhklab/readii, src/readii/negative_controls_refactor/
    abstract_classes.py ``NegativeControlStrategy.__call__`` and negative_controls.py
    ``ShuffledControl`` / ``RandomizedControl`` / ``SampledControl.transform``; region ``roi``:
    ``np.where(mask > 0, 1, 0)``, region ``full``: ``np.ones_like(mask)``)."""
    name, _, region = control.partition("_")
    arr = np.array(image, copy=True)
    region_mask = np.ones_like(mask) if region == "image" else np.where(mask > 0, 1, 0)
    idx = np.nonzero(region_mask)
    values = arr[idx]
    rng = np.random.default_rng(seed=seed)
    if name == "shuffled":
        flat = values.flatten()
        rng.shuffle(flat)
        new = flat
    elif name == "randomized":
        new = rng.integers(low=np.min(values), high=np.max(values), endpoint=True, size=values.shape)
    else:
        new = rng.choice(values.flatten(), size=len(values), replace=True)
    arr[idx] = new
    return arr


@pytest.mark.parametrize("control", sorted(set(CONTROLS) - {"moved_roi"}))
def test_intensity_controls_equal_readii_on_whole_number_images(control):
    """On a whole-number (HU) image every intensity control is READII's, voxel for voxel, for
    the same seed (the same numpy Generator calls on the same voxels in the same order)."""
    img, roi = planted_range_image()
    assert np.array_equal(intensity_control(img, roi, control, seed=9), _readii_region_control(img, roi, control, 9))
    ct, tumour = phantom()
    ct = np.round(ct)
    assert np.array_equal(intensity_control(ct, tumour, control, seed=3),
                          _readii_region_control(ct, tumour, control, 3))


def test_randomized_float_images_get_continuous_values():
    img, roi = phantom()
    img = img + 0.25  # not whole numbers (e.g. PET SUV)
    out = intensity_control(img, roi, "randomized", 2)[roi]
    assert not np.array_equal(out, np.round(out)) and out.min() >= img[roi].min() and out.max() <= img[roi].max()
    with pytest.raises(ValueError, match="unknown intensity control"):
        intensity_control(img, roi, "moved_roi", 0)


def test_schema_offers_every_control_and_the_rules_match_them():
    import re

    from radsurv.schema import CONFIG_SCHEMA, load_schema
    from radsurv.workflow import rules as wf

    enum = load_schema(CONFIG_SCHEMA)["properties"]["harmonisation"]["properties"]["negative_controls"]["items"]["enum"]
    assert sorted(enum) == sorted(CONTROLS)
    for c in CONTROLS:
        assert re.fullmatch(wf.NEGATIVE_CONTROLS_PATTERN, c)
    assert not re.fullmatch(wf.NEGATIVE_CONTROLS_PATTERN, "shuffled/x")


def test_control_scan_moved_roi_uses_the_whole_scan_and_intensity_controls_the_converted_one(tmp_path):
    """The converted CT is the ROI's neighbourhood; moved_roi converts the whole scan again from
    the manifest and moves the ROI into its body; randomized works on the converted scan. Both
    give a feature record with the real ROI's volume."""
    import json

    import SimpleITK as sitk
    from conftest import one_demo_scan

    from radsurv.features import scan
    from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE

    manifest = one_demo_scan(tmp_path, seed=4)
    pre = {"spacing_mm": [2.0, 2.0, 2.0], "crop_margin_mm": 10.0, "resegment_range": [-1000, 400]}
    ext = {"bin_width": 25, "feature_classes": ["shape", "firstorder"]}
    scan.run_scan(manifest, tmp_path / "converted", tmp_path / "preprocessed", tmp_path / "real.json", None,
                  "^GTV", "first", pre, ext)
    real = json.loads((tmp_path / "real.json").read_text())["features"]
    cropped = sitk.ReadImage(str(tmp_path / "converted" / CONVERTED_IMAGE_FILE))
    out = {}
    for control in ("moved_roi", "randomized"):
        d = tmp_path / control
        scan.control_scan(tmp_path / "converted", control, 11, d / "converted", d / "preprocessed", d / "f.json",
                          pre, ext, manifest=manifest, roi_pattern="^GTV", roi_policy="first")
        rec = json.loads((d / "f.json").read_text())
        assert rec["ok"] is True, rec
        out[control] = rec["features"]
        img = sitk.ReadImage(str(d / "converted" / CONVERTED_IMAGE_FILE))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "converted" / CONVERTED_MASK_FILE))) > 0
        if control == "moved_roi":
            assert all(w > c for w, c in zip(img.GetSize()[:2], cropped.GetSize()[:2]))  # the whole scan
            assert body_mask(sitk.GetArrayFromImage(img))[mask].all()
        else:
            assert img.GetSize() == cropped.GetSize()
    for feats in out.values():
        assert feats["original_shape_VoxelVolume"] == pytest.approx(real["original_shape_VoxelVolume"], rel=0.05)
        assert feats["original_firstorder_Mean"] != pytest.approx(real["original_firstorder_Mean"], abs=1.0)
