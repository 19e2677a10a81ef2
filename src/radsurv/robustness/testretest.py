"""Test-retest robustness: ICC between the two scans of the retest patients.

:func:`retest_pairs` finds each patient's first scan and their next scan within
``retest_max_days``; :func:`robustness_table` computes the ICC (``icc_form``,
default ICC(2,1)) of every feature over those pairs. Only the retest subset
takes part, and the outcome is never read.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from radsurv.features.names import feature_class, feature_columns, image_type
from radsurv.robustness.icc import robust_mask
from radsurv.robustness.icc_tables import batch_count, icc_frame
from radsurv.robustness.selection import RobustnessSettings

log = logging.getLogger(__name__)


def retest_pairs(scans: pd.DataFrame, max_days: int) -> pd.DataFrame:
    """Test-retest pairs: each patient's first scan and their next scan within ``max_days``.

    ``scans`` needs ``scan_id``, ``patient_id``, ``session`` and ``days_from_first``.
    """
    rows = []
    for pid, grp in scans.sort_values(["patient_id", "session"]).groupby("patient_id", sort=True):
        if len(grp) < 2:
            continue
        first, second = grp.iloc[0], grp.iloc[1]
        days = int(second["days_from_first"]) - int(first["days_from_first"])
        if days <= max_days:
            rows.append({"patient_id": pid, "test_scan": first["scan_id"],
                         "retest_scan": second["scan_id"], "days_apart": days})
    return pd.DataFrame(rows, columns=["patient_id", "test_scan", "retest_scan", "days_apart"])


def robustness_table(features: pd.DataFrame, pairs: pd.DataFrame,
                     settings: RobustnessSettings, groups: pd.Series | None = None) -> tuple[pd.DataFrame, bool]:
    """ICC of every feature over the retest pairs; returns ``(table, assessed)``.

    ``features`` is indexed by ``scan_id`` (the matrix from
    :func:`radsurv.features.matrix.assemble`). Pairs with a failed scan are dropped.
    ``groups``: each patient's batch (centre or scanner; indexed by patient id): the ICC
    with patients nested in their batch (:func:`radsurv.robustness.icc.icc`), so that
    differences between centres do not count as reproducibility.
    When fewer than ``min_pairs`` complete pairs remain, no filtering is
    possible: every feature is kept, ``assessed`` is False and the report says so.
    """
    cols = feature_columns(features)
    ok = pairs[pairs["test_scan"].isin(features.index) & pairs["retest_scan"].isin(features.index)]
    base = pd.DataFrame({"feature": cols})
    base["feature_class"] = [feature_class(c) for c in cols]
    base["image_type"] = [image_type(c) for c in cols]
    n_batches = batch_count(groups, ok["patient_id"])
    if len(ok) < settings.min_pairs or len(ok) - n_batches < 2:
        log.warning("only %d complete test-retest pairs (< %d)%s: robustness not assessed",
                    len(ok), settings.min_pairs,
                    "" if groups is None else f" in {n_batches} batches (within batches it needs pairs - batches >= 2)")
        for c in ("icc", "ci_low", "ci_high"):
            base[c] = np.nan
        base["form"] = settings.icc_form
        base["n"] = len(ok)
        base["k"] = 2
        base["robust"] = True
        return base, False
    test = features.loc[ok["test_scan"], cols].set_axis(ok["patient_id"].to_numpy(), axis=0)
    retest = features.loc[ok["retest_scan"], cols].set_axis(ok["patient_id"].to_numpy(), axis=0)
    # A feature missing in any scan of a pair cannot be assessed: not robust.
    complete = [c for c in cols if test[c].notna().all() and retest[c].notna().all()]
    table = icc_frame(test[complete].astype(float), retest[complete].astype(float), form=settings.icc_form,
                      groups=groups)
    table["robust"] = np.asarray(robust_mask(table, threshold=settings.threshold,
                                             use_lower_bound=settings.use_lower_bound), dtype=bool)
    out = base.merge(table, on="feature", how="left")
    out["robust"] = out["robust"].astype("boolean").fillna(False).astype(bool)
    out["form"] = settings.icc_form
    out["n"] = len(ok)
    out["k"] = 2
    log.info("%d of %d features robust (%s, threshold %.2f on %s) over %d pairs%s",
             int(out["robust"].sum()), len(out), settings.icc_form, settings.threshold,
             "lower 95% bound" if settings.use_lower_bound else "estimate", len(ok),
             "" if groups is None else f", patients nested in {n_batches} batches")
    return out[["feature", "feature_class", "image_type", "icc", "ci_low", "ci_high",
                "form", "n", "k", "robust"]], True
