"""Harmonisation through the survival study (radsurv.modelling.study.run_study, the path of rule
fit_models) and the workflow's harmonisation entry points."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from radsurv.harmonisation.combat import ComBatHarmoniser
from radsurv.harmonisation.settings import (
    BATCH_COLUMN,
    HarmonisationInput,
    HarmonisationSettings,
    read_harmonisation,
)
from radsurv.modelling.config import StudyConfig
from radsurv.modelling.data import prepare
from radsurv.modelling.study import run_study
from radsurv.workflow import rules as wf

FAST = dict(inner_folds=3, bootstrap=0, horizons=(0.5, 1.0), max_features=(2, 4), penalizer=(1.0,),
            volume_feature="none")


def settings(**kw: object) -> HarmonisationSettings:
    block = {"enabled": True, "batch": {"column": "centre"}, **kw}
    return HarmonisationSettings.from_config(block)


def planted(seed: int = 12, n_a: int = 150, n_b: int = 150, n_c: int = 100, p: int = 20
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three centres; f0 carries the biology; centre C's scanner multiplies the noise features
    by 8 and shifts every feature (survival independent of the centre)."""
    rng = np.random.default_rng(seed)
    n = n_a + n_b + n_c
    bio = rng.normal(size=(n, p))
    centre = np.repeat(["A", "B", "C"], [n_a, n_b, n_c])
    X = bio.copy()
    X[centre == "B"] += 1.0
    X[centre == "C", 1:] = X[centre == "C", 1:] * 8.0 + 3.0
    X[centre == "C", 0] += 2.0
    t = rng.exponential(1.0 / np.exp(1.0 * bio[:, 0]))
    c = rng.exponential(2.0, n)
    ids = [f"p{i:03d}" for i in range(n)]
    feats = pd.DataFrame(X + 10.0, columns=[f"f{j}" for j in range(p)], index=pd.Index(ids, name="patient_id"))
    clin = pd.DataFrame({"patient_id": ids, "time": np.minimum(t, c), "event": (t <= c).astype(int),
                         "centre": centre})
    return feats, clin


def _harm(clin: pd.DataFrame, st: HarmonisationSettings) -> HarmonisationInput:
    return HarmonisationInput(st, pd.Series(clin["centre"].to_numpy(), index=clin["patient_id"], dtype=object))


def _c(res: object) -> float:
    return float(res.metrics["c_index_test"])  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_whole_cohort_harmonisation_is_optimistic_through_run_study():
    """Development centres A+B, validation centre C (design split by centre). Harmonising the
    whole cohort before the study corrects C with its own held-out means and spreads; the
    study's in-fold ComBat cannot (C is unseen: passthrough, flagged) and gives the honest,
    lower C-index."""
    feats, clin = planted()
    cfg = StudyConfig(design="split", split_by="centre", validation_values=("C",), seed=3, **FAST)
    cands = list(feats.columns)
    honest = run_study(feats, clin, cands, cfg, harmonisation=_harm(clin, settings()))
    whole_h = ComBatHarmoniser(batch_column="centre").fit(feats.assign(centre=clin["centre"].to_numpy()))
    leaked = whole_h.transform(feats.assign(centre=clin["centre"].to_numpy()))
    whole = run_study(leaked, clin, cands, cfg)
    assert _c(whole) - _c(honest) > 0.05, (_c(whole), _c(honest))
    # the final model's ComBat saw the development patients only; C was not estimated
    fm = honest.metrics["harmonisation"]["final_model"]
    assert {b["batch"]: b["n_train"] for b in fm["batches"]} == {"A": 150, "B": 150}
    assert honest.metrics["harmonisation"]["unseen_batch"] == "passthrough"
    # the saved final pipeline starts its radiomics branch with ComBat and needs the batch column
    pipe = honest.final_models["radiomics"]["pipeline"]
    rad = pipe.named_steps["features"].named_transformers_["rad"]
    assert list(rad.named_steps)[0] == "harmonise"
    # refuse: the study stops on the unseen centre instead of passing it through
    with pytest.raises(ValueError, match="ComBat cannot correct patients from batch"):
        run_study(feats, clin, cands, cfg, harmonisation=_harm(clin, settings(unseen_batch="refuse")))


def test_combat_is_refit_on_every_outer_and_inner_training_fold(monkeypatch):
    """In CV, every ComBat fit except the final models' sees training patients only: the fits
    of the outer folds and of their inner tuning folds never contain the held-out patients."""
    feats, clin = planted(n_a=40, n_b=40, n_c=40, p=6)
    seen: list[frozenset[str]] = []
    orig = ComBatHarmoniser.fit

    def spy(self: ComBatHarmoniser, X: pd.DataFrame, y: object = None) -> ComBatHarmoniser:
        seen.append(frozenset(X.index.astype(str)))
        return orig(self, X, y)

    monkeypatch.setattr(ComBatHarmoniser, "fit", spy)
    cfg = StudyConfig(design="cv", cv_folds=3, cv_repeats=1, seed=5, **FAST)
    res = run_study(feats, clin, list(feats.columns), cfg, harmonisation=_harm(clin, settings()))
    n = len(feats)
    sizes = sorted(len(s) for s in seen)
    full = [s for s in seen if len(s) == n]
    # outer training folds (~2/3 of n) and inner training folds (~4/9 of n) ...
    assert any(abs(s - 2 * n / 3) <= 2 for s in sizes) and any(abs(s - 4 * n / 9) <= 3 for s in sizes)
    # ... and full-cohort fits only for the final models (tuning folds + refit of the final radiomics model)
    assert len(full) == 1, len(full)
    # held-out patients of each outer fold were never in a fit of that fold
    pred = res.predictions_all[res.predictions_all["model"] == "radiomics"]
    for _, g in pred.groupby("fold"):
        held = frozenset(g["patient_id"].astype(str))
        assert any(not (s & held) and len(s) == n - len(held) for s in seen)


def test_qc_rows_for_unlabelled_patients_small_batches_and_missing_protected():
    feats, clin = planted(n_a=30, n_b=30, n_c=30, p=4)
    clin["age"] = np.linspace(40, 80, len(clin)).round().astype(int).astype(str)
    clin.loc[clin.index[0], "age"] = ""
    labels = pd.Series(clin["centre"].to_numpy(), index=clin["patient_id"], dtype=object)
    labels.iloc[1] = None  # batch not recorded
    labels.iloc[2:4] = "D"  # a batch of two patients (< min_batch_size 3)
    cfg = StudyConfig(**FAST, seed=1)
    data, counts, qc = prepare(feats, clin, list(feats.columns), cfg, volume=False,
                               harmonisation=HarmonisationInput(settings(protect=["age"]), labels))
    q = pd.DataFrame(qc)
    assert set(q["stage"]) == {"harmonisation"}
    by = {r["patient_id"]: (r["status"], r["reason"]) for _, r in q.iterrows()}
    assert by["p000"][0] == "excluded" and "protected covariate 'age'" in by["p000"][1]
    assert by["p001"][0] == "warning" and "uncorrected" in by["p001"][1]
    assert by["p002"][0] == "warning" and "batch 'D' has only 2" in by["p002"][1]
    assert "p000" not in data.X.index and counts["n_dropped_harmonisation"] == 1
    assert data.X[BATCH_COLUMN].isna().sum() == 1
    assert data.X["_harmonisation_protect_age"].dtype == float
    assert data.harmoniser is not None and data.harmoniser.covariates == ("_harmonisation_protect_age",)
    # refuse: the unlabelled patient is left out of every model
    data_r, counts_r, qc_r = prepare(feats, clin, list(feats.columns), cfg, volume=False,
                                     harmonisation=HarmonisationInput(settings(unseen_batch="refuse"), labels))
    assert "p001" not in data_r.X.index
    assert any(r["patient_id"] == "p001" and r["status"] == "excluded" for r in qc_r)


def test_disabled_changes_nothing():
    """No harmonisation: the study frame has no batch column and no ComBat step; the workflow's
    fit_models gets no extra input (its outputs are those of a single-centre study)."""
    feats, clin = planted(n_a=30, n_b=30, n_c=30, p=4)
    cfg = StudyConfig(**FAST, seed=1)
    data, counts, qc = prepare(feats, clin, list(feats.columns), cfg, volume=False)
    assert BATCH_COLUMN not in data.X.columns and data.harmoniser is None
    assert "n_dropped_harmonisation" not in counts
    config = {"modelling": {}, "cohort": {"clinical_table": "c.csv"}}
    pipeline = {"features": "f.tsv", "robust": "r.txt", "clinical": "c.tsv"}
    assert wf.model_inputs(config, pipeline) == pipeline
    assert wf.model_inputs({**config, "harmonisation": {"enabled": False}}, pipeline) == pipeline
    on = wf.model_inputs({**config, "harmonisation": {"enabled": True}}, pipeline)
    assert set(on) - set(pipeline) == {"harmonisation_batches", "harmonisation_settings"}
    assert HarmonisationSettings.from_config({}).enabled is False


def test_settings_validation_and_files_round_trip(tmp_path):
    with pytest.raises(ValueError, match="neither a clinical column"):
        HarmonisationSettings.from_config({"enabled": True})
    with pytest.raises(ValueError, match="unknown fact"):
        HarmonisationSettings.from_config({"enabled": True, "batch": {"acquisition": ["colour"]}})
    with pytest.raises(ValueError, match="unseen_batch"):
        settings(unseen_batch="ignore")
    st = settings(batch={"column": "centre", "acquisition": ["kernel"]}, exclude_shape=True)
    assert st.acquisition == ("kernel",)
    h = st.harmoniser(["original_shape_MeshVolume", "original_firstorder_Mean"])
    assert h.skip_features == ("original_shape_MeshVolume",) and h.batch_column == BATCH_COLUMN
    (tmp_path / "b.tsv").write_text("patient_id\tbatch\np1\tA\np2\t\n")
    (tmp_path / "s.json").write_text(json.dumps({"config": {"enabled": True, "batch": {"column": "centre"},
                                                            "unseen_batch": "refuse"}}))
    got = read_harmonisation(tmp_path / "b.tsv", tmp_path / "s.json")
    assert got.settings.unseen_batch == "refuse" and got.batches["p1"] == "A" and got.batches["p2"] is None
    assert "refused" in got.settings.policy_text()


# ------------------------------------------------------------------ workflow entry points


def _pipeline_files(tmp_path, feats: pd.DataFrame, clin: pd.DataFrame):
    """The pipeline start's files: features.tsv (one row per scan), robust list, clinical.tsv."""
    f = feats.reset_index().rename(columns={"patient_id": "patient_id"})
    f.insert(0, "scan_id", [f"{p}_S1" for p in f["patient_id"]])
    f.insert(2, "session", 1)
    paths = {"features": tmp_path / "features.tsv", "robust": tmp_path / "robust.txt",
             "clinical": tmp_path / "clinical.tsv"}
    f.to_csv(paths["features"], sep="\t", index=False)
    paths["robust"].write_text("\n".join(feats.columns) + "\n")
    clin.to_csv(paths["clinical"], sep="\t", index=False)
    return paths


def test_harmonisation_batches_and_diagnostics_entry_points(tmp_path):
    from radsurv.workflow.harmonisation import diagnostics_tables, harmonisation_batches

    feats, clin = planted(n_a=30, n_b=30, n_c=2, p=5)
    clin.loc[clin.index[5], "centre"] = ""  # not recorded
    files = _pipeline_files(tmp_path, feats, clin)
    out = {k: tmp_path / v for k, v in (("batches", "b.tsv"), ("counts", "c.tsv"), ("settings", "s.json"),
                                        ("qc", "qc.tsv"))}
    block = {"enabled": True, "batch": {"column": "centre"}}
    harmonisation_batches(features=files["features"], robust=files["robust"], clinical=files["clinical"],
                          harmonisation=block, modelling={}, seed=1, columns={}, **out)
    b = pd.read_csv(out["batches"], sep="\t", dtype=str, keep_default_na=False)
    assert len(b) == len(clin) and (b["batch"] == "").sum() == 1
    counts = pd.read_csv(out["counts"], sep="\t")
    assert dict(zip(counts["batch"], counts["n_patients"], strict=True)) == {"A": 29, "B": 30, "C": 2,
                                                                             "(unknown)": 1}
    assert not counts.set_index("batch").loc["C", "estimable"]
    qc = pd.read_csv(out["qc"], sep="\t", dtype=str, keep_default_na=False)
    assert qc["reason"].str.contains("batch unknown").sum() == 1
    assert qc["reason"].str.contains("batch 'C' has fewer than 3").sum() == 1
    h = read_harmonisation(out["batches"], out["settings"])
    assert h.settings.enabled and h.batches.isna().sum() == 1
    # diagnostics: batch visible before, gone after in-fold ComBat; the figure is written
    lab = h.batches[h.batches.isin(["A", "B"])]
    shaped = feats.rename(columns={"f4": "original_shape_Sphericity"})  # not harmonised (exclude_shape)
    res = diagnostics_tables(shaped.loc[lab.index], lab, h.settings, seed=0, pca_path=tmp_path / "pca.png",
                             n_splits=3, n_repeats=1, n_boot=50)
    site = res["site_auc"].set_index("data")["estimate"]
    assert res["not_harmonised"] == ["original_shape_Sphericity"] and res["n_features"] == 4
    assert len(site) == 3 and site.index[2].startswith("shape features only")
    assert site["before"] > 0.85 and site["after in-fold ComBat"] < 0.7, site
    assert res["n_significant_before"] > res["n_significant_after"]
    assert (tmp_path / "pca.png").stat().st_size > 1000


def test_provenance_records_the_slice_thickness_tag():
    import pydicom

    from radsurv.ingest.convert import _slice_thickness

    ds = pydicom.Dataset()
    assert _slice_thickness(ds) is None
    ds.SliceThickness = "2.5"
    assert _slice_thickness(ds) == 2.5
    ds.SliceThickness = "0"
    assert _slice_thickness(ds) is None


def test_multicentre_demo_scanners():
    from radsurv.synthetic.multicentre import SCANNERS, apply_scanner, centre_column, scanner_of
    from radsurv.synthetic.truth import Geometry

    cen = centre_column(42, list(range(1, 61)), 3)
    assert cen == centre_column(42, list(range(1, 61)), 3)  # deterministic by seed
    assert set(cen) == {"A", "B", "C"} and min(cen.count(c) for c in "ABC") >= 10
    assert scanner_of(42, 7, 2).centre in ("A", "B")
    with pytest.raises(ValueError, match="demo.scanners"):
        scanner_of(42, 1, 5)
    g = Geometry()
    rng = np.random.default_rng(0)
    img = rng.normal(0.0, 20.0, (8, 16, 16))
    a, b, c = (apply_scanner(img, s, g, 42, 1, 1) for s in SCANNERS)
    assert np.array_equal(a, img)  # scanner A: the single-centre demo's image
    assert abs(b.mean() - img.mean() - 40.0) < 2.0 and b.std() > 1.5 * img.std()  # +40 HU, noisier
    assert abs(c.mean() - img.mean() + 35.0) < 2.0 and c.std() < 0.7 * img.std()  # -35 HU, blurred
    assert np.array_equal(b, apply_scanner(img, SCANNERS[1], g, 42, 1, 1))
    assert SCANNERS[2].tags()["ConvolutionKernel"] == "SMOOTH"


def test_protect_volume_keeps_the_volume_slope_and_equalises_the_batches_around_it():
    """``harmonisation.protect_volume``: the log of the tumour volume becomes a protected numeric
    covariate of ComBat. Planted: two texture features rise with log volume (the same slope at
    every centre); centre B's scanner doubles their spread around that slope. Without the
    covariate ComBat estimates B's spread from the total variance (mostly volume, equal at both
    centres) and leaves the doubled residual spread; with it, B's residual spread is brought to
    A's and the volume slope is kept."""
    from radsurv.harmonisation.settings import VOLUME_COVARIATE, protect_column

    rng = np.random.default_rng(3)
    n = 300
    centre = np.repeat(["A", "B"], n // 2)
    logv = rng.normal(2.5, 0.8, n)
    scale = np.where(centre == "B", 2.0, 1.0)
    f = np.column_stack([4.0 * logv + scale * rng.normal(0, 0.5, n), -3.0 * logv + scale * rng.normal(0, 0.5, n)])
    ids = [f"p{i:03d}" for i in range(n)]
    feats = pd.DataFrame({"t1": f[:, 0], "t2": f[:, 1], "original_shape_VoxelVolume": np.exp(logv) * 1000},
                         index=pd.Index(ids, name="patient_id"))
    clin = pd.DataFrame({"patient_id": ids, "time": rng.exponential(5.0, n), "event": 1, "centre": centre})
    cfg = StudyConfig(**{**FAST, "volume_feature": "original_shape_VoxelVolume"}, seed=1)
    residual_sd = {}
    for protect in (False, True):
        data, _, _ = prepare(feats, clin, ["t1", "t2"], cfg, volume=True, harmonisation=_harm(clin, settings(
            protect_volume=protect)))
        h = data.harmoniser
        if protect:
            assert h.covariates == (protect_column(VOLUME_COVARIATE),)
            np.testing.assert_allclose(data.X[protect_column(VOLUME_COVARIATE)], logv + np.log(1000), rtol=1e-12)
        out = h.fit(data.X).transform(data.X)
        resid = out["t1"].to_numpy() - np.polyval(np.polyfit(logv, out["t1"].to_numpy(), 1), logv)
        residual_sd[protect] = {b: float(resid[centre == b].std()) for b in ("A", "B")}
        assert np.polyfit(logv, out["t1"].to_numpy(), 1)[0] == pytest.approx(4.0, abs=0.3)  # slope kept
    assert residual_sd[False]["B"] > 1.5 * residual_sd[False]["A"]
    assert residual_sd[True]["B"] == pytest.approx(residual_sd[True]["A"], rel=0.15)
    with pytest.raises(ValueError, match="protect_volume needs the tumour volume"):
        prepare(feats, clin, ["t1", "t2"], cfg, volume=False, harmonisation=_harm(clin, settings(protect_volume=True)))


def test_diagnostics_entry_point_protects_volume_and_leaves_out_a_zero_volume(tmp_path, caplog):
    """Rule ``harmonisation_diagnostics`` with ``protect_volume``: the settings it reports protect
    ``tumour_log_volume``; a patient whose volume is 0 (an empty contour) is left out with a log
    line, as the study leaves it out of every model."""
    import logging

    from radsurv.workflow.harmonisation import harmonisation_batches, harmonisation_diagnostics

    feats, clin = planted(n_a=25, n_b=25, n_c=25, p=4)
    rng = np.random.default_rng(4)
    feats["original_shape_VoxelVolume"] = np.exp(rng.normal(9.0, 0.8, len(feats)))
    feats.iloc[3, feats.columns.get_loc("original_shape_VoxelVolume")] = 0.0
    files = _pipeline_files(tmp_path, feats, clin)
    block = {"enabled": True, "batch": {"column": "centre"}, "protect_volume": True}
    hb = {k: tmp_path / v for k, v in (("batches", "b.tsv"), ("counts", "c.tsv"), ("settings", "s.json"),
                                       ("qc", "qc.tsv"))}
    harmonisation_batches(features=files["features"], robust=files["robust"], clinical=files["clinical"],
                          harmonisation=block, modelling={}, seed=1, columns={}, **hb)
    out = {k: tmp_path / v for k, v in (("site_auc", "site.tsv"), ("kruskal", "kw.tsv"), ("pca", "pca.png"),
                                        ("summary", "diag.json"))}
    with caplog.at_level(logging.WARNING, logger="radsurv.workflow.harmonisation"):
        harmonisation_diagnostics(features=files["features"], robust=files["robust"], clinical=files["clinical"],
                                  batches=hb["batches"], settings=hb["settings"],
                                  modelling={"volume_feature": "original_shape_VoxelVolume"}, seed=1, columns={},
                                  **out)
    summary = json.loads(out["summary"].read_text())
    assert "tumour_log_volume" in summary["settings"]["protect"]
    assert summary["n_patients"] == len(feats) - 1
    assert "1 patient(s) without a positive tumour volume left out" in caplog.text
