"""Discretisation robustness: does a feature keep the patients' ranking across bin settings?

Each patient's first scan is extracted again under several fixed bin widths
and fixed bin counts (:func:`discretised_features`, one job per scan); the
records become a long table (:func:`discretisation_long`) and
:func:`discretisation_table` gives, per feature, the ICC(3,1) of the
patients' ranks across the settings and the pairwise Spearman correlations.
Reported only: it does not change the robust list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from radsurv.robustness.icc import icc
from radsurv.robustness.selection import RobustnessSettings
from radsurv.robustness.table import finish_table, not_assessed_table
from radsurv.schema import default

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscretisationSettings:
    """``config['robustness']['discretisation']``; defaults from the config schema."""

    enabled: bool = default("robustness", "discretisation", "enabled")
    bin_widths: tuple[float, ...] = tuple(float(v) for v in default("robustness", "discretisation", "bin_widths"))
    bin_counts: tuple[int, ...] = tuple(int(v) for v in default("robustness", "discretisation", "bin_counts"))

    @classmethod
    def from_config(cls, cfg: dict | None) -> DiscretisationSettings:
        cfg = dict(cfg or {})
        return cls(enabled=bool(cfg.get("enabled", cls.enabled)),
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

    Runs the workflow's own extraction step (:func:`radsurv.features.scan.extraction`:
    :func:`radsurv.features.extract.pyradiomics_params` + :func:`radsurv.features.extract.extract`
    on the same image and masks) with only the discretisation changed.
    """
    import json
    import tempfile

    from radsurv.errors import CaseError
    from radsurv.features import scan as per_scan

    out = []
    with tempfile.TemporaryDirectory(prefix="radsurv-discretise-") as tmp:
        for i, (label, cfg) in enumerate(settings.variants(extraction)):
            path = Path(tmp) / f"{i}.json"
            per_scan.extraction(preprocessed_dir, path, cfg, preprocessing)
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


#: The ICC form named in the discretisation table.
RANK_FORM = "ICC(3,1) of ranks"
#: Columns the discretisation table has beyond :data:`radsurv.robustness.table.TABLE_COLUMNS`.
EXTRA_COLUMNS = ["icc_fixed_bin_width", "icc_fixed_bin_count", "spearman_min", "spearman_median", "worst_pair"]


def _patient_ranks(long: pd.DataFrame, cols: list[str], labels: list[str], n: int) -> tuple[np.ndarray, list[str]]:
    """Patients' ranks per feature and setting: ``(data, keep)``.

    ``data`` has shape ``(features, patients, settings)`` for the features in
    ``keep``: a patient missing a setting, or a feature NaN anywhere, leaves
    the feature out (not robust). Ties get average ranks.
    """
    wide = long.set_index(["patient_id", "setting"])[cols].apply(pd.to_numeric, errors="coerce")
    arr = np.stack([wide.xs(lab, level="setting").sort_index()[cols].to_numpy(float) for lab in labels],
                   axis=2)  # (patients, features, settings)
    ok = np.isfinite(arr).all(axis=(0, 2))
    ranks = pd.DataFrame(arr.reshape(n, -1)).rank(axis=0).to_numpy().reshape(arr.shape)
    data = ranks.transpose(1, 0, 2)[ok]  # (features, patients, settings)
    keep = [c for c, o in zip(cols, ok) if o]
    return data, keep


def _rank_icc(data: np.ndarray, keep: list[str]) -> pd.DataFrame:
    """ICC(3,1) of the ranks across all settings, with its 95% CI (``feature, icc, ci_low, ci_high``)."""
    res = icc(data, form="ICC(3,1)") if keep else None
    return pd.DataFrame({"feature": keep, "icc": res.icc if res else [], "ci_low": res.ci_low if res else [],
                         "ci_high": res.ci_high if res else []})


def _family_iccs(data: np.ndarray, keep: list[str], labels: list[str]) -> pd.DataFrame:
    """ICC(3,1) of the ranks over the fixed-bin-width and over the fixed-bin-count settings apart
    (NaN when a family has fewer than 2 settings)."""
    fam = {"icc_fixed_bin_width": [i for i, lab in enumerate(labels) if lab.startswith("bin_width")],
           "icc_fixed_bin_count": [i for i, lab in enumerate(labels) if lab.startswith("bin_count")]}
    extras = pd.DataFrame({"feature": keep})
    for name, idx in fam.items():
        extras[name] = icc(data[:, :, idx], form="ICC(3,1)").icc if len(idx) >= 2 and keep else np.nan
    return extras


def _pairwise_spearman(data: np.ndarray, keep: list[str], labels: list[str], extras: pd.DataFrame) -> pd.DataFrame:
    """Add the lowest and median pairwise Spearman correlation between settings and the worst pair
    to ``extras`` (Spearman = Pearson of the ranks; a constant feature has no ranking: NaN)."""
    k = len(labels)
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
        for c in EXTRA_COLUMNS[2:]:
            extras[c] = np.nan
    return extras


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
    if n < max(settings.min_pairs, 3) or k < 2:
        out = not_assessed_table(cols, RANK_FORM, n, k)
        for c in EXTRA_COLUMNS:
            out[c] = np.nan
        return out, False
    data, keep = _patient_ranks(long, cols, labels, n)
    out = finish_table(cols, _rank_icc(data, keep), settings, RANK_FORM, n, k)
    extras = _pairwise_spearman(data, keep, labels, _family_iccs(data, keep, labels))
    out = out.merge(extras, on="feature", how="left")
    log.info("discretisation: %d of %d features keep their patient ranking over %d settings (%d patients)",
             int(out["robust"].sum()), len(out), k, n)
    return out, True
