"""ICC of feature tables: the pandas front-ends of :func:`radsurv.robustness.icc.icc`.

:func:`icc_frame` takes a test and a retest table (subjects x features), :func:`icc_long`
a long table (one row per subject x rater); both align the subjects and features, refuse
incomplete designs with a message naming what is missing, take each subject's batch by label
(``groups``: subjects nested in batches, see :mod:`radsurv.robustness.icc`) and return one
row per feature. The estimator, its forms and intervals live in :mod:`radsurv.robustness.icc`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from radsurv.robustness.icc import ICCResult, icc

__all__ = ["batch_count", "icc_frame", "icc_long"]


def _result_frame(features: Sequence, res: ICCResult) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": list(features),
            "icc": res.icc,
            "ci_low": res.ci_low,
            "ci_high": res.ci_high,
            "form": res.form,
            "n": res.n_subjects,
            "k": res.k,
        }
    )


def _numeric_block(frame: pd.DataFrame, name: str) -> np.ndarray:
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ValueError(f"{name} has non-numeric feature columns: {non_numeric[:10]}")
    return frame.to_numpy(dtype=float)


def batch_count(groups: pd.Series | None, subjects: Sequence) -> int:
    """How many batches ``subjects`` come from (``groups``: batch label keyed by subject; a
    subject without a label counts as one more batch); 1 without ``groups``. The ICC within
    batches has ``len(subjects) - batch_count(...)`` subject degrees of freedom."""
    if groups is None or not len(subjects):
        return 1
    return int(pd.Series(groups, dtype=object).reindex(list(subjects)).fillna("").nunique())


def _subject_groups(groups: pd.Series | dict | None, subjects: Sequence) -> list | None:
    """The batch label of each subject (``groups`` keyed by subject), in ``subjects``' order."""
    if groups is None:
        return None
    lookup = pd.Series(groups, dtype=object)
    missing = [s for s in subjects if s not in lookup.index]
    if missing:
        raise ValueError(f"{len(missing)} subject(s) have no batch label in groups, e.g. {missing[:3]}")
    return [lookup[s] for s in subjects]


def icc_frame(
    test: pd.DataFrame,
    retest: pd.DataFrame,
    form: str = "ICC(3,1)",
    alpha: float = 0.05,
    groups: pd.Series | dict | None = None,
) -> pd.DataFrame:
    """ICC of each feature between a test and a retest feature table.

    Both frames are indexed by subject with one column per feature. They are
    aligned on the subjects and features present in *both* (in ``test``'s
    order); subjects or features present in only one frame are dropped with a
    :class:`UserWarning` saying how many. ``groups`` (batch label keyed by
    subject, e.g. the centre): subjects nested in batches (see :func:`icc`).

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``feature, icc, ci_low, ci_high, form, n, k``
        (``k = 2``).

    Raises
    ------
    ValueError
        No (or fewer than 2) common subjects, no common features, duplicated
        subject labels, non-numeric features, NaN values, or the errors of
        :func:`icc`.
    """
    for name, fr in (("test", test), ("retest", retest)):
        if fr.index.has_duplicates:
            dup = fr.index[fr.index.duplicated()].unique()[:5].tolist()
            raise ValueError(f"{name} has duplicated subject labels, e.g. {dup}")
        if fr.columns.has_duplicates:
            raise ValueError(f"{name} has duplicated feature columns")
    subjects = test.index[test.index.isin(retest.index)]
    features = test.columns[test.columns.isin(retest.columns)]
    if len(subjects) == 0:
        raise ValueError(
            "test and retest share no subjects (index labels); "
            f"test has e.g. {test.index[:3].tolist()}, retest has e.g. {retest.index[:3].tolist()}"
        )
    if len(features) == 0:
        raise ValueError(
            "test and retest share no feature columns; "
            f"test has e.g. {test.columns[:3].tolist()}, retest has e.g. {retest.columns[:3].tolist()}"
        )
    if len(subjects) < 2:
        raise ValueError(f"test and retest share only {len(subjects)} subject; the ICC needs at least 2")
    dropped_s = len(test.index) + len(retest.index) - 2 * len(subjects)
    dropped_f = len(test.columns) + len(retest.columns) - 2 * len(features)
    if dropped_s or dropped_f:
        warnings.warn(
            f"icc_frame: using the {len(subjects)} subjects and {len(features)} features common to "
            f"test and retest ({dropped_s} subject rows and {dropped_f} feature columns present in "
            "only one frame were dropped)",
            UserWarning,
            stacklevel=2,
        )
    a = _numeric_block(test.loc[subjects, features], "test")
    b = _numeric_block(retest.loc[subjects, features], "retest")
    arr = np.stack([a.T, b.T], axis=2)  # (features, subjects, 2)
    return _result_frame(features, icc(arr, form=form, alpha=alpha,
                                       groups=_subject_groups(groups, list(subjects))))


def icc_long(
    df: pd.DataFrame,
    subject: str,
    rater: str,
    features: Sequence[str] | None = None,
    form: str = "ICC(3,1)",
    alpha: float = 0.05,
    groups: pd.Series | dict | None = None,
) -> pd.DataFrame:
    """ICC of each feature from a long table (one row per subject x rater).

    For k >= 2 raters (scans, perturbations). ``features`` defaults to every
    column other than ``subject`` and ``rater``. Every subject must have
    exactly one row per rater (complete, balanced design). ``groups`` (batch
    label keyed by subject): subjects nested in batches (see :func:`icc`).

    Returns the same frame as :func:`icc_frame` (``n`` subjects, ``k`` raters).

    Raises
    ------
    ValueError
        Missing columns, duplicated (subject, rater) rows, an unbalanced design
        (reported as missing values), or the errors of :func:`icc`.
    """
    missing = [c for c in (subject, rater) if c not in df.columns]
    if missing:
        raise ValueError(f"columns not in df: {missing}")
    if features is None:
        features = [c for c in df.columns if c not in (subject, rater)]
    features = list(features)
    absent = [c for c in features if c not in df.columns]
    if absent:
        raise ValueError(f"feature columns not in df: {absent[:10]}")
    if not features:
        raise ValueError("no feature columns")
    keyed = df.set_index([subject, rater])[features]
    if keyed.index.has_duplicates:
        dup = keyed.index[keyed.index.duplicated()][:5].tolist()
        raise ValueError(f"duplicated ({subject}, {rater}) rows, e.g. {dup}")
    _numeric_block(keyed, "df")
    wide = keyed.unstack(rater)  # rows: subjects; columns: (feature, rater)
    raters = wide.columns.get_level_values(1).unique()
    wide = wide.reindex(columns=pd.MultiIndex.from_product([features, raters]))
    n = wide.shape[0]
    arr = wide.to_numpy(dtype=float).reshape(n, len(features), len(raters)).transpose(1, 0, 2)
    absent_cells = int(wide.isna().sum().sum() - keyed.isna().sum().sum())
    if absent_cells:
        raise ValueError(
            f"unbalanced design: {absent_cells} (subject, rater, feature) cells have no row in df "
            f"({n} subjects x {len(raters)} raters); the ICC needs every subject rated by every rater"
        )
    return _result_frame(features, icc(arr, form=form, alpha=alpha,
                                       groups=_subject_groups(groups, list(wide.index))))
