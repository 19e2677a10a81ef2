"""radsurv.modelling.classification.radiogenomics: planted associations, BH FDR, volume adjustment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from radsurv.modelling.classification.radiogenomics import (
    column_type,
    plot_radiogenomics,
    radiogenomics_screen,
    residualise_on_volume,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(4)
    n = 150
    vol = np.exp(rng.normal(3, 0.7, n))
    hpv = rng.integers(0, 2, n)
    grade = rng.choice(["G1", "G2", "G3"], n)
    ki67 = rng.normal(20, 5, n)
    F = pd.DataFrame(rng.normal(size=(n, 40)), columns=[f"noise{j}" for j in range(40)],
                     index=[f"p{i}" for i in range(n)])
    F["texture_hpv"] = rng.normal(size=n) + 1.2 * hpv
    F["texture_grade"] = rng.normal(size=n) + 1.5 * (grade == "G3")
    F["texture_ki67"] = rng.normal(size=n) + 0.3 * (ki67 - 20)
    F["size_like"] = np.log(vol) + rng.normal(0, 0.1, n)  # restates tumour size
    F["volume"] = vol
    bio = pd.DataFrame({"hpv": np.where(hpv == 1, "pos", "neg"), "grade": grade, "ki67": ki67,
                        # a biology that is tied to volume only
                        "bulky": np.where(np.log(vol) + rng.normal(0, 0.3, n) > 3, "yes", "no")},
                       index=F.index)
    bio.iloc[0, 0] = None  # missing value: that patient is left out of 'hpv' only
    return F, bio


def test_column_types(data):
    _, bio = data
    assert [column_type(bio[c]) for c in bio] == ["binary", "categorical", "continuous", "binary"]
    with pytest.raises(ValueError, match="fewer than two"):
        column_type(pd.Series([1, 1, 1], name="x"))


def test_planted_associations_found_noise_not(data):
    F, bio = data
    t = radiogenomics_screen(F, bio, volume_feature="volume", adjust_volume=True)
    top = t.groupby("biology").head(1).set_index("biology")["feature"]
    assert top["hpv"] == "texture_hpv" and top["grade"] == "texture_grade" and top["ki67"] == "texture_ki67"
    sig = t[(t["q"] < 0.05) & (t["biology"] != "bulky")]
    assert {"texture_hpv", "texture_grade", "texture_ki67"} <= set(sig["feature"])
    assert sig["feature"].str.startswith("noise").sum() <= 1  # FDR 5%: at most a stray false discovery
    assert t.set_index(["biology", "feature"]).loc[("hpv", "texture_hpv"), "n"] == len(F) - 1
    # BH equals scipy's on the column's p-values
    h = t[t["biology"] == "hpv"]
    np.testing.assert_allclose(h["q"], stats.false_discovery_control(h["p"], method="bh"))
    # effect of the binary test is the AUC for 'pos'
    r = t.set_index(["biology", "feature"]).loc[("hpv", "texture_hpv")]
    assert r["effect"] > 0.7 and r["effect_name"] == "AUC for pos"


def test_volume_adjustment_removes_size_restatements(data):
    F, bio = data
    raw = radiogenomics_screen(F, bio[["bulky"]], volume_feature="volume", adjust_volume=False).set_index("feature")
    adj = radiogenomics_screen(F, bio[["bulky"]], volume_feature="volume", adjust_volume=True).set_index("feature")
    assert raw.loc["size_like", "q"] < 1e-6
    assert adj.loc["size_like", "q"] > 0.05
    assert adj.loc["size_like", "volume_adjusted"] is not False
    assert adj.loc["volume", "volume_adjusted"] == False  # noqa: E712 - reported unadjusted


def test_residualise_is_orthogonal_to_log_volume(data):
    F, _ = data
    R = residualise_on_volume(F[["size_like", "texture_hpv"]], F["volume"])
    for c in R:
        assert abs(np.corrcoef(R[c], np.log(F["volume"]))[0, 1]) < 1e-10


def test_errors_name_the_problem(data):
    F, bio = data
    with pytest.raises(ValueError, match="needs the tumour volume"):
        radiogenomics_screen(F, bio, adjust_volume=True)
    with pytest.raises(ValueError, match="patient ids"):
        radiogenomics_screen(F.set_axis([f"x{i}" for i in range(len(F))]), bio, adjust_volume=False)


def test_plot_is_written(tmp_path, data):
    F, bio = data
    t = radiogenomics_screen(F, bio, volume_feature="volume")
    out = plot_radiogenomics(t, tmp_path / "rg.png")
    assert out.stat().st_size > 10_000
