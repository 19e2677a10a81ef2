"""radsurv.modelling.classification.metrics: equal to scikit-learn / R pROC on fixed predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, roc_auc_score

from radsurv.modelling.classification import metrics as cm

DATA = Path(__file__).resolve().parent / "data" / "delong_proc_synthetic.csv"


@pytest.fixture(scope="module")
def named_case() -> pd.DataFrame:
    """Named case radsurv-delong-1 (synthetic; reference values from R pROC, see the file's header)."""
    return pd.read_csv(DATA, comment="#")


@pytest.fixture
def fixed():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    p = expit(1.2 * (y - 0.5) + rng.normal(0, 1, 300))
    return y, p


def test_auc_and_brier_equal_sklearn(fixed):
    y, p = fixed
    assert cm.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-15)
    assert cm.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)


def test_calibration_slope_equals_sklearn_and_intercept_is_the_offset_mle(fixed):
    y, p = fixed
    a, b = cm.calibration_intercept_slope(y, p)
    ref = LogisticRegression(C=np.inf, max_iter=1000).fit(logit(p)[:, None], y)
    assert b == pytest.approx(ref.coef_[0, 0], rel=1e-4)
    # intercept: score equation of the offset model sum(y - expit(a + lp)) = 0
    assert np.sum(y - expit(a + logit(p))) == pytest.approx(0.0, abs=1e-6)


def test_calibration_recovers_a_known_miscalibration():
    rng = np.random.default_rng(3)
    lp = rng.normal(0, 1.5, 20000)
    y = rng.binomial(1, expit(lp))
    a, b = cm.calibration_intercept_slope(y, expit(lp))
    assert abs(a) < 0.05 and abs(b - 1) < 0.05  # well calibrated
    a2, b2 = cm.calibration_intercept_slope(y, expit(2 * lp))  # over-confident predictions
    assert b2 == pytest.approx(0.5, abs=0.05)
    a3, _ = cm.calibration_intercept_slope(y, expit(lp + 1))  # risks over-estimated
    assert a3 == pytest.approx(-1.0, abs=0.07)


@pytest.mark.parametrize("m1,m2,z,p", [
    ("grade", "marker_a", 2.5409910742822, 0.0110538741396145),
    ("grade", "marker_b", 1.99071482779835, 0.0465122476263979),
    ("marker_b", "marker_a", 0.247981601940539, 0.804148641808168),
])
def test_delong_equals_proc_roc_test_on_named_case(named_case, m1, m2, z, p):
    d = named_case
    r = cm.delong_test(d["outcome"], d[m1], d[m2])
    assert r.z == pytest.approx(z, rel=1e-10)
    assert r.p_value == pytest.approx(p, rel=1e-9)
    assert r.auc1 == pytest.approx(roc_auc_score(d["outcome"], d[m1]), abs=1e-12)


@pytest.mark.parametrize("marker,var", [("grade", 0.00175579455420145), ("marker_a", 0.00264988224713133),
                                        ("marker_b", 0.00252910870470637)])
def test_delong_variance_equals_proc(named_case, marker, var):
    _, v = cm.delong_variance(named_case["outcome"], named_case[marker])
    assert v == pytest.approx(var, rel=1e-10)


def test_delong_identical_scores_gives_p_one(named_case):
    r = cm.delong_test(named_case["outcome"], named_case["grade"], named_case["grade"])
    assert r.z == 0 and r.p_value == 1


def test_paired_bootstrap_is_paired_and_deterministic(fixed):
    y, p = fixed
    rng = np.random.default_rng(1)
    q = p + rng.normal(0, 0.3, len(p))
    t1 = cm.paired_bootstrap_auc(y, {"volume": q, "radiomics": p}, n_boot=300, seed=5)
    t2 = cm.paired_bootstrap_auc(y, {"volume": q, "radiomics": p}, n_boot=300, seed=5)
    pd.testing.assert_frame_equal(t1, t2)
    r = t1.set_index("model")
    assert r.loc["radiomics", "auc"] == pytest.approx(roc_auc_score(y, p))
    assert r.loc["radiomics", "ci_low"] < r.loc["radiomics", "auc"] < r.loc["radiomics", "ci_high"]
    assert r.loc["volume", "diff_vs_volume"] == 0 and r.loc["volume", "diff_ci_low"] == 0
    d = r.loc["radiomics"]
    assert d["diff_vs_volume"] == pytest.approx(d["auc"] - r.loc["volume", "auc"])
    assert d["diff_ci_low"] < d["diff_vs_volume"] < d["diff_ci_high"]
    # pairing: a model compared with a copy of itself has a zero-width difference interval
    t3 = cm.paired_bootstrap_auc(y, {"volume": p, "same": p.copy()}, n_boot=50, seed=2).set_index("model")
    assert t3.loc["same", "diff_ci_low"] == t3.loc["same", "diff_ci_high"] == 0


def test_paired_bootstrap_repeats_average():
    y = np.array([0, 0, 1, 1, 0, 1])
    two = np.array([[0.1, 0.2, 0.8, 0.9, 0.3, 0.7], [0.9, 0.2, 0.8, 0.1, 0.3, 0.7]])
    t = cm.paired_bootstrap_auc(y, {"m": two}, reference=None, n_boot=20)
    assert t.loc[0, "auc"] == pytest.approx(np.mean([roc_auc_score(y, r) for r in two]))


def test_youden_threshold_and_threshold_metrics():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    t = cm.youden_threshold(y, p)
    assert t == pytest.approx(0.6) or t == pytest.approx(0.4)
    m = cm.threshold_metrics(y, p, 0.65)
    assert m["sensitivity"] == 0.75 and m["specificity"] == 1.0
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p >= 0.65))
    per_patient = cm.threshold_metrics(y, p, np.full(8, 0.65))
    assert per_patient == m


def test_decision_curve_formula():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2])
    d = cm.decision_curve(y, p, [0.5])
    # t=0.5: TP=1 (0.9), FP=1 (0.6) -> NB = 1/5 - 1/5 * 1 = 0; treat-all = 0.4 - 0.6 = -0.2
    assert d.loc[0, "net_benefit"] == pytest.approx(0.0)
    assert d.loc[0, "treat_all"] == pytest.approx(-0.2)
    assert d.loc[0, "treat_none"] == 0
    with pytest.raises(ValueError, match="strictly between"):
        cm.decision_curve(y, p, [0.0])


def test_multiclass_macro_auc_equals_sklearn():
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 200)
    P = rng.dirichlet([1, 1, 1], 200)
    P[y == "a", 0] += 0.5
    P /= P.sum(axis=1, keepdims=True)
    out = cm.multiclass_auc(y, P, ["a", "b", "c"])
    assert out["macro_auc"] == pytest.approx(roc_auc_score(y, P, multi_class="ovr", average="macro"))
    assert out["auc_a"] > out["auc_b"]


def test_one_class_is_a_clear_error():
    with pytest.raises(ValueError, match="only one class"):
        cm.roc_auc([1, 1, 1], [0.2, 0.3, 0.4])


def test_delong_equals_the_published_asah_example():
    """pROC's published worked example (Robin et al. 2011): s100b vs wfns on aSAH,
    DeLong Z = -2.209, p = 0.02718 (full-precision values in the data file's header)."""
    d = pd.read_csv(DATA.parent / "delong_proc_asah.csv", comment="#")
    assert len(d) == 113 and d["outcome"].sum() == 41
    r = cm.delong_test(d["outcome"], d["s100b"], d["wfns"])
    assert r.auc1 == pytest.approx(0.731368563685637, abs=1e-12)
    assert r.auc2 == pytest.approx(0.823678861788618, abs=1e-12)
    assert r.z == pytest.approx(-2.20898359144091, rel=1e-10)
    assert r.p_value == pytest.approx(0.0271757822291882, rel=1e-9)
    assert round(r.z, 3) == -2.209 and round(r.p_value, 5) == 0.02718  # as printed in the paper
