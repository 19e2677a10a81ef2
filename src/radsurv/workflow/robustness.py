"""Entry points of the robustness rules: test-retest, perturbation and discretisation ICCs
and the robust-feature list modelling uses."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radsurv.features.scan import guard_case
from radsurv.qc import read_status
from radsurv.workflow._io import write_json, write_tsv

if TYPE_CHECKING:
    import pandas as pd

    from radsurv.robustness.selection import RobustnessSettings

log = logging.getLogger(__name__)


def _scan_meta(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(status, scan_id/patient_id/session)`` of a converted or preprocessed scan folder."""
    status = read_status(folder / "status.json")
    return status, {k: status[k] for k in ("scan_id", "patient_id", "session")}


def _batches(patients: Sequence[str], clinical: str | Path | None, converted: Sequence[str] | str | None,
             scans: pd.DataFrame, harmonisation: Mapping[str, Any] | None) -> pd.Series | None:
    """Each patient's harmonisation batch when the robustness ICCs are computed within batches
    (``clinical`` given: harmonisation on and ``robustness.within_batch``), else ``None``."""
    if clinical is None or not harmonisation:
        return None
    import pandas as pd

    from radsurv.harmonisation.batches import converted_acquisition_facts, robustness_groups
    from radsurv.harmonisation.settings import HarmonisationSettings

    st = HarmonisationSettings.from_config(dict(harmonisation))
    clin = pd.read_csv(clinical, sep="\t", dtype=str, keep_default_na=False)
    facts = converted_acquisition_facts(converted, scans) if st.acquisition else None
    groups = robustness_groups([str(p) for p in patients], clin, st, facts)
    log.info("robustness ICC within batches: %s", groups.value_counts().sort_index().to_dict())
    return groups


def _batch_summary(groups: pd.Series | None, patients: Sequence[str]) -> dict[str, Any] | None:
    """The summary's ``within_batch`` entry: patients per batch among the ICC's patients."""
    if groups is None:
        return None
    counts = groups.reindex([str(p) for p in patients]).value_counts().sort_index()
    return {"batches": int(len(counts)), "patients_per_batch": {str(k): int(v) for k, v in counts.items()}}


def test_retest_icc(*, features: str | Path, scans: str | Path, settings: Mapping[str, Any], table: str | Path,
                    summary: str | Path, bland_altman: str | Path, clinical: str | Path | None = None,
                    converted: Sequence[str] | str | None = None,
                    harmonisation: Mapping[str, Any] | None = None) -> None:
    """Test-retest ICC per feature over the retest pairs (outcome never read).

    ``clinical`` (the standardised clinical table; given when harmonisation is on and
    ``robustness.within_batch``), ``harmonisation`` (its config block) and ``converted``
    (the first scans' folders, for acquisition-fact batches): the ICC with patients nested
    in their harmonisation batch.
    """
    import pandas as pd

    from radsurv.features.table import read_features
    from radsurv.report.plots import plot_bland_altman
    from radsurv.robustness.selection import RobustnessSettings
    from radsurv.robustness.testretest import retest_pairs, robustness_table

    rs = RobustnessSettings.from_config(dict(settings))
    fdf = read_features(features)
    scan_table = pd.read_csv(scans, sep="\t", dtype={"patient_id": str})
    pairs = retest_pairs(scan_table, rs.retest_max_days)
    groups = _batches(pairs["patient_id"].astype(str).tolist(), clinical, converted,
                      fdf.reset_index()[["scan_id", "patient_id", "session"]], harmonisation)
    icc, assessed = robustness_table(fdf, pairs, rs, groups=groups)
    write_tsv(icc, table)
    ok = pairs[pairs["test_scan"].isin(fdf.index) & pairs["retest_scan"].isin(fdf.index)]
    long = pd.concat([
        fdf.loc[ok["test_scan"]].assign(replicate="test"),
        fdf.loc[ok["retest_scan"]].assign(replicate="retest"),
    ]).reset_index()
    plot_bland_altman(long, icc if assessed else icc.iloc[0:0], bland_altman,
                      replicate="replicate", title="Test-retest")
    write_json({
        "analysis": "test-retest", "assessed": assessed, "pairs_found": int(len(pairs)),
        "n": int(len(ok)), "k": 2, "form": rs.icc_form, "n_features": int(len(icc)),
        "n_robust": int(icc["robust"].sum()) if assessed else None,
        "within_batch": _batch_summary(groups, ok["patient_id"].astype(str).tolist())}, summary, indent=2)


def perturb_scan(*, converted: str | Path, features: str | Path, seed: int, perturbation: Mapping[str, Any],
                 preprocessing: Mapping[str, Any], extraction: Mapping[str, Any]) -> None:
    """Features of N perturbed versions of one converted scan -> a per-scan JSON.

    Runs the pipeline's own preprocessing and extraction on each version
    (:func:`radsurv.robustness.perturbation.perturbed_features`). A scan that failed upstream,
    or fails here, is recorded with ``ok: false`` and its reason.
    """
    from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE
    from radsurv.robustness.perturbation import PerturbationSettings, perturbed_features, write_json

    src = Path(converted)
    status, meta = _scan_meta(src)
    if not status["ok"]:
        write_json(features, {**meta, "ok": False, "reason": status["reason"], "perturbations": []})
        return
    ps = PerturbationSettings.from_config(dict(perturbation))
    ok, reason, info = guard_case("perturbation", meta["scan_id"], lambda: perturbed_features(
        src / CONVERTED_IMAGE_FILE, src / CONVERTED_MASK_FILE, meta["scan_id"], int(seed), ps, dict(preprocessing),
        dict(extraction), patient_id=meta["patient_id"], session=meta["session"]))
    write_json(features, {**meta, "ok": ok, "reason": reason,
                          "perturbations": info.get("perturbations", []) if ok else [],
                          "noise_sd_hu": info.get("noise_sd_hu") if ok else None})


def perturbation_icc(*, scans: Sequence[str | Path], settings: Mapping[str, Any], table: str | Path,
                     features: str | Path, summary: str | Path, bland_altman: str | Path,
                     clinical: str | Path | None = None, converted: Sequence[str] | str | None = None,
                     harmonisation: Mapping[str, Any] | None = None) -> None:
    """ICC over the perturbed versions of each patient's first scan (Zwanenburg et al. 2019);
    ``clinical`` / ``converted`` / ``harmonisation`` as :func:`test_retest_icc` (patients nested
    in their harmonisation batch)."""
    import pandas as pd

    from radsurv.report.plots import plot_bland_altman
    from radsurv.robustness.perturbation import PerturbationSettings
    from radsurv.robustness.perturbation_icc import perturbation_long, perturbation_table
    from radsurv.robustness.selection import RobustnessSettings

    rs = RobustnessSettings.from_config(dict(settings))
    ps = PerturbationSettings.from_config(dict(settings).get("perturbation"))
    records = [json.loads(Path(f).read_text()) for f in scans]
    long, excluded = perturbation_long(records)
    first = pd.DataFrame([{"scan_id": r["scan_id"], "patient_id": str(r["patient_id"]), "session": 0} for r in records],
                         columns=["scan_id", "patient_id", "session"])
    patients = sorted(long["patient_id"].astype(str).unique())
    groups = _batches(patients, clinical, converted, first, harmonisation)
    icc, assessed = perturbation_table(long, rs, form=ps.icc_form, groups=groups)
    write_tsv(icc, table)
    write_tsv(long, features)
    plot_bland_altman(long, icc if assessed else icc.iloc[0:0], bland_altman,
                      replicate="perturbation", title="Perturbation")
    noise = [r.get("noise_sd_hu") for r in records if r.get("ok")]
    for e in excluded:
        log.warning("perturbation robustness: %s left out: %s", e["scan_id"], e["reason"])
    write_json({
        "analysis": "perturbation", "assessed": assessed, "n": int(long["patient_id"].nunique()),
        "k": ps.n, "form": ps.icc_form, "n_features": int(len(icc)),
        "n_robust": int(icc["robust"].sum()) if assessed else None,
        "excluded": excluded, "settings": {k: getattr(ps, k) for k in ps.__dataclass_fields__},
        "within_batch": _batch_summary(groups, patients),
        "noise_sd_hu_median": float(pd.Series(noise, dtype=float).median()) if noise else None}, summary, indent=2)


def discretise_scan(*, preprocessed: str | Path, features: str | Path, extraction: Mapping[str, Any],
                    preprocessing: Mapping[str, Any], discretisation: Mapping[str, Any]) -> None:
    """Features of one preprocessed scan under every discretisation setting -> JSON."""
    from radsurv.robustness.discretisation import DiscretisationSettings, discretised_features
    from radsurv.robustness.perturbation import write_json

    src = Path(preprocessed)
    status, meta = _scan_meta(src)
    if not status["ok"]:
        write_json(features, {**meta, "ok": False, "reason": status["reason"], "settings": []})
        return
    ds = DiscretisationSettings.from_config(dict(discretisation))
    result: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        result["settings"] = discretised_features(src, dict(extraction), dict(preprocessing), ds)
        return {}

    ok, reason, _ = guard_case("discretisation", meta["scan_id"], run)
    write_json(features, {**meta, "ok": ok, "reason": reason, "settings": result.get("settings", [])})


def discretisation_icc(*, scans: Sequence[str | Path], settings: Mapping[str, Any], table: str | Path,
                       summary: str | Path, plot: str | Path) -> None:
    """Which features keep the patients' ranking across discretisation settings (reported only)."""
    from radsurv.report.plots import plot_icc_by_class
    from radsurv.robustness.discretisation import discretisation_long, discretisation_table
    from radsurv.robustness.selection import RobustnessSettings, counts_by_class

    rs = RobustnessSettings.from_config(dict(settings))
    records = [json.loads(Path(f).read_text()) for f in scans]
    long, excluded = discretisation_long(records)
    icc, assessed = discretisation_table(long, rs)
    write_tsv(icc, table)
    plot_icc_by_class({"discretisation": icc} if assessed else {}, plot, rs.threshold,
                      rs.use_lower_bound, ylabel="ICC(3,1) of patient ranks across discretisations",
                      title="Does the feature keep the patients' ranking across discretisations?")
    write_json({
        "analysis": "discretisation", "assessed": assessed,
        "n": int(long["patient_id"].nunique()) if len(long) else 0,
        "settings": list(dict.fromkeys(long["setting"])) if len(long) else [],
        "n_features": int(len(icc)), "n_keep_ranking": int(icc["robust"].sum()) if assessed else None,
        "by_class": counts_by_class(icc).to_dict(orient="records") if assessed else [],
        "excluded": excluded}, summary, indent=2)


def select_robust_features(*, features: str | Path, analyses: Sequence[str], tables: Sequence[str | Path],
                           summaries: Sequence[str | Path], settings: Mapping[str, Any], icc: str | Path,
                           robust: str | Path, selection: str | Path, summary: str | Path,
                           plot: str | Path) -> None:
    """The robust-feature list modelling uses, from the ICC analyses that ran.

    ``analyses`` names the analyses (``test-retest`` / ``perturbation`` / ``discretisation``)
    whose result ``tables`` and ``summaries`` are given, in the same order. ``icc`` is all
    ICC analyses in one long table (column ``analysis``); ``selection`` the per-feature decision.
    """
    import pandas as pd

    from radsurv.features.names import feature_columns
    from radsurv.features.table import read_features
    from radsurv.report.plots import plot_icc_by_class
    from radsurv.robustness.selection import RobustnessSettings, combine

    rs = RobustnessSettings.from_config(dict(settings))
    cols = feature_columns(read_features(features))
    sums = {k: json.loads(Path(v).read_text()) for k, v in zip(analyses, summaries, strict=True)}
    loaded = {k: (pd.read_csv(v, sep="\t"), bool(sums[k]["assessed"])) for k, v in zip(analyses, tables, strict=True)
              if k in ("test-retest", "perturbation")}
    chosen, description = combine(loaded, rs, cols)
    nested = {k: v["within_batch"] for k, v in sums.items() if isinstance(v.get("within_batch"), Mapping)}
    if nested:
        description += (" ICCs computed with patients nested in their harmonisation batch (" + "; ".join(
            f"{k}: {v['batches']} batches" for k, v in nested.items())
            + "), so that differences between centres do not count as reproducibility.")
    write_tsv(chosen, selection)
    icc_long_table = pd.concat([t.assign(analysis=k) for k, (t, _) in loaded.items()], ignore_index=True)
    front = ["feature", "feature_class", "image_type", "analysis"]
    write_tsv(icc_long_table[front + [c for c in icc_long_table.columns if c not in front]], icc)
    robust_list = chosen.loc[chosen["robust"], "feature"].tolist()
    Path(robust).write_text("".join(f"{f}\n" for f in robust_list))
    plot_icc_by_class({k: t for k, (t, a) in loaded.items() if a}, plot, rs.threshold, rs.use_lower_bound)
    write_json(_robustness_summary(rs, loaded, sums, chosen, robust_list, description), summary, indent=2)
    log.info("%s %d of %d features robust.", description, len(robust_list), len(chosen))


def _robustness_summary(rs: RobustnessSettings, loaded: Mapping[str, tuple[pd.DataFrame, bool]],
                        sums: Mapping[str, Mapping[str, Any]], selection: pd.DataFrame, robust: list[str],
                        description: str) -> dict[str, Any]:
    """``robustness/summary.json``: what was assessed, decided and found (read by the report)."""
    from radsurv.robustness.selection import agreement, counts_by_class

    primary = "test-retest" if loaded.get("test-retest", (None, False))[1] else (
        "perturbation" if loaded.get("perturbation", (None, False))[1] else None)
    psum = sums.get(primary, {}) if primary else {}
    analyses = {}
    for k, (t, a) in loaded.items():
        analyses[k] = {**sums[k], "by_class": counts_by_class(t).to_dict(orient="records") if a else []}
    if "discretisation" in sums:
        analyses["discretisation"] = sums["discretisation"]
    return {
        # Keys read by the report (kept from the test-retest-only version).
        "assessed": primary is not None,
        "pairs_found": int(sums.get("test-retest", {}).get("pairs_found", 0)),
        "pairs_used": int(sums.get("test-retest", {}).get("n", 0)),
        "form": psum.get("form", rs.icc_form),
        "threshold": rs.threshold,
        "use_lower_bound": rs.use_lower_bound,
        "n_features": int(len(selection)),
        "n_robust": int(len(robust)),
        "by_class": counts_by_class(selection).to_dict(orient="records"),
        # What was done.
        "method": rs.method,
        "combine": rs.combine if rs.method == "both" else None,
        "description": description,
        "analyses": analyses,
        "agreement_test_retest_vs_perturbation": agreement(selection),
    }
