"""The demo's grain texture (``demo.texture: grain``; radsurv.synthetic.grain): the planted score sets
the spatial scale of the tumour's structure and nothing of its intensity histogram or range."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from radsurv.synthetic import demo
from radsurv.synthetic.grain import GRAIN_CONTRAST_HU, draw_grain, grain_wavelength_mm
from radsurv.synthetic.render import TUMOUR_BASE_HU, _to_tumour_frame, render_ct
from radsurv.synthetic.truth import simulate_cohort

SEED = 42


def _interior(p, geom) -> np.ndarray:
    """The voxels of the grid at least 3 mm inside the tumour (no partial volume with the lung)."""
    zs, ys, xs = np.meshgrid(geom.z(), geom.y(), geom.x(), indexing="ij")
    u = _to_tumour_frame(p, xs, ys, zs)
    a, b, cc = (v - 3.0 for v in p.tumour_semi_axes_mm)
    return (u[..., 0] / a) ** 2 + (u[..., 1] / b) ** 2 + (u[..., 2] / cc) ** 2 <= 1.0


@pytest.fixture(scope="module")
def rendered():
    cohort = simulate_cohort(30, 0, SEED)
    out = []
    for p in cohort.patients:
        img = render_ct(p, p.scans[0], cohort.geometry, noise=False, seed=SEED, texture="grain")
        out.append((p, img, _interior(p, cohort.geometry)))
    return out


def test_every_tumour_has_the_same_two_phase_histogram(rendered) -> None:
    sds, highs = [], []
    for _p, img, inside in rendered:
        v = np.round(img[inside], 2)  # the edge ramp leaves < 0.01 HU this far inside
        assert set(np.unique(v)) <= {TUMOUR_BASE_HU - GRAIN_CONTRAST_HU, TUMOUR_BASE_HU + GRAIN_CONTRAST_HU}
        highs.append(np.mean(v > TUMOUR_BASE_HU))
        sds.append(v.std())
    # thresholded at the lesion's median: about half of every tumour in each phase, so the SD
    # (and the range) carry nothing of the planted score
    z = [p.z_heterogeneity for p, _, _ in rendered]
    assert 0.3 < np.median(highs) < 0.7
    assert abs(spearmanr(z, sds).statistic) < 0.4
    assert abs(spearmanr(z, highs).statistic) < 0.4


def test_the_score_sets_the_grain(rendered) -> None:
    """The share of neighbouring interior voxels in different phases (interface density) rises with
    the score: fine grain = high score; the volume does not set it."""
    interface, z, vol = [], [], []
    for p, img, inside in rendered:
        img = np.round(img, 2)
        n_pairs = n_differ = 0
        for ax in range(3):
            lo, hi = (tuple(slice(None) if d != ax else sl for d in range(3))
                      for sl in (slice(None, -1), slice(1, None)))
            both = inside[lo] & inside[hi]
            n_pairs += both.sum()
            n_differ += ((img[lo] != img[hi]) & both).sum()
        interface.append(n_differ / n_pairs)
        z.append(p.z_heterogeneity)
        vol.append(p.volume_ml)
    assert spearmanr(z, interface).statistic > 0.85  # 0.94 at this seed
    # the texture's scale is absolute (mm), not relative to the tumour
    assert abs(spearmanr(vol, interface).statistic) < 0.4


def test_grain_is_drawn_from_its_own_stream_and_is_the_same_tissue_in_every_scan() -> None:
    cohort = simulate_cohort(3, 3, SEED)
    p = cohort.patients[1]
    g1, g2 = draw_grain(SEED, p), draw_grain(SEED, p)
    assert np.array_equal(g1.wave_vectors, g2.wave_vectors) and g1.threshold == g2.threshold
    lam = 2 * np.pi / np.linalg.norm(g1.wave_vectors, axis=1)
    assert np.all(np.abs(lam / grain_wavelength_mm(p.z_heterogeneity) - 1.0) <= 0.15 + 1e-9)
    assert not np.array_equal(draw_grain(SEED + 1, p).wave_vectors, g1.wave_vectors)
    # the retest (shifted, re-contoured) sees the same tissue: the texture lives in the tumour's frame
    base, retest = (render_ct(p, s, cohort.geometry, noise=False, seed=SEED, texture="grain") for s in p.scans)
    assert p.scans[1].shift_mm != (0.0, 0.0, 0.0)
    assert not np.array_equal(base, retest)
    with pytest.raises(ValueError, match="texture"):
        render_ct(p, p.scans[0], cohort.geometry, seed=SEED, texture="stripes")


def test_grain_cohort_changes_only_the_tumour_texture(tmp_path) -> None:
    spread = demo.generate_demo_cohort(tmp_path / "spread", 2, 1, seed=SEED, scanners=3)
    grain = demo.generate_demo_cohort(tmp_path / "grain", 2, 1, seed=SEED, scanners=3, texture="grain")
    assert grain["clinical_csv"].read_bytes() == spread["clinical_csv"].read_bytes()
    ts, tg = pd.read_csv(spread["truth_csv"]), pd.read_csv(grain["truth_csv"])
    assert "grain_mm" not in ts.columns
    assert list(tg.columns) == [*ts.columns[:6], "grain_mm", *ts.columns[6:]]
    assert tg["heterogeneity_hu"].eq(GRAIN_CONTRAST_HU).all()
    assert np.allclose(tg["grain_mm"], [grain_wavelength_mm(z) for z in ts["z_heterogeneity"]], atol=1e-4)
    pd.testing.assert_frame_equal(tg.drop(columns=["grain_mm", "heterogeneity_hu"]),
                                  ts.drop(columns=["heterogeneity_hu"]))
    with pytest.raises(ValueError, match="texture"):
        demo.generate_demo_cohort(tmp_path / "bad", 1, 0, seed=SEED, texture="stripes")
    assert "two-phase intensity histogram" in grain["readme"].read_text()
    assert "two-phase" not in spread["readme"].read_text()
