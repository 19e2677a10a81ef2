"""Intraclass correlation (ICC) for test-retest robustness, vectorised over features.

A radiomics cohort yields thousands of features per scan. To keep only features
that are reproducible under re-scanning (test-retest) or under perturbation of
the image / segmentation, each feature's reliability is measured with an ICC
over subjects (patients) x raters (scans, perturbations). This module computes
the two-way ANOVA mean squares for *all* features at once with numpy array
reductions (no Python loop over features) and derives every Shrout & Fleiss
(1979) ICC form, its F test and its F-distribution confidence interval.

Data layout
-----------
``data`` has shape ``(n_features, n_subjects, k_raters)``; ``k = 2`` for a
test-retest pair, more for perturbation series. A 2-D array
``(n_subjects, k_raters)`` is accepted as a single feature.

Forms and names
---------------
Shrout & Fleiss (1979) names are canonical; McGraw & Wong (1996) names (also
used by pingouin and Koo & Li 2016) are accepted as aliases, as are the
``psych``-style names (``ICC1``, ``ICC2k`` ...) and, for the average forms, the
Shrout & Fleiss spelling with the actual number of raters (``ICC(3,4)`` when
``k = 4``).

=============  ======================  =====================================================
Shrout-Fleiss  McGraw & Wong           Model / definition
=============  ======================  =====================================================
ICC(1,1)       ICC(1)                  one-way random effects, single measurement
ICC(2,1)       ICC(A,1)                two-way random effects, absolute agreement, single
ICC(3,1)       ICC(C,1)                two-way mixed effects, consistency, single
ICC(1,k)       ICC(k)                  one-way random effects, mean of k measurements
ICC(2,k)       ICC(A,k)                two-way random effects, absolute agreement, mean of k
ICC(3,k)       ICC(C,k)                two-way mixed effects, consistency, mean of k
=============  ======================  =====================================================

McGraw & Wong (1996) distinguish "random" from "mixed" (fixed raters) for the
absolute-agreement and consistency coefficients, but the *estimators* do not
depend on that choice: their ICC(A,1) formula is the same whether the raters
factor is random or fixed (likewise ICC(C,1)); only the interpretation / the
population the coefficient generalises to changes. Hence one name per formula.

Formulas
--------
With n subjects, k raters, ``MSR`` (between subjects, ``n-1`` df), ``MSC``
(between raters, ``k-1`` df), ``MSE`` (residual, ``(n-1)(k-1)`` df) and
``MSW = (SSC + SSE) / (n(k-1))`` (within subjects, one-way model)
[Shrout & Fleiss 1979, Table 1; McGraw & Wong 1996, Tables 4 and 5]::

    ICC(1,1) = (MSR - MSW) / (MSR + (k-1) MSW)
    ICC(2,1) = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n)
    ICC(3,1) = (MSR - MSE) / (MSR + (k-1) MSE)
    ICC(1,k) = (MSR - MSW) / MSR
    ICC(2,k) = (MSR - MSE) / (MSR + (MSC - MSE) / n)
    ICC(3,k) = (MSR - MSE) / MSR

F tests (H0: ICC = 0): ``F = MSR/MSW`` on ``(n-1, n(k-1))`` df for the one-way
forms, ``F = MSR/MSE`` on ``(n-1, (n-1)(k-1))`` df for the two-way forms
(``p = P(F_{df1,df2} > F)``).

Confidence intervals at level ``1 - alpha`` are exactly those of
``pingouin.intraclass_corr`` (0.7.0), which follow Shrout & Fleiss (1979,
eqs. for Cases 1-3) and McGraw & Wong (1996, Tables 7-8):

* ICC(1,*) / ICC(3,*): ``FL = F / F_{1-a/2}(df1, df2)``,
  ``FU = F * F_{1-a/2}(df2, df1)``; single: ``(FL-1)/(FL+k-1)`` ..
  ``(FU-1)/(FU+k-1)``; average: ``1 - 1/FL`` .. ``1 - 1/FU``.
* ICC(2,1): Satterthwaite df
  ``v = (n-1)(k-1) (k r Fj + n(1+(k-1) r) - k r)^2 /
  ((n-1) k^2 r^2 Fj^2 + (n(1+(k-1) r) - k r)^2)`` with ``r = ICC(2,1)``,
  ``Fj = MSC/MSE``; ``F* = F_{1-a/2}(n-1, v)``, ``F_* = F_{1-a/2}(v, n-1)``;
  ``L = n(MSR - F* MSE) / (F* (k MSC + (kn-k-n) MSE) + n MSR)``,
  ``U = n(F_* MSR - MSE) / (k MSC + (kn-k-n) MSE + n F_* MSR)``.
* ICC(2,k): Spearman-Brown of the ICC(2,1) bounds, ``kL/(1+(k-1)L)`` (this is
  algebraically McGraw & Wong's ICC(A,k) interval).

The single-measure bounds are evaluated in the algebraically identical form
``1 - k/(F+k-1)`` so that they stay finite (-> 1) when the error mean square is
0 (perfect agreement); pingouin returns NaN there.

Subjects nested in batches (multi-centre cohorts)
-------------------------------------------------
In a cohort scanned at several centres, a centre's HU offset or kernel moves every one of
its patients' values, test and retest alike: that adds between-centre variance to the
between-subject mean square and inflates every form above (a feature measuring the
centre looks reproducible). With ``groups`` (one batch label per subject), subjects are
nested in their batch: ``MSR`` is taken from the subjects' deviations from their batch's
mean, ``SS_S(B) = k sum_b sum_{i in b} (mean_i - mean_b)^2`` on ``n - B`` df (``B``
batches), the between-batch sum of squares is left out, and ``MSC``, ``MSE`` and ``MSW``
are those of the crossed design above (``MSE`` keeps any batch-by-rater interaction, as
measurement error). The formulas and intervals are then those above with ``n - B`` as
the df of ``MSR`` (``df1``); in the ICC(2,1) interval ``n`` and the ``(n-1)`` of the
residual's df are unchanged. One batch gives exactly the crossed result; adding a
constant to all values of a batch changes nothing. ``MSR`` is the subjects-within-batch
mean square of the OLS comparison of ``value ~ batch + rater`` with ``value ~ subject +
rater`` (``tests/test_icc_batches.py`` checks it against statsmodels' ``anova_lm``, and the
intervals' coverage by simulation).

Degenerate features
-------------------
* A feature whose values are all equal (zero total variance) gives NaN for the
  ICC, its CI, F and p (not an exception); :func:`robust_mask` treats NaN as
  not robust.
* Other 0/0 cases (e.g. every subject has the same mean *and* zero residual,
  only the raters differ) also give NaN for the affected forms; no warning is
  emitted.
* Perfect agreement (all raters identical, subjects differ) gives ICC = 1 with
  CI [1, 1] for ICC(1,*) and ICC(3,*), and an ICC(2,*) interval in the limit.

Missing data
------------
Only complete, balanced designs are supported (the ANOVA estimators above
require them). Any NaN/inf raises ``ValueError`` naming how many features and
subjects are affected; drop or impute beforehand.

Interpretation (Koo & Li 2016): < 0.5 poor, 0.5-0.75 moderate, 0.75-0.9 good,
> 0.9 excellent; judge on the 95 % CI, see :func:`robust_mask`.

References
----------
Shrout PE, Fleiss JL (1979). Intraclass correlations: uses in assessing rater
reliability. Psychological Bulletin 86(2):420-428.
McGraw KO, Wong SP (1996). Forming inferences about some intraclass correlation
coefficients. Psychological Methods 1(1):30-46.
Koo TK, Li MY (2016). A guideline of selecting and reporting intraclass
correlation coefficients for reliability research. J Chiropr Med 15(2):155-163.

Lin's concordance correlation coefficient, the other agreement measure, is in
:mod:`radsurv.robustness.concordance`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "FORMS",
    "ICCResult",
    "canonical_form",
    "icc",
    "robust_mask",
]

#: Canonical (Shrout & Fleiss) form names, in the order of their paper.
FORMS: tuple[str, ...] = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)")

# Aliases, keyed by the upper-cased name with whitespace removed.
_ALIASES: dict[str, str] = {
    # Shrout & Fleiss
    "ICC(1,1)": "ICC(1,1)",
    "ICC(2,1)": "ICC(2,1)",
    "ICC(3,1)": "ICC(3,1)",
    "ICC(1,K)": "ICC(1,k)",
    "ICC(2,K)": "ICC(2,k)",
    "ICC(3,K)": "ICC(3,k)",
    # McGraw & Wong (and pingouin's labels)
    "ICC(1)": "ICC(1,1)",
    "ICC(A,1)": "ICC(2,1)",
    "ICC(C,1)": "ICC(3,1)",
    "ICC(K)": "ICC(1,k)",
    "ICC(A,K)": "ICC(2,k)",
    "ICC(C,K)": "ICC(3,k)",
    # R psych::ICC labels
    "ICC1": "ICC(1,1)",
    "ICC2": "ICC(2,1)",
    "ICC3": "ICC(3,1)",
    "ICC1K": "ICC(1,k)",
    "ICC2K": "ICC(2,k)",
    "ICC3K": "ICC(3,k)",
}

_NUMERIC_K = re.compile(r"^ICC\(([123AC]),(\d+)\)$")


def canonical_form(form: str, k: int | None = None) -> str:
    """Return the Shrout & Fleiss name for ``form`` (see the module table).

    ``ICC(3,4)``-style names (the number of raters spelled out) are accepted
    when ``k`` is given and equals that number.

    Raises
    ------
    ValueError
        Unknown form name.
    """
    key = re.sub(r"\s+", "", str(form)).upper()
    if key in _ALIASES:
        return _ALIASES[key]
    m = _NUMERIC_K.match(key)
    if m and k is not None and int(m.group(2)) == k and k > 1:
        return _ALIASES[f"ICC({m.group(1)},K)"]
    known = ", ".join(FORMS) + "; aliases: " + ", ".join(a for a in _ALIASES if a not in FORMS)
    raise ValueError(f"unknown ICC form {form!r} (k={k}); known: {known}")


@dataclass(frozen=True)
class ICCResult:
    """ICC of one form for each feature; every array has length ``n_features``.

    Attributes
    ----------
    icc, ci_low, ci_high
        Point estimate and ``1 - alpha`` F-distribution confidence bounds.
        NaN for zero-variance features (see the module docstring).
    f_value, df1, df2, p_value
        F test of H0: ICC = 0 (``df2`` may differ between forms, not between
        features).
    form
        Canonical Shrout & Fleiss name, e.g. ``"ICC(3,1)"``.
    n_subjects, k
        Design size.
    alpha
        Significance level used for the CI.
    """

    icc: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    f_value: np.ndarray
    df1: np.ndarray
    df2: np.ndarray
    p_value: np.ndarray
    form: str
    n_subjects: int
    k: int
    alpha: float = 0.05

    def __len__(self) -> int:
        return int(self.icc.shape[0])


@dataclass(frozen=True)
class _MeanSquares:
    msr: np.ndarray  # between subjects (rows), df n-1 (n - B when nested in B batches)
    msc: np.ndarray  # between raters (columns), df k-1
    mse: np.ndarray  # residual, df (n-1)(k-1)
    msw: np.ndarray  # within subjects (one-way), df n(k-1)
    constant: np.ndarray  # bool: all values of the feature equal
    n: int
    k: int
    df_subjects: int  # df of msr: n - 1, or n - B for subjects nested in B batches


def _validate(data: np.ndarray | Sequence) -> np.ndarray:
    arr = np.asarray(data, dtype=float)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(
            "data must have shape (n_features, n_subjects, k_raters) "
            f"or (n_subjects, k_raters); got shape {arr.shape}"
        )
    n_features, n, k = arr.shape
    if n_features < 1:
        raise ValueError("data has no features (n_features = 0)")
    if n < 2:
        raise ValueError(f"the ICC needs at least 2 subjects; got {n}")
    if k < 2:
        raise ValueError(f"the ICC needs at least 2 raters/scans; got {k}")
    bad = ~np.isfinite(arr)
    if bad.any():
        n_feat_bad = int(bad.any(axis=(1, 2)).sum())
        n_subj_bad = int(bad.any(axis=(0, 2)).sum())
        n_nan = int(np.isnan(arr).sum())
        raise ValueError(
            f"missing or non-finite values: {n_nan} NaN and {int(bad.sum()) - n_nan} inf cells "
            f"in {n_feat_bad} of {n_features} features and {n_subj_bad} of {n} subjects; "
            "the ICC needs a complete design: drop or impute them first"
        )
    return arr


def _group_codes(groups: Sequence | np.ndarray, n: int) -> np.ndarray:
    """Integer codes of the subjects' batches (length ``n``); at least one subject more than batches."""
    labels = pd.Series(list(groups), dtype=object)
    if len(labels) != n:
        raise ValueError(f"groups has {len(labels)} labels for {n} subjects; give one batch label per subject")
    if labels.isna().any():
        raise ValueError(f"{int(labels.isna().sum())} subject(s) have no batch label; label them (e.g. 'unknown')")
    codes, uniques = pd.factorize(labels.astype(str), sort=True)
    if n - len(uniques) < 1:
        raise ValueError(f"{n} subjects in {len(uniques)} batches: the ICC within batches needs at least one "
                         "batch with two or more subjects")
    return np.asarray(codes)


def _mean_squares(arr: np.ndarray, groups: np.ndarray | None = None) -> _MeanSquares:
    """Two-way ANOVA (subjects x raters, one observation per cell) per feature.

    Sums of squares are computed from deviations (two-pass) rather than by
    subtraction of raw sums, for accuracy [Shrout & Fleiss 1979, Table 1].
    ``groups`` (integer batch codes per subject): subjects nested in batches, the
    between-subject sum of squares taken within batches (module docstring).
    """
    _, n, k = arr.shape
    grand = arr.mean(axis=(1, 2), keepdims=True)  # (F,1,1)
    row = arr.mean(axis=2, keepdims=True)  # (F,n,1) subject means
    col = arr.mean(axis=1, keepdims=True)  # (F,1,k) rater means
    if groups is None:
        ssr = k * np.square(row - grand).sum(axis=(1, 2))
        df_subjects = n - 1
    else:
        n_groups = int(groups.max()) + 1
        onehot = np.eye(n_groups)[groups]  # (n, B)
        group_mean = (row[..., 0] @ onehot) / onehot.sum(axis=0)  # (F, B) mean of the batch's subject means
        ssr = k * np.square(row[..., 0] - group_mean[:, groups]).sum(axis=1)
        df_subjects = n - n_groups
    ssc = n * np.square(col - grand).sum(axis=(1, 2))
    sse = np.square(arr - row - col + grand).sum(axis=(1, 2))
    ssw = np.square(arr - row).sum(axis=(1, 2))  # = SSC + SSE
    flat = arr.reshape(arr.shape[0], -1)
    constant = flat.max(axis=1) == flat.min(axis=1)
    return _MeanSquares(
        msr=ssr / df_subjects,
        msc=ssc / (k - 1),
        mse=sse / ((n - 1) * (k - 1)),
        msw=ssw / (n * (k - 1)),
        constant=constant,
        n=n,
        k=k,
        df_subjects=df_subjects,
    )


def _single_bounds(f_low: np.ndarray, f_up: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    # (F-1)/(F+k-1) written as 1 - k/(F+k-1): identical, but -> 1 for F = inf.
    return 1.0 - k / (f_low + k - 1), 1.0 - k / (f_up + k - 1)


def _from_mean_squares(ms: _MeanSquares, form: str, alpha: float) -> ICCResult:
    n, k = ms.n, ms.k
    msr, msc, mse, msw = ms.msr, ms.msc, ms.mse, ms.msw
    q = 1.0 - alpha / 2.0
    df1 = float(ms.df_subjects)  # n - 1 (crossed) or n - B (subjects nested in B batches)
    one_way = form in ("ICC(1,1)", "ICC(1,k)")
    df2 = float(n * (k - 1)) if one_way else float((n - 1) * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        f_value = msr / msw if one_way else msr / mse
        p_value = stats.f.sf(f_value, df1, df2)
        if form == "ICC(2,1)" or form == "ICC(2,k)":
            r = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
            fj = msc / mse
            a = n * (1 + (k - 1) * r) - k * r
            vn = df2 * (k * r * fj + a) ** 2
            vd = (n - 1) * k**2 * r**2 * fj**2 + a**2  # (n-1): the residual's df / (k-1)
            v = vn / vd
            # Limits of v: Fj -> inf (MSE = 0 < MSC) gives (n-1)(k-1)/(n-1) = k-1;
            # MSE = MSC = 0 makes the bounds below 1 whatever v, so any finite v.
            v = np.where(np.isinf(fj), k - 1.0, v)
            v = np.where((mse == 0) & (msc == 0), df2, v)
            f_star = stats.f.ppf(q, df1, v)
            f_star_low = stats.f.ppf(q, v, df1)
            c = k * msc + (k * n - k - n) * mse
            low = n * (msr - f_star * mse) / (f_star * c + n * msr)
            high = n * (f_star_low * msr - mse) / (c + n * f_star_low * msr)
            if form == "ICC(2,1)":
                est = r
            else:
                est = (msr - mse) / (msr + (msc - mse) / n)
                low = k * low / (1 + (k - 1) * low)
                high = k * high / (1 + (k - 1) * high)
        else:
            within = msw if one_way else mse
            f_low = f_value / stats.f.ppf(q, df1, df2)
            f_up = f_value * stats.f.ppf(q, df2, df1)
            if form in ("ICC(1,1)", "ICC(3,1)"):
                est = (msr - within) / (msr + (k - 1) * within)
                low, high = _single_bounds(f_low, f_up, k)
            else:  # ICC(1,k), ICC(3,k)
                est = (msr - within) / msr
                low, high = 1.0 - 1.0 / f_low, 1.0 - 1.0 / f_up

    out = [np.array(x, dtype=float, copy=True) for x in (est, low, high, f_value, p_value)]
    for x in out:
        x[ms.constant] = np.nan
    est, low, high, f_value, p_value = out
    n_feat = est.shape[0]
    return ICCResult(
        icc=est,
        ci_low=low,
        ci_high=high,
        f_value=f_value,
        df1=np.full(n_feat, df1),
        df2=np.full(n_feat, df2),
        p_value=p_value,
        form=form,
        n_subjects=n,
        k=k,
        alpha=alpha,
    )


def icc(data: np.ndarray, form: str = "ICC(3,1)", alpha: float = 0.05,
        groups: Sequence | np.ndarray | None = None) -> ICCResult:
    """Intraclass correlation of every feature, vectorised.

    Parameters
    ----------
    data
        Array ``(n_features, n_subjects, k_raters)`` (or ``(n_subjects, k)``
        for one feature). Complete design: no NaN/inf.
    form
        One of :data:`FORMS` or an alias (module table); default ICC(3,1),
        two-way mixed consistency single measurement (Koo & Li 2016's usual
        choice for test-retest with the same scanner/protocol).
    alpha
        The CI has level ``1 - alpha`` (default 95 %).
    groups
        Optional batch label (e.g. the centre) of each subject: subjects nested in
        batches, so that differences between batches do not count as between-subject
        variance (module docstring). ``None``: the crossed design of Shrout & Fleiss.

    Returns
    -------
    ICCResult
        Arrays of length ``n_features``; NaN for zero-variance features.

    Raises
    ------
    ValueError
        Wrong shape, fewer than 2 subjects or raters, NaN/inf present, unknown
        form, alpha outside (0, 1), a missing batch label or no batch with two subjects.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    arr = _validate(data)
    canon = canonical_form(form, k=arr.shape[2])
    codes = None if groups is None else _group_codes(groups, arr.shape[1])
    return _from_mean_squares(_mean_squares(arr, codes), canon, alpha)


def robust_mask(
    result_or_frame: ICCResult | pd.DataFrame,
    threshold: float = 0.75,
    use_lower_bound: bool = True,
) -> np.ndarray | pd.Series:
    """Which features are reliable: ``ICC > threshold`` judged on the CI.

    By default the *lower* 95 % confidence bound must exceed ``threshold``
    (0.75, the "good" cut-off of Koo & Li 2016: < 0.5 poor, 0.5-0.75 moderate,
    0.75-0.9 good, > 0.9 excellent). Koo & Li recommend judging reliability on
    the 95 % CI rather than the point estimate: with the ~15-30 retest pairs
    typical in radiomics the CI is wide, so a feature is called robust only when
    we are confident its ICC exceeds the threshold. ``use_lower_bound=False``
    uses the point estimate instead. NaN (e.g. zero-variance features) is never
    robust.

    Parameters
    ----------
    result_or_frame
        An :class:`ICCResult`, or a frame with ``ci_low`` / ``icc`` columns
        (from :func:`radsurv.robustness.icc_tables.icc_frame` /
        :func:`~radsurv.robustness.icc_tables.icc_long`).

    Returns
    -------
    numpy.ndarray of bool for an ICCResult; a boolean Series on the frame's
    index for a frame.
    """
    col = "ci_low" if use_lower_bound else "icc"
    if isinstance(result_or_frame, ICCResult):
        values = np.asarray(getattr(result_or_frame, col), dtype=float)
        with np.errstate(invalid="ignore"):
            return np.greater(values, threshold) & ~np.isnan(values)
    if isinstance(result_or_frame, pd.DataFrame):
        if col not in result_or_frame.columns:
            raise ValueError(f"frame has no {col!r} column")
        values = result_or_frame[col].astype(float)
        return (values > threshold).fillna(False).astype(bool).rename("robust")
    raise TypeError(f"expected ICCResult or DataFrame, got {type(result_or_frame).__name__}")
