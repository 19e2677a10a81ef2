"""Feature robustness: settings, the robust list modelling uses, and parse-time helpers.

Three analyses, none of which reads the outcome (so the robust-feature list
cannot leak survival information into modelling):

* **test-retest** (:func:`radsurv.robustness.testretest.robustness_table`): ICC between the two scans of the
  retest patients (``icc_form``, default ICC(2,1)); only the retest subset.
* **perturbation** (:func:`radsurv.robustness.perturbation_icc.perturbation_table`): ICC(1,1) over ``n`` perturbed
  versions of each patient's first scan (Zwanenburg et al. 2019; see
  :mod:`radsurv.robustness.perturbation`); usable when a cohort has no retest scans. Retest
  scans are not used.
* **discretisation** (:func:`radsurv.robustness.discretisation.discretisation_table`): does a feature keep the
  *ranking* of patients when the grey-level discretisation changes (several
  fixed bin widths and fixed bin counts)? ICC(3,1) of the patients' ranks
  across the settings, and the worst pairwise Spearman correlation. Reported
  only; it does not change the robust list.

The robust list modelling uses (:func:`combine`): ``method: test-retest`` or
``perturbation`` uses that analysis; ``both`` combines the two robust sets by
``combine: intersection`` (default: robust to re-scanning *and* to
perturbation) or ``union``. An analysis with too few patients (``min_pairs``)
is "not assessed": with ``both`` the other analysis decides alone; when
nothing could be assessed every feature is kept and the summary says so.

Where things live: this module holds the settings, :func:`combine`,
:func:`agreement` and :func:`first_scans` (which the workflow calls while Snakemake
parses), so it imports neither scipy nor SimpleITK. The ICC itself is :mod:`radsurv.robustness.icc`; the shared table
layout :mod:`radsurv.robustness.table`; the perturbed images
:mod:`radsurv.robustness.perturbation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from radsurv.features.names import feature_class, image_type
from radsurv.schema import default

METHODS = ("test-retest", "perturbation", "both")
COMBINE = ("intersection", "union")


@dataclass(frozen=True)
class RobustnessSettings:
    """``config['robustness']`` (the ``perturbation`` and ``discretisation``
    sub-blocks are read by :class:`radsurv.robustness.perturbation.PerturbationSettings` and
    :class:`radsurv.robustness.discretisation.DiscretisationSettings`)."""

    icc_form: str = default("robustness", "icc_form")
    threshold: float = default("robustness", "threshold")
    use_lower_bound: bool = default("robustness", "use_lower_bound")
    within_batch: bool = default("robustness", "within_batch")
    retest_max_days: int = default("robustness", "retest_max_days")
    min_pairs: int = default("robustness", "min_pairs")
    method: str = default("robustness", "method")
    combine: str = default("robustness", "combine")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"robustness method must be one of {METHODS}; got {self.method!r}")
        if self.combine not in COMBINE:
            raise ValueError(f"robustness combine must be one of {COMBINE}; got {self.combine!r}")

    @classmethod
    def from_config(cls, cfg: dict) -> RobustnessSettings:
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


def feature_meta(cols: list[str]) -> pd.DataFrame:
    """One row per feature name: ``feature``, ``feature_class``, ``image_type``."""
    base = pd.DataFrame({"feature": cols})
    base["feature_class"] = [feature_class(c) for c in cols]
    base["image_type"] = [image_type(c) for c in cols]
    return base


def counts_by_class(table: pd.DataFrame) -> pd.DataFrame:
    """Robust / total feature counts per image type and feature class."""
    grp = table.groupby(["image_type", "feature_class"])["robust"]
    out = pd.DataFrame({"robust": grp.sum().astype(int), "total": grp.size()})
    return out.reset_index()


def first_scans(scans: pd.DataFrame) -> list[str]:
    """Each patient's first scan (lowest ``session``): the scan modelling uses.

    Perturbation and discretisation robustness are computed on these, so a
    retest scan never takes part in them.
    """
    if scans.empty:
        return []
    order = scans.assign(_session=pd.to_numeric(scans["session"]))
    first = order.sort_values(["patient_id", "_session", "scan_id"]).groupby("patient_id", sort=True).head(1)
    return sorted(first["scan_id"].astype(str))


# ------------------------------------------------------------------------ combining
def combine(tables: dict[str, tuple[pd.DataFrame, bool]], settings: RobustnessSettings,
            all_features: list[str]) -> tuple[pd.DataFrame, str]:
    """The robust list modelling uses, from the test-retest and/or perturbation tables.

    Returns ``(selection, description)``: ``selection`` has one row per
    feature of the modelling matrix with ``robust_<analysis>`` (NA when that
    analysis was not run) and the final ``robust``; ``description`` says in one
    sentence how the list was made.
    """
    sel = feature_meta(list(all_features))
    used, assessed_names = [], []
    for name in ("test-retest", "perturbation"):
        if name not in tables:
            continue
        table, assessed = tables[name]
        col = f"robust_{name.replace('-', '_')}"
        flags = table.set_index("feature")["robust"]
        sel[col] = sel["feature"].map(flags).astype("boolean").fillna(False) if assessed else pd.NA
        used.append(name)
        if assessed:
            assessed_names.append(name)
    cols = [f"robust_{n.replace('-', '_')}" for n in assessed_names]
    crit = f"{'lower 95% bound of the ICC' if settings.use_lower_bound else 'ICC'} > {settings.threshold:g}"
    if not cols:
        sel["robust"] = True
        desc = (f"Robustness ({', '.join(used) or 'none'}) could not be assessed (too few patients): "
                "every feature is offered to the model.")
    elif len(cols) == 1:
        sel["robust"] = sel[cols[0]].astype(bool)
        missing = [n for n in used if n not in assessed_names]
        desc = (f"A feature is robust when its {assessed_names[0]} {crit}"
                + (f" ({missing[0]} could not be assessed)." if missing else "."))
    else:
        a, b = sel[cols[0]].astype(bool), sel[cols[1]].astype(bool)
        sel["robust"] = (a & b) if settings.combine == "intersection" else (a | b)
        word = "and" if settings.combine == "intersection" else "or"
        desc = (f"A feature is robust when its test-retest {crit} {word} its perturbation {crit} "
                f"({settings.combine} of the two robust sets).")
    sel["robust"] = sel["robust"].astype(bool)
    return sel, desc


def agreement(selection: pd.DataFrame) -> dict[str, object] | None:
    """Overlap of the test-retest and perturbation robust sets (when both were assessed)."""
    a_col, b_col = "robust_test_retest", "robust_perturbation"
    if a_col not in selection or b_col not in selection:
        return None
    if selection[a_col].isna().all() or selection[b_col].isna().all():
        return None
    a, b = selection[a_col].astype(bool), selection[b_col].astype(bool)
    both, a_only, b_only = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
    neither = int((~a & ~b).sum())
    n = both + a_only + b_only + neither
    po = (both + neither) / n if n else float("nan")
    pe = ((a.sum() * b.sum()) + ((~a).sum() * (~b).sum())) / n**2 if n else float("nan")
    kappa = (po - pe) / (1 - pe) if n and pe < 1 else float("nan")
    union = both + a_only + b_only
    return {"both": both, "test_retest_only": a_only, "perturbation_only": b_only, "neither": neither,
            "jaccard": both / union if union else float("nan"), "percent_agreement": po,
            "cohen_kappa": float(kappa)}
