"""Feature robustness: test-retest, image perturbation, and discretisation.

Three analyses, none of which reads the outcome (so the robust-feature list
cannot leak survival information into modelling):

* **test-retest** (:func:`robustness_table`): ICC between the two scans of the
  retest patients (``icc_form``, default ICC(2,1)); only the retest subset.
* **perturbation** (:func:`perturbation_table`): ICC(1,1) over ``n`` perturbed
  versions of each patient's first scan (Zwanenburg et al. 2019; see
  :mod:`radsurv.robustness.perturbation`); usable when a cohort has no retest scans. Retest
  scans are not used.
* **discretisation** (:func:`discretisation_table`): does a feature keep the
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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from radsurv.features.extract import feature_class, feature_columns, image_type
from radsurv.robustness.icc import icc, icc_frame, icc_long, robust_mask

log = logging.getLogger(__name__)


METHODS = ("test-retest", "perturbation", "both")
COMBINE = ("intersection", "union")


@dataclass(frozen=True)
class RobustnessSettings:
    """``config['robustness']`` (the ``perturbation`` and ``discretisation``
    sub-blocks are read by :class:`radsurv.robustness.perturbation.PerturbationSettings` and
    :class:`DiscretisationSettings`)."""

    icc_form: str = "ICC(2,1)"
    threshold: float = 0.75
    use_lower_bound: bool = True
    retest_max_days: int = 30
    min_pairs: int = 5
    method: str = "test-retest"
    combine: str = "intersection"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"robustness method must be one of {METHODS}; got {self.method!r}")
        if self.combine not in COMBINE:
            raise ValueError(f"robustness combine must be one of {COMBINE}; got {self.combine!r}")

    @classmethod
    def from_config(cls, cfg: dict) -> RobustnessSettings:
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


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
                     settings: RobustnessSettings) -> tuple[pd.DataFrame, bool]:
    """ICC of every feature over the retest pairs; returns ``(table, assessed)``.

    ``features`` is indexed by ``scan_id`` (the matrix from
    :func:`radsurv.features.extract.assemble`). Pairs with a failed scan are dropped.
    When fewer than ``min_pairs`` complete pairs remain, no filtering is
    possible: every feature is kept, ``assessed`` is False and the report says so.
    """
    cols = feature_columns(features)
    ok = pairs[pairs["test_scan"].isin(features.index) & pairs["retest_scan"].isin(features.index)]
    base = pd.DataFrame({"feature": cols})
    base["feature_class"] = [feature_class(c) for c in cols]
    base["image_type"] = [image_type(c) for c in cols]
    if len(ok) < settings.min_pairs:
        log.warning("only %d complete test-retest pairs (< %d): robustness not assessed",
                    len(ok), settings.min_pairs)
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
    table = icc_frame(test[complete].astype(float), retest[complete].astype(float), form=settings.icc_form)
    table["robust"] = np.asarray(robust_mask(table, threshold=settings.threshold,
                                             use_lower_bound=settings.use_lower_bound), dtype=bool)
    out = base.merge(table, on="feature", how="left")
    out["robust"] = out["robust"].astype("boolean").fillna(False).astype(bool)
    out["form"] = settings.icc_form
    out["n"] = len(ok)
    out["k"] = 2
    log.info("%d of %d features robust (%s, threshold %.2f on %s) over %d pairs",
             int(out["robust"].sum()), len(out), settings.icc_form, settings.threshold,
             "lower 95% bound" if settings.use_lower_bound else "estimate", len(ok))
    return out[["feature", "feature_class", "image_type", "icc", "ci_low", "ci_high",
                "form", "n", "k", "robust"]], True


def counts_by_class(table: pd.DataFrame) -> pd.DataFrame:
    """Robust / total feature counts per image type and feature class."""
    grp = table.groupby(["image_type", "feature_class"])["robust"]
    out = pd.DataFrame({"robust": grp.sum().astype(int), "total": grp.size()})
    return out.reset_index()


# ------------------------------------------------------------------ shared helpers
TABLE_COLUMNS = ["feature", "feature_class", "image_type", "icc", "ci_low", "ci_high",
                 "form", "n", "k", "robust"]


def _feature_meta(cols: list[str]) -> pd.DataFrame:
    base = pd.DataFrame({"feature": cols})
    base["feature_class"] = [feature_class(c) for c in cols]
    base["image_type"] = [image_type(c) for c in cols]
    return base


def _not_assessed(cols: list[str], form: str, n: int, k: int) -> pd.DataFrame:
    out = _feature_meta(cols)
    for c in ("icc", "ci_low", "ci_high"):
        out[c] = np.nan
    out["form"], out["n"], out["k"], out["robust"] = form, n, k, True
    return out[TABLE_COLUMNS]


def _finish(cols: list[str], table: pd.DataFrame, settings: RobustnessSettings, form: str,
            n: int, k: int) -> pd.DataFrame:
    """Feature metadata + ICC table + robust flag; features absent from ``table`` are not robust."""
    table = table.copy()
    table["robust"] = np.asarray(robust_mask(table, threshold=settings.threshold,
                                             use_lower_bound=settings.use_lower_bound), dtype=bool)
    out = _feature_meta(cols).merge(table[["feature", "icc", "ci_low", "ci_high", "robust"]],
                                    on="feature", how="left")
    out["robust"] = out["robust"].astype("boolean").fillna(False).astype(bool)
    out["form"], out["n"], out["k"] = form, n, k
    return out[TABLE_COLUMNS]


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


# -------------------------------------------------------------------- perturbation
def perturbation_long(records: list[dict]) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Per-scan perturbation records -> long table and the excluded scans.

    Returns ``(long, excluded)``: ``long`` has ``scan_id, patient_id,
    perturbation`` and one column per feature, one row per perturbed version;
    only scans whose every version succeeded are kept (the ICC needs a complete
    design). ``excluded`` lists the others with the reason.
    """
    rows: list[dict] = []
    excluded: list[dict[str, str]] = []
    for rec in records:
        meta = {"scan_id": rec["scan_id"], "patient_id": str(rec["patient_id"])}
        if not rec.get("ok", False):
            excluded.append({**meta, "reason": rec.get("reason", "failed upstream")})
            continue
        bad = [p for p in rec["perturbations"] if not p["ok"]]
        if bad:
            excluded.append({**meta, "reason": f"{len(bad)} of {len(rec['perturbations'])} perturbed "
                             f"versions failed, e.g. {bad[0]['reason']}"})
            continue
        for p in rec["perturbations"]:
            rows.append({**meta, "perturbation": int(p["params"]["index"]), **p["features"]})
    long = pd.DataFrame(rows)
    if long.empty:
        long = pd.DataFrame(columns=["scan_id", "patient_id", "perturbation"])
    meta_cols = ["scan_id", "patient_id", "perturbation"]
    long = long[meta_cols + sorted(c for c in long.columns if c not in meta_cols)]
    return long.sort_values(["patient_id", "perturbation"]).reset_index(drop=True), excluded


def perturbation_table(long: pd.DataFrame, settings: RobustnessSettings,
                       form: str = "ICC(1,1)") -> tuple[pd.DataFrame, bool]:
    """ICC over the perturbed versions of each patient (k = versions per scan).

    ``long`` is the table of :func:`perturbation_long`. Default ICC(1,1), as
    Zwanenburg et al. (2019): versions are drawn independently per patient, so
    they are not crossed raters. A feature missing (NaN) in any version is not
    robust. Fewer than ``min_pairs`` patients: not assessed (every feature kept).
    """
    cols = [c for c in long.columns if c not in ("scan_id", "patient_id", "perturbation")]
    n = int(long["patient_id"].nunique()) if len(long) else 0
    k = int(long.groupby("patient_id").size().max()) if len(long) else 0
    if n < max(settings.min_pairs, 2) or k < 2:
        log.warning("perturbation robustness not assessed: %d complete patients (< %d)", n,
                    settings.min_pairs)
        return _not_assessed(cols, form, n, k), False
    values = long[cols].apply(pd.to_numeric, errors="coerce")
    complete = [c for c in cols if values[c].notna().all() and np.isfinite(values[c]).all()]
    frame = pd.concat([long[["patient_id", "perturbation"]], values[complete]], axis=1)
    table = icc_long(frame, subject="patient_id", rater="perturbation", features=complete, form=form)
    out = _finish(cols, table, settings, table["form"].iloc[0] if len(table) else form, n, k)
    log.info("perturbation: %d of %d features robust (%s over %d patients x %d versions)",
             int(out["robust"].sum()), len(out), form, n, k)
    return out, True


# ------------------------------------------------------------------ discretisation
@dataclass(frozen=True)
class DiscretisationSettings:
    """``config['robustness']['discretisation']``."""

    enabled: bool = True
    bin_widths: tuple[float, ...] = (10.0, 25.0, 50.0)
    bin_counts: tuple[int, ...] = (16, 32, 64)

    @classmethod
    def from_config(cls, cfg: dict | None) -> DiscretisationSettings:
        cfg = dict(cfg or {})
        return cls(enabled=bool(cfg.get("enabled", True)),
                   bin_widths=tuple(float(v) for v in cfg.get("bin_widths", cls.bin_widths)),
                   bin_counts=tuple(int(v) for v in cfg.get("bin_counts", cls.bin_counts)))

    def variants(self, extraction: dict) -> list[tuple[str, dict]]:
        """``(label, extraction config)`` per setting; shape features (independent
        of discretisation) are left out to save time."""
        base = {k: v for k, v in dict(extraction).items() if k not in ("bin_width", "bin_count")}
        classes = [c for c in (base.get("feature_classes") or
                               ["firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]) if c != "shape"]
        base["feature_classes"] = classes
        out = [(f"bin_width={w:g}", {**base, "bin_width": w}) for w in self.bin_widths]
        out += [(f"bin_count={c:d}", {**base, "bin_count": c}) for c in self.bin_counts]
        if len(out) < 2:
            raise ValueError("discretisation robustness needs at least 2 settings (bin widths + bin counts)")
        return out


def discretised_features(preprocessed_dir: str | Path, extraction: dict, preprocessing: dict,
                         settings: DiscretisationSettings) -> list[dict]:
    """Features of one preprocessed scan under every discretisation setting.

    Runs the workflow's own extraction step (:func:`radsurv.workflow.scan.extraction`:
    :func:`radsurv.features.extract.pyradiomics_params` + :func:`radsurv.features.extract.extract`
    on the same image and masks) with only the discretisation changed.
    """
    import json
    import tempfile

    from radsurv.workflow import scan as stages
    from radsurv.errors import CaseError

    out = []
    with tempfile.TemporaryDirectory(prefix="radsurv-discretise-") as tmp:
        for i, (label, cfg) in enumerate(settings.variants(extraction)):
            path = Path(tmp) / f"{i}.json"
            stages.extraction(preprocessed_dir, path, cfg, preprocessing)
            rec = json.loads(path.read_text())
            if not rec["ok"]:
                raise CaseError("discretisation", f"{label}: {rec['reason']}")
            out.append({"setting": label, "features": rec["features"]})
    return out


def discretisation_long(records: list[dict]) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Per-scan discretisation records -> long table (``scan_id, patient_id, setting`` + features)."""
    rows, excluded = [], []
    for rec in records:
        meta = {"scan_id": rec["scan_id"], "patient_id": str(rec["patient_id"])}
        if not rec.get("ok", False):
            excluded.append({**meta, "reason": rec.get("reason", "failed upstream")})
            continue
        for s in rec["settings"]:
            rows.append({**meta, "setting": s["setting"], **s["features"]})
    long = pd.DataFrame(rows)
    if long.empty:
        long = pd.DataFrame(columns=["scan_id", "patient_id", "setting"])
    return long, excluded


def discretisation_table(long: pd.DataFrame, settings: RobustnessSettings) -> tuple[pd.DataFrame, bool]:
    """Does each feature keep the patients' ranking across discretisation settings?

    Per setting the patients are ranked (average ranks for ties); the table
    gives the ICC(3,1) (consistency) of those ranks across all settings with its
    95% CI, the same for the fixed-bin-width and the fixed-bin-count settings
    separately, and the lowest and median pairwise Spearman correlation (with
    the worst pair). ``robust`` ("keeps its ranking") applies the robustness
    threshold to the ICC of ranks (its lower bound when ``use_lower_bound``).
    Values on different scales (entropy grows with the bin count) do not matter:
    only the order of the patients does.
    """
    meta = ("scan_id", "patient_id", "setting")
    cols = [c for c in long.columns if c not in meta]
    n = int(long["patient_id"].nunique()) if len(long) else 0
    labels = list(dict.fromkeys(long["setting"])) if len(long) else []
    k = len(labels)
    form = "ICC(3,1) of ranks"
    extra = ["icc_fixed_bin_width", "icc_fixed_bin_count", "spearman_min", "spearman_median", "worst_pair"]
    if n < max(settings.min_pairs, 3) or k < 2:
        out = _not_assessed(cols, form, n, k)
        for c in extra:
            out[c] = np.nan
        return out, False
    wide = long.set_index(["patient_id", "setting"])[cols].apply(pd.to_numeric, errors="coerce")
    # A patient missing a setting, or a feature NaN anywhere: the feature is left out (not robust).
    arr = np.stack([wide.xs(lab, level="setting").sort_index()[cols].to_numpy(float) for lab in labels],
                   axis=2)  # (patients, features, settings)
    ok = np.isfinite(arr).all(axis=(0, 2))
    ranks = pd.DataFrame(arr.reshape(n, -1)).rank(axis=0).to_numpy().reshape(arr.shape)
    data = ranks.transpose(1, 0, 2)[ok]  # (features, patients, settings)
    keep = [c for c, o in zip(cols, ok) if o]
    res = icc(data, form="ICC(3,1)") if keep else None
    table = pd.DataFrame({"feature": keep, "icc": res.icc if res else [], "ci_low": res.ci_low if res else [],
                          "ci_high": res.ci_high if res else []})
    out = _finish(cols, table, settings, form, n, k)
    fam = {"icc_fixed_bin_width": [i for i, lab in enumerate(labels) if lab.startswith("bin_width")],
           "icc_fixed_bin_count": [i for i, lab in enumerate(labels) if lab.startswith("bin_count")]}
    extras = pd.DataFrame({"feature": keep})
    for name, idx in fam.items():
        extras[name] = icc(data[:, :, idx], form="ICC(3,1)").icc if len(idx) >= 2 and keep else np.nan
    # Pairwise Spearman = Pearson of the ranks.
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    rz = data - data.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.square(rz).sum(axis=1))  # (features, settings)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.stack([(rz[:, :, i] * rz[:, :, j]).sum(axis=1) / (norm[:, i] * norm[:, j])
                        for i, j in pairs], axis=1)  # (features, pairs)
    if keep:
        allnan = np.isnan(rho).all(axis=1)  # constant feature: no ranking at all
        masked = np.where(np.isnan(rho), np.inf, rho)
        worst = masked.argmin(axis=1)
        extras["spearman_min"] = np.where(allnan, np.nan, masked.min(axis=1))
        extras["spearman_median"] = [np.nan if e else float(np.nanmedian(r)) for r, e in zip(rho, allnan)]
        extras["worst_pair"] = ["" if e else f"{labels[pairs[w][0]]} vs {labels[pairs[w][1]]}"
                                for w, e in zip(worst, allnan)]
    else:
        for c in extra[2:]:
            extras[c] = np.nan
    out = out.merge(extras, on="feature", how="left")
    log.info("discretisation: %d of %d features keep their patient ranking over %d settings (%d patients)",
             int(out["robust"].sum()), len(out), k, n)
    return out, True


def analysis_files(cfg: dict, kind: str) -> dict[str, str]:
    """Per-analysis result files of the workflow for ``config['robustness']``.

    ``kind`` ``table`` or ``summary``; keys ``test-retest``, ``perturbation``,
    ``discretisation`` for the analyses the config switches on.
    """
    method = cfg.get("method", "test-retest")
    if method not in METHODS:
        raise ValueError(f"robustness method must be one of {METHODS}; got {method!r}")
    names = (["test-retest"] if method in ("test-retest", "both") else []) + \
        (["perturbation"] if method in ("perturbation", "both") else [])
    if (cfg.get("discretisation") or {}).get("enabled", True):
        names.append("discretisation")
    stem = {"test-retest": "test_retest", "perturbation": "perturbation", "discretisation": "discretisation"}
    if kind == "table":
        return {n: f"results/robustness/{stem[n]}.tsv" for n in names}
    if kind == "summary":
        return {n: f"results/robustness/{stem[n]}_summary.json" for n in names}
    raise ValueError(f"kind must be 'table' or 'summary'; got {kind!r}")


# ------------------------------------------------------------------------ combining
def combine(tables: dict[str, tuple[pd.DataFrame, bool]], settings: RobustnessSettings,
            all_features: list[str]) -> tuple[pd.DataFrame, str]:
    """The robust list modelling uses, from the test-retest and/or perturbation tables.

    Returns ``(selection, description)``: ``selection`` has one row per
    feature of the modelling matrix with ``robust_<analysis>`` (NA when that
    analysis was not run) and the final ``robust``; ``description`` says in one
    sentence how the list was made.
    """
    sel = _feature_meta(list(all_features))
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
