"""modelling.volume_adjust: radiomic features residualised on log volume inside each training fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from radsurv.harmonisation.combat import ComBatHarmoniser, with_harmonisation
from radsurv.modelling.learners import build_pipeline
from radsurv.modelling.metrics import surv_array

VOL = "original_shape_MeshVolume"


def planted(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``size_like`` = 2 log volume + noise in the first 100 patients; the last 20 (held out)
    follow another line (slope -3, offset 40), so a fit that saw them differs from one that did not."""
    rng = np.random.default_rng(seed)
    vol = np.exp(rng.normal(3.0, 0.8, n))
    logv = np.log(vol)
    size_like = 2.0 * logv + rng.normal(0, 0.2, n)
    size_like[100:] = -3.0 * logv[100:] + 40.0
    X = pd.DataFrame({VOL: vol, "size_like": size_like, "texture": rng.normal(0, 1, n),
                      "batch": np.repeat(["A", "B"], n // 2)})
    time = rng.exponential(20 / np.exp(0.8 * (logv - 3)), n)
    return X, time, rng.random(n) < 0.7


def test_volume_adjustment_is_fit_on_training_rows_only_and_applied_unchanged():
    X, time, event = planted()
    y = surv_array(time, event)
    train = np.arange(len(X)) < 100
    settings = {"n_screen": 3, "corr_threshold": 0.99, "volume_adjust": True}
    pipe = build_pipeline(["rad"], [VOL, "size_like", "texture"], VOL, [], "cox", settings, seed=0)
    cols = pipe.named_steps["features"].transformers[0][2]
    assert cols[0] == VOL and cols.count(VOL) == 1  # read by the adjustment, not a candidate
    pipe.fit(X[train], y[train])
    rad = pipe.named_steps["features"].named_transformers_["rad"]
    adj = rad.named_steps["adjust"]
    assert adj.features_in_ == ["size_like", "texture"]  # the volume itself is no radiomics candidate
    logv = np.log(X[VOL].to_numpy()).reshape(-1, 1)
    on_train = LinearRegression().fit(logv[train], X.loc[train, "size_like"])
    on_all = LinearRegression().fit(logv, X["size_like"])
    assert adj.slope_["size_like"] == pytest.approx(on_train.coef_[0], rel=1e-9)
    assert adj.intercept_["size_like"] == pytest.approx(on_train.intercept_, rel=1e-9)
    assert abs(on_all.coef_[0] - on_train.coef_[0]) > 0.5  # the planted held-out rows would have moved it
    # held-out patients: residuals with the training coefficients, unchanged by what they contain
    out = adj.transform(X.loc[~train, [VOL, "size_like", "texture"]])
    expect = X.loc[~train, "size_like"] - (on_train.intercept_ + on_train.coef_[0] * logv[~train, 0])
    assert np.allclose(out["size_like"], expect)
    assert np.isfinite(pipe.predict(X[~train])).all()
    # the training residuals carry no volume
    res = adj.transform(X.loc[train, [VOL, "size_like", "texture"]])
    assert abs(np.corrcoef(res["size_like"], logv[train, 0])[0, 1]) < 1e-8


def test_volume_adjustment_off_by_default_and_needs_a_volume_feature():
    base = build_pipeline(["rad"], [VOL, "size_like"], VOL, [], "cox", {}, seed=0)
    rad, cols = base.named_steps["features"].transformers[0][1:]
    assert "adjust" not in rad.named_steps and cols == [VOL, "size_like"]
    with pytest.raises(ValueError, match="volume_adjust"):
        build_pipeline(["rad"], ["size_like"], None, [], "cox", {"volume_adjust": True}, seed=0)


def test_volume_adjustment_after_combat_keeps_the_volume_unharmonised():
    X, time, event = planted()
    y = surv_array(time, event)
    pipe = build_pipeline(["rad"], [VOL, "size_like", "texture"], VOL, [], "cox", {"volume_adjust": True}, seed=0)
    pipe = with_harmonisation(pipe, ComBatHarmoniser(batch_column="batch"))
    pipe.fit(X, y)
    rad = pipe.named_steps["features"].named_transformers_["rad"]
    assert [n for n, _ in rad.steps][:3] == ["harmonise", "filter", "adjust"]
    assert VOL in rad.named_steps["harmonise"].skip_features
    assert rad.named_steps["harmonise"].unharmonised_reasons_[VOL].startswith("excluded")
