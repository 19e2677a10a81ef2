"""Tests of radsurv.robustness.icc.

What is compared to what (honestly):

* ``radsurv.robustness.icc.icc`` (vectorised numpy) vs ``pingouin.intraclass_corr`` 0.7.0:
  point estimates, F, df, p AND CI bounds to 1e-6. pingouin rounds its
  ``CI95`` column to 2 decimals by default (``pingouin.options
  ['round.column.CI95'] = 2``); the fixture below switches that option off for
  the comparison (restored afterwards), so the *unrounded* pingouin CIs are
  compared. One test also checks against pingouin's default, rounded output
  (to 0.005 + 1e-12).
* ``icc`` vs ``_ref_icc`` below, an independent scalar implementation written
  from the paper formulas with explicit Python sums (no numpy reductions) and,
  for ICC(2,k), McGraw & Wong's direct ICC(A,k) interval formula rather than
  the Spearman-Brown transform the module uses: to 1e-9. Both use
  ``scipy.stats.f`` for the F quantiles, so scipy itself is not checked.
* Shrout & Fleiss (1979) Table 2 data vs their published Table 4 values (2 d.p.).
* Lin's CCC vs values computed by hand (fractions in the comments).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from radsurv.robustness.concordance import lins_ccc
from radsurv.robustness.icc import FORMS, ICCResult, canonical_form, icc, robust_mask
from radsurv.robustness.icc_tables import icc_frame, icc_long

DATA = Path(__file__).resolve().parent / "data"

# pingouin's labels -> Shrout & Fleiss names
PG_TO_SF = {
    "ICC(1,1)": "ICC(1,1)",
    "ICC(A,1)": "ICC(2,1)",
    "ICC(C,1)": "ICC(3,1)",
    "ICC(1,k)": "ICC(1,k)",
    "ICC(A,k)": "ICC(2,k)",
    "ICC(C,k)": "ICC(3,k)",
}


# --------------------------------------------------------------------------- reference
def _ref_icc(x: list[list[float]] | np.ndarray, form: str, alpha: float = 0.05) -> dict[str, float]:
    """Scalar ICC of one feature, (n subjects x k raters), from the paper formulas.

    Explicit sums (Shrout & Fleiss 1979 Table 1), SS_total - SS_rows - SS_cols for
    the residual; CIs from Shrout & Fleiss (1979) / McGraw & Wong (1996) Table 7.
    """
    rows = [[float(v) for v in r] for r in x]
    n, k = len(rows), len(rows[0])
    total = 0.0
    for r in rows:
        for v in r:
            total += v
    grand = total / (n * k)
    row_m = [sum(r) / k for r in rows]
    col_m = [sum(rows[i][j] for i in range(n)) / n for j in range(k)]
    sst = sum((rows[i][j] - grand) ** 2 for i in range(n) for j in range(k))
    ssr = k * sum((m - grand) ** 2 for m in row_m)
    ssc = n * sum((m - grand) ** 2 for m in col_m)
    sse = sst - ssr - ssc
    ssw = sst - ssr
    msr, msc = ssr / (n - 1), ssc / (k - 1)
    mse, msw = sse / ((n - 1) * (k - 1)), ssw / (n * (k - 1))
    q = 1 - alpha / 2
    fq = stats.f.ppf
    if form in ("ICC(1,1)", "ICC(1,k)"):
        fv, d1, d2 = msr / msw, n - 1, n * (k - 1)
    else:
        fv, d1, d2 = msr / mse, n - 1, (n - 1) * (k - 1)
    fl, fu = fv / fq(q, d1, d2), fv * fq(q, d2, d1)
    if form == "ICC(1,1)":
        est = (msr - msw) / (msr + (k - 1) * msw)
        lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    elif form == "ICC(3,1)":
        est = (msr - mse) / (msr + (k - 1) * mse)
        lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    elif form == "ICC(1,k)":
        est = (msr - msw) / msr
        lo, hi = 1 - 1 / fl, 1 - 1 / fu
    elif form == "ICC(3,k)":
        est = (msr - mse) / msr
        lo, hi = 1 - 1 / fl, 1 - 1 / fu
    elif form in ("ICC(2,1)", "ICC(2,k)"):
        r1 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        fj = msc / mse
        # Satterthwaite df (Shrout & Fleiss 1979, Case 2)
        v = ((n - 1) * (k - 1) * (k * r1 * fj + n * (1 + (k - 1) * r1) - k * r1) ** 2) / (
            (n - 1) * k**2 * r1**2 * fj**2 + (n * (1 + (k - 1) * r1) - k * r1) ** 2
        )
        fs, fs2 = fq(q, n - 1, v), fq(q, v, n - 1)
        if form == "ICC(2,1)":
            est = r1
            lo = n * (msr - fs * mse) / (fs * (k * msc + (k * n - k - n) * mse) + n * msr)
            hi = n * (fs2 * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fs2 * msr)
        else:
            # McGraw & Wong (1996) Table 7, ICC(A,k), written directly
            est = (msr - mse) / (msr + (msc - mse) / n)
            lo = n * (msr - fs * mse) / (fs * (msc - mse) + n * msr)
            hi = n * (fs2 * msr - mse) / (msc - mse + n * fs2 * msr)
    else:
        raise AssertionError(form)
    return {"icc": est, "ci_low": lo, "ci_high": hi, "f_value": fv, "df1": d1, "df2": d2,
            "p_value": stats.f.sf(fv, d1, d2)}


def _datasets() -> list[tuple[str, np.ndarray]]:
    """Seeded (n_features, n_subjects, k) sets: continuous, tied integers, k=2,3,4."""
    out = []
    for seed, n, k, ties in [(1, 15, 2, False), (2, 30, 2, True), (3, 8, 4, False),
                             (4, 20, 4, True), (5, 5, 3, False), (6, 12, 2, True)]:
        rng = np.random.default_rng(seed)
        subj = rng.normal(0, rng.uniform(0.2, 3.0, size=(4, 1, 1)), size=(4, n, 1))
        rater = rng.normal(0, 0.7, size=(4, 1, k))
        x = 10 + subj + rater + rng.normal(0, 1, size=(4, n, k))
        if ties:
            x = np.round(x)  # heavy ties, few distinct values
        out.append((f"seed{seed}-n{n}-k{k}{'-ties' if ties else ''}", x))
    return out


DATASETS = _datasets()


@pytest.fixture()
def pg_unrounded(monkeypatch: pytest.MonkeyPatch):
    pg = pytest.importorskip("pingouin")
    monkeypatch.setitem(pg.options, "round.column.CI95", None)
    monkeypatch.setitem(pg.options, "round", None)
    return pg


def _long(x2d: np.ndarray) -> pd.DataFrame:
    n, k = x2d.shape
    return pd.DataFrame({"t": np.repeat(np.arange(n), k), "r": np.tile(np.arange(k), n),
                         "s": x2d.ravel()})


# --------------------------------------------------------------------------- pingouin
@pytest.mark.parametrize("name,x", DATASETS, ids=[d[0] for d in DATASETS])
def test_matches_pingouin_all_forms(pg_unrounded, name: str, x: np.ndarray) -> None:
    ours = {f: icc(x, f) for f in FORMS}
    for i in range(x.shape[0]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tab = pg_unrounded.intraclass_corr(_long(x[i]), "t", "r", "s").set_index("Type")
        assert len(tab) == 6
        for pg_name, sf in PG_TO_SF.items():
            row, res = tab.loc[pg_name], ours[sf]
            lo, hi = np.asarray(row["CI95"], dtype=float)
            assert res.icc[i] == pytest.approx(row["ICC"], abs=1e-6), (name, i, sf)
            assert res.ci_low[i] == pytest.approx(lo, abs=1e-6), (name, i, sf)
            assert res.ci_high[i] == pytest.approx(hi, abs=1e-6), (name, i, sf)
            assert res.f_value[i] == pytest.approx(row["F"], rel=1e-9)
            assert res.df1[i] == row["df1"] and res.df2[i] == row["df2"]
            assert res.p_value[i] == pytest.approx(row["pval"], rel=1e-6, abs=1e-12)


def test_matches_pingouin_default_rounded_ci() -> None:
    """pingouin's default output rounds CI95 to 2 d.p.; we agree to that rounding."""
    pg = pytest.importorskip("pingouin")
    x = DATASETS[1][1][0]
    tab = pg.intraclass_corr(_long(x), "t", "r", "s").set_index("Type")
    for pg_name, sf in PG_TO_SF.items():
        res = icc(x, sf)
        lo, hi = np.asarray(tab.loc[pg_name, "CI95"], dtype=float)
        assert abs(res.ci_low[0] - lo) <= 0.005 + 1e-12
        assert abs(res.ci_high[0] - hi) <= 0.005 + 1e-12


# --------------------------------------------------------------------------- scalar reference
@pytest.mark.parametrize("name,x", DATASETS, ids=[d[0] for d in DATASETS])
@pytest.mark.parametrize("form", FORMS)
def test_matches_scalar_reference(name: str, x: np.ndarray, form: str) -> None:
    res = icc(x, form)
    for i in range(x.shape[0]):
        ref = _ref_icc(x[i], form)
        for key in ("icc", "ci_low", "ci_high", "f_value"):
            assert getattr(res, key)[i] == pytest.approx(ref[key], rel=1e-9, abs=1e-9), (name, form, key)
        assert res.df1[i] == ref["df1"] and res.df2[i] == ref["df2"]
        assert res.p_value[i] == pytest.approx(ref["p_value"], rel=1e-7, abs=1e-12)


def test_vectorised_500_features_equals_loop() -> None:
    rng = np.random.default_rng(500)
    n, k = 17, 3
    scale = rng.uniform(0.0, 4.0, size=(500, 1, 1))
    x = scale * rng.normal(size=(500, n, 1)) + rng.normal(size=(500, n, k)) + rng.normal(size=(500, 1, k))
    x[::50] = np.round(x[::50])  # some tied features
    for form in FORMS:
        vec = icc(x, form)
        assert vec.icc.shape == (500,)
        one_by_one = [icc(x[i], form) for i in range(500)]  # module path, one feature at a time
        for key in ("icc", "ci_low", "ci_high", "f_value", "p_value"):
            loop = np.array([getattr(r, key)[0] for r in one_by_one])
            np.testing.assert_allclose(getattr(vec, key), loop, rtol=1e-12, atol=1e-14)
        ref = np.array([[_ref_icc(x[i], form)[key] for key in ("icc", "ci_low", "ci_high")]
                        for i in range(500)])  # independent scalar path
        np.testing.assert_allclose(np.c_[vec.icc, vec.ci_low, vec.ci_high], ref, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- published example
# Shrout PE, Fleiss JL (1979). Psychological Bulletin 86(2):420-428, Table 4 (k = 4 judges).
SHROUT_FLEISS_TABLE4 = {
    "ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71,
    "ICC(1,4)": 0.44, "ICC(2,4)": 0.62, "ICC(3,4)": 0.91,
}
# What radsurv computes on the same data (full precision), and the 95 % CIs
# (identical to pingouin 0.7.0 unrounded):
#   ICC(1,1)=0.165741768405475  CI [-0.132932, 0.722560]
#   ICC(2,1)=0.289763779527559  CI [ 0.018787, 0.761084]
#   ICC(3,1)=0.714840714840715  CI [ 0.342465, 0.945858]
#   ICC(1,4)=0.442797133679269  CI [-0.884442, 0.912415]
#   ICC(2,4)=0.620050547598989  CI [ 0.071137, 0.927232]
#   ICC(3,4)=0.909315542377070  CI [ 0.675675, 0.985892]
SHROUT_FLEISS_EXACT = {
    "ICC(1,1)": 0.165741768405475, "ICC(2,1)": 0.289763779527559, "ICC(3,1)": 0.714840714840715,
    "ICC(1,4)": 0.442797133679269, "ICC(2,4)": 0.620050547598989, "ICC(3,4)": 0.909315542377070,
}


def _shrout_fleiss() -> np.ndarray:
    df = pd.read_csv(DATA / "icc_shrout_fleiss_1979.csv", comment="#", index_col="target")
    assert df.shape == (6, 4)
    return df.to_numpy(dtype=float)


@pytest.mark.parametrize("form", list(SHROUT_FLEISS_TABLE4))
def test_shrout_fleiss_1979_published(form: str) -> None:
    x = _shrout_fleiss()
    res = icc(x, form)  # "ICC(3,4)" accepted because k = 4
    assert round(float(res.icc[0]), 2) == SHROUT_FLEISS_TABLE4[form]
    assert res.icc[0] == pytest.approx(SHROUT_FLEISS_EXACT[form], abs=1e-12)


def test_shrout_fleiss_exact_rational() -> None:
    """Exact rational arithmetic on the integer data.

    Reproduces the mean squares of their Table 3 (BMS = 11.24, WMS = 6.26,
    JMS = 32.49, EMS = 1.02 to 2 d.p.) and gives the ICCs as exact fractions:
    ICC(1,1) = 448/2703, ICC(2,1) = 184/635, ICC(3,1) = 920/1287.
    """
    from fractions import Fraction as Fr

    x = _shrout_fleiss().astype(int).tolist()
    n, k = 6, 4
    g = Fr(sum(map(sum, x)), n * k)
    ssr = k * sum((Fr(sum(r), k) - g) ** 2 for r in x)
    ssc = n * sum((Fr(sum(x[i][j] for i in range(n)), n) - g) ** 2 for j in range(k))
    sst = sum((Fr(v) - g) ** 2 for r in x for v in r)
    msr, msc = ssr / (n - 1), ssc / (k - 1)
    mse, msw = (sst - ssr - ssc) / ((n - 1) * (k - 1)), (sst - ssr) / (n * (k - 1))
    assert [round(float(v), 2) for v in (msr, msw, msc, mse)] == [11.24, 6.26, 32.49, 1.02]
    exact = {
        "ICC(1,1)": (msr - msw) / (msr + (k - 1) * msw),
        "ICC(2,1)": (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n),
        "ICC(3,1)": (msr - mse) / (msr + (k - 1) * mse),
    }
    assert exact == {"ICC(1,1)": Fr(448, 2703), "ICC(2,1)": Fr(184, 635), "ICC(3,1)": Fr(920, 1287)}
    arr = np.array(x, dtype=float)
    for form, val in exact.items():
        assert icc(arr, form).icc[0] == pytest.approx(float(val), rel=1e-14)


# --------------------------------------------------------------------------- edge cases
def test_perfect_agreement_is_one_and_robust() -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(3, 20, 1))
    x = np.repeat(base, 2, axis=2)
    for form in FORMS:
        res = icc(x, form)
        np.testing.assert_allclose(res.icc, 1.0, atol=1e-12)
        np.testing.assert_allclose(res.ci_low, 1.0, atol=1e-12)
        np.testing.assert_allclose(res.ci_high, 1.0, atol=1e-12)
        assert robust_mask(res).all()


def test_perfect_consistency_with_offset() -> None:
    # retest = test + 1: consistency is perfect, absolute agreement is not.
    rng = np.random.default_rng(8)
    t = rng.normal(size=(1, 15, 1))
    x = np.concatenate([t, t + 1.0], axis=2)
    assert icc(x, "ICC(3,1)").icc[0] == pytest.approx(1.0)
    a1 = icc(x, "ICC(A,1)")
    assert 0 < a1.icc[0] < 1
    assert np.isfinite(a1.ci_low[0]) and a1.ci_low[0] <= a1.icc[0] <= a1.ci_high[0] <= 1.0
    # Limit check: a tiny residual gives (almost) the same ICC(A,1) interval.
    x2 = x.copy()
    x2[0, 0, 0] += 1e-7
    a1b = icc(x2, "ICC(A,1)")
    assert a1b.ci_low[0] == pytest.approx(a1.ci_low[0], abs=1e-5)
    assert a1b.ci_high[0] == pytest.approx(a1.ci_high[0], abs=1e-5)


def test_zero_variance_feature_is_nan_and_not_robust() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3, 10, 2))
    x[1] = 0.1  # all values equal; 0.1 is not exact in binary, mean has rounding error
    for form in FORMS:
        res = icc(x, form)
        assert np.isnan(res.icc[1]) and np.isnan(res.ci_low[1]) and np.isnan(res.ci_high[1])
        assert np.isnan(res.p_value[1])
        assert np.isfinite(res.icc[[0, 2]]).all()
        mask = robust_mask(res, threshold=-10.0)  # even with a trivial threshold
        assert not mask[1] and mask[[0, 2]].all()
        assert not robust_mask(res, use_lower_bound=False, threshold=-10.0)[1]


def test_pure_noise_icc_near_zero() -> None:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(50, 1000, 2))  # no subject effect at all
    for form in FORMS:
        res = icc(x, form)
        assert abs(np.mean(res.icc)) < 0.02, form
        assert np.all(np.abs(res.icc) < 0.2), form
        assert not robust_mask(res).any()
        assert not robust_mask(res, threshold=0.5, use_lower_bound=False).any()


@pytest.mark.parametrize("form,model", [("ICC(1,1)", "oneway"), ("ICC(3,1)", "mixed"), ("ICC(2,1)", "random")])
def test_ci_coverage_simulation(form: str, model: str) -> None:
    """The 95 % CI covers the true ICC in ~95 % of 4000 simulated features (n=15, k=2)."""
    rng = np.random.default_rng(11)
    m, n, k = 4000, 15, 2
    var_s, var_r, var_e = 3.0, 0.5, 1.0
    s = rng.normal(0, math.sqrt(var_s), size=(m, n, 1))
    e = rng.normal(0, math.sqrt(var_e), size=(m, n, k))
    if model == "oneway":
        x, true = s + e, var_s / (var_s + var_e)
    elif model == "mixed":
        x, true = s + e + np.array([0.0, 1.5]), var_s / (var_s + var_e)
    else:
        x = s + e + rng.normal(0, math.sqrt(var_r), size=(m, 1, k))
        true = var_s / (var_s + var_r + var_e)
    res = icc(x, form)
    cover = np.mean((res.ci_low <= true) & (true <= res.ci_high))
    tol = 0.015 if model != "random" else 0.03  # ICC(2,1)'s interval is approximate
    assert abs(cover - 0.95) < tol, cover


def test_robust_mask_uses_lower_bound_by_default() -> None:
    res = ICCResult(icc=np.array([0.9, 0.9, np.nan, 0.7]), ci_low=np.array([0.8, 0.6, np.nan, 0.76]),
                    ci_high=np.ones(4), f_value=np.ones(4), df1=np.ones(4), df2=np.ones(4),
                    p_value=np.ones(4), form="ICC(3,1)", n_subjects=15, k=2)
    assert robust_mask(res).tolist() == [True, False, False, True]
    assert robust_mask(res, use_lower_bound=False).tolist() == [True, True, False, False]
    assert robust_mask(res, threshold=0.5, use_lower_bound=False).tolist() == [True, True, False, True]
    frame = pd.DataFrame({"feature": list("abcd"), "icc": res.icc, "ci_low": res.ci_low}, index=[5, 6, 7, 8])
    m = robust_mask(frame)
    assert m.dtype == bool and m.index.tolist() == [5, 6, 7, 8] and m.tolist() == [True, False, False, True]


# --------------------------------------------------------------------------- names, validation
def test_aliases() -> None:
    x = DATASETS[2][1]  # k = 4
    pairs = [("ICC(1)", "ICC(1,1)"), ("ICC(A,1)", "ICC(2,1)"), ("ICC(C,1)", "ICC(3,1)"),
             ("ICC(k)", "ICC(1,k)"), ("ICC(A,k)", "ICC(2,k)"), ("icc(c, k)", "ICC(3,k)"),
             ("ICC3k", "ICC(3,k)"), ("ICC(2,4)", "ICC(2,k)")]
    for alias, canon in pairs:
        assert canonical_form(alias, k=4) == canon
        a, b = icc(x, alias), icc(x, canon)
        assert a.form == canon
        np.testing.assert_array_equal(a.icc, b.icc)
    with pytest.raises(ValueError, match="unknown ICC form"):
        icc(x, "ICC(2,3)")  # k is 4
    with pytest.raises(ValueError, match="unknown ICC form"):
        icc(x, "ICC(4,1)")


def test_validation_errors() -> None:
    x = np.random.default_rng(12).normal(size=(5, 10, 2))
    y = x.copy()
    y[1, 3, 0] = np.nan
    y[4, 3, 1] = np.nan
    y[4, 7, 1] = np.nan
    with pytest.raises(ValueError, match=r"in 2 of 5 features and 2 of 10 subjects"):
        icc(y)
    with pytest.raises(ValueError, match="at least 2 subjects"):
        icc(x[:, :1, :])
    with pytest.raises(ValueError, match="at least 2 raters"):
        icc(x[:, :, :1])
    with pytest.raises(ValueError, match="shape"):
        icc(x[0, 0])
    with pytest.raises(ValueError, match="alpha"):
        icc(x, alpha=1.5)


def test_alpha_changes_ci_width() -> None:
    x = DATASETS[0][1]
    r95, r80 = icc(x, alpha=0.05), icc(x, alpha=0.2)
    assert np.all(r80.ci_low > r95.ci_low) and np.all(r80.ci_high < r95.ci_high)
    np.testing.assert_array_equal(r80.icc, r95.icc)


# --------------------------------------------------------------------------- frames
def _tables(seed: int = 13, n: int = 12, p: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, p)) * 3
    idx = [f"P{i:02d}" for i in range(n)]
    cols = [f"f{j}" for j in range(p)]
    test = pd.DataFrame(s + rng.normal(size=(n, p)), index=idx, columns=cols)
    retest = pd.DataFrame(s + rng.normal(size=(n, p)), index=idx, columns=cols)
    return test, retest


def test_icc_frame_matches_array_and_aligns() -> None:
    test, retest = _tables()
    out = icc_frame(test, retest, form="ICC(2,1)")
    assert out.columns.tolist() == ["feature", "icc", "ci_low", "ci_high", "form", "n", "k"]
    assert out["feature"].tolist() == test.columns.tolist()
    assert (out["n"] == 12).all() and (out["k"] == 2).all() and (out["form"] == "ICC(2,1)").all()
    arr = np.stack([test.to_numpy().T, retest.to_numpy().T], axis=2)
    np.testing.assert_array_equal(out["icc"].to_numpy(), icc(arr, "ICC(2,1)").icc)
    # Shuffled rows/columns in retest give the same answer (aligned on labels).
    shuffled = retest.sample(frac=1, random_state=1)[retest.columns[::-1]]
    pd.testing.assert_frame_equal(icc_frame(test, shuffled, form="ICC(2,1)"), out)
    # Partial overlap: common part used, with a warning.
    with pytest.warns(UserWarning, match="11 subjects and 5 features"):
        part = icc_frame(test.drop(columns="f5"), retest.drop(index="P03"))
    assert part["n"].iloc[0] == 11 and len(part) == 5


def test_icc_frame_errors() -> None:
    test, retest = _tables()
    with pytest.raises(ValueError, match="share no subjects"):
        icc_frame(test, retest.set_axis([f"Q{i}" for i in range(12)], axis=0))
    with pytest.raises(ValueError, match="share no feature columns"):
        icc_frame(test, retest.add_prefix("x_"))
    bad = retest.copy()
    bad.iloc[2, 1] = np.nan
    with pytest.raises(ValueError, match="1 of 6 features and 1 of 12 subjects"):
        icc_frame(test, bad)
    with pytest.raises(ValueError, match="duplicated subject"):
        icc_frame(pd.concat([test, test.iloc[:1]]), retest)


def test_icc_long_k4() -> None:
    x = DATASETS[3][1]  # (4 features, 20 subjects, 4 raters)
    f, n, k = x.shape
    long = pd.DataFrame({"pid": np.repeat(np.arange(n), k), "scan": np.tile(["a", "b", "c", "d"], n)})
    for j in range(f):
        long[f"feat{j}"] = x[j].ravel()
    long = long.sample(frac=1, random_state=3)  # row order must not matter
    out = icc_long(long, "pid", "scan", form="ICC(3,k)")
    assert out["feature"].tolist() == [f"feat{j}" for j in range(f)]
    assert (out["k"] == 4).all() and (out["n"] == 20).all()
    np.testing.assert_allclose(out["icc"], icc(x, "ICC(3,k)").icc, rtol=1e-12)
    with pytest.raises(ValueError, match="unbalanced design"):
        icc_long(long.iloc[1:], "pid", "scan")
    with pytest.raises(ValueError, match="duplicated"):
        icc_long(pd.concat([long, long.iloc[:1]]), "pid", "scan")


# --------------------------------------------------------------------------- Lin's CCC
def test_lins_ccc_hand_examples() -> None:
    # x=1..4, y=x+1: means 2.5/3.5, s_x^2=s_y^2=s_xy=5/4 (1/n): 2*(5/4)/(5/4+5/4+1) = 5/7
    assert float(lins_ccc([1, 2, 3, 4], [2, 3, 4, 5])) == pytest.approx(5 / 7, abs=1e-15)
    # y=2x, x=1,2,3: s_x^2=2/3, s_y^2=8/3, s_xy=4/3, (2-4)^2=4: (8/3)/(2/3+8/3+4) = 4/11
    assert float(lins_ccc([1, 2, 3], [2, 4, 6])) == pytest.approx(4 / 11, abs=1e-15)
    # reversed: -1; identical: 1
    assert float(lins_ccc([1, 2, 3], [3, 2, 1])) == pytest.approx(-1.0, abs=1e-15)
    assert float(lins_ccc([0.3, 1.7, 2.2], [0.3, 1.7, 2.2])) == pytest.approx(1.0, abs=1e-15)
    # x=(1,2,3,4,5), y=(2,1,4,3,6): mx=3, my=3.2, s_x^2=2, s_y^2=14.8/5=2.96,
    # s_xy=(2.4+2.2+0-0.2+5.6)/5=10/5=2, (mx-my)^2=0.04; CCC=2*2/(2+2.96+0.04)=4/5
    assert float(lins_ccc([1, 2, 3, 4, 5], [2, 1, 4, 3, 6])) == pytest.approx(0.8, abs=1e-14)


def test_lins_ccc_vectorised_and_edges() -> None:
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(300, 25)), rng.normal(size=(300, 25)) * 1.3 + 0.2
    vec = lins_ccc(x, y)
    assert vec.shape == (300,)
    loop = [2 * np.cov(a, b, bias=True)[0, 1] / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
            for a, b in zip(x, y)]
    np.testing.assert_allclose(vec, loop, rtol=1e-12)
    const = lins_ccc(np.full((2, 4), 0.1), np.array([[0.1] * 4, [0.2] * 4]))
    assert np.isnan(const[0]) and const[1] == 0.0
    with pytest.raises(ValueError, match="same shape"):
        lins_ccc(x, y[:, :3])
    with pytest.raises(ValueError, match="non-finite"):
        lins_ccc([1, np.nan, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        lins_ccc([1.0], [1.0])
