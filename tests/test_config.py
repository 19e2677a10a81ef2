"""Config files validate against the schema; broken configs get plain-language messages."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from radsurv.config import explain
from radsurv.schema import load_schema, problems

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIGS = sorted((REPO / "config").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    assert problems(yaml.safe_load(path.read_text()), load_schema(SCHEMA)) == []


def test_every_schema_key_is_documented_in_config_readme():
    readme = (REPO / "config" / "README.md").read_text()
    schema = load_schema(SCHEMA)

    def keys(node, prefix=""):
        for k, v in node.get("properties", {}).items():
            yield prefix + k
            yield from keys(v, prefix + k + ".")

    missing = [k for k in keys(schema) if f"`{k}`" not in readme]
    assert missing == []


def test_messages_name_the_key_and_the_fix():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    bad = copy.deepcopy(cfg)
    bad["cohort"]["roi_policy"] = "biggest"
    bad["cohort"]["columns"]["events"] = "dead"  # time/event are checked by preflight (only survival needs them)
    bad["robustness"]["icc_form"] = "ICC(2)"
    bad["extraction"]["binwidth"] = 25
    text = explain(bad, SCHEMA)
    assert "4 problem(s)" in text
    assert "cohort -> roi_policy: 'biggest' is not allowed; choose one of 'first', 'largest'" in text
    assert "'events' was unexpected" in text
    assert "'binwidth' was unexpected" in text and "config/README.md" in text
    assert explain(cfg, SCHEMA) == "The configuration is valid."


# ------------------------------------------------------------------ checks before the first job
from radsurv.config import SHAPE_FEATURES, needs_outcome, preflight  # noqa: E402


def _preflight(config, *args, **kwargs):
    """preflight on the config as the workflow hands it over: validated, the schema's defaults filled."""
    from snakemake.utils import validate

    filled = copy.deepcopy(config)
    validate(filled, schema=str(SCHEMA))
    return preflight(filled, *args, **kwargs)


def test_the_static_shape_feature_list_is_pyradiomics_own():
    """radsurv.config checks modelling.volume_feature without importing pyradiomics: its list is pyradiomics'."""
    from radiomics.shape import RadiomicsShape

    assert sorted(SHAPE_FEATURES) == sorted(RadiomicsShape.getFeatureNames())


def test_schema_fills_every_block_with_its_defaults():
    """The schema is where defaults live: a config without robustness, modelling and demo blocks
    gets all three, nested blocks (robustness.perturbation, .discretisation) included."""
    from snakemake.utils import validate

    cfg = yaml.safe_load((REPO / "config" / "example_cohort.yaml").read_text())
    for block in ("robustness", "modelling", "demo"):
        cfg.pop(block, None)
    validate(cfg, schema=str(SCHEMA))
    assert cfg["demo"] == {"patients": 40, "retest": 15, "scanners": 0, "texture": "spread",
                           "longitudinal": False,
                           "longitudinal_patients": 40, "longitudinal_retest": 8, "longitudinal_size": [80, 80, 40]}
    assert cfg["longitudinal"]["enabled"] is False and cfg["longitudinal"]["propagation"]["margin_mm"] == 20.0
    assert cfg["robustness"]["retest_max_days"] == 30 and cfg["robustness"]["method"] == "test-retest"
    assert cfg["robustness"]["perturbation"]["n"] == 10 and cfg["robustness"]["discretisation"]["enabled"] is True
    assert cfg["modelling"]["volume_feature"] == "original_shape_MeshVolume"
    assert cfg["cohort"]["time_unit"] in ("days", "months", "years") and cfg["cohort"]["roi_policy"]


def _user_config(tmp_path, **modelling):
    """A user's config (as config/example_cohort.yaml) with a small clinical table of its own."""
    (tmp_path / "dicom").mkdir()
    (tmp_path / "clinical.csv").write_text(
        "PatientID,Survival.time,deadstatus.event,age,Overall.Stage,Histology,centre\n"
        "P1,400,1,61,I,adeno,A\nP2,800,0,70,IIIa,Squamous,A\nP3,120,1,55,IIIB,adeno,B\n"
        "P4,1000,0,66,ii,nos,B\nP5,30,1,72,,large cell,A\n")
    cfg = yaml.safe_load((REPO / "config" / "example_cohort.yaml").read_text())
    cfg["cohort"]["dicom_dir"] = "dicom"
    cfg["cohort"]["clinical_table"] = "clinical.csv"
    cfg["cohort"]["columns"]["covariates"] = ["age", "Overall.Stage", "Histology", "centre"]
    cfg["modelling"]["clinical_covariates"] = {
        "age": {"type": "numeric"}, "Overall.Stage": {"type": "ordinal", "levels": ["I", "II", "IIIa", "IIIb"]},
        "Histology": {"type": "categorical", "missing_values": ["nos"]}}
    cfg["modelling"]["horizons"] = [365]
    cfg["modelling"].update(modelling)
    return cfg


def test_preflight_accepts_a_correct_user_config_and_the_demo(tmp_path):
    assert _preflight(_user_config(tmp_path), tmp_path) == []
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())  # tables made by the workflow
    assert _preflight(demo, tmp_path, produced=["results/demo/dicom", "results/demo/clinical.csv"]) == []


def test_preflight_names_every_config_mistake_in_plain_words(tmp_path):
    cfg = _user_config(tmp_path, horizons=[365, 3650], published_signatures=["signatures/aerts.yaml"],
                       design="split", split_by="centre", validation_values=["C"])
    cfg["cohort"]["columns"]["covariates"] = ["age", "Overall.Stage", "Histology", "centre", "T.stage"]
    cfg["modelling"]["clinical_covariates"]["Overall.Stage"]["levels"] = ["I", "II", "III"]
    cfg["modelling"]["clinical_covariates"]["grade"] = {"type": "numeric"}
    cfg["cohort"]["roi_pattern"] = "^GTV("
    found = _preflight(cfg, tmp_path)
    text = "\n".join(found)
    # a column that is not in the table: the table's columns are listed
    assert "has no column(s) ['T.stage']; its columns are ['PatientID', 'Survival.time'" in text
    assert len(found) == 3 and found[0].startswith("cohort.roi_pattern: '^GTV(' is not a valid regular expression")

    cfg["cohort"]["columns"]["covariates"].remove("T.stage")
    cfg["cohort"]["roi_pattern"] = "^GTV"
    found = _preflight(cfg, tmp_path)
    text = "\n".join(found)
    assert "modelling.clinical_covariates.Overall.Stage: clinical covariate 'Overall.Stage': value(s) ['IIIB', " \
           "'IIIa'] are not one of the levels ['I', 'II', 'III']" in text
    assert "modelling.clinical_covariates: 'grade' is not listed in cohort.columns.covariates" in text
    assert "modelling.horizons: 3650 days is beyond the longest follow-up in the clinical table (1000 days)" in text
    assert "modelling.validation_values: ['C'] never occur in column 'centre' (its values: ['A', 'B'])" in text
    assert "modelling.published_signatures: no signature file 'aerts.yaml'" in text
    assert len(found) == 6 and "leaves the development or the validation cohort without patients" in text


def test_preflight_checks_the_endpoint_columns(tmp_path):
    cfg = _user_config(tmp_path)
    cfg["cohort"]["columns"]["time"] = "Histology"  # text, not a time
    found = _preflight(cfg, tmp_path)
    assert found and found[0].startswith("cohort.columns: none of the 5 rows of the clinical table has a usable "
                                         "survival time ('Histology')")
    cfg = _user_config(tmp_path / "x") if (tmp_path / "x").mkdir() is None else None
    (tmp_path / "x" / "clinical.csv").write_text("PatientID,Survival.time,deadstatus.event\nP1,10,0\nP2,20,0\n")
    cfg["cohort"]["columns"]["covariates"] = []
    cfg["modelling"]["clinical_covariates"] = {}
    assert _preflight(cfg, tmp_path / "x") == [
        "cohort.columns.event: column 'deadstatus.event' has no event (death or progression) among its 2 usable "
        "rows; a survival model needs events (1 = event, 0 = censored)",
        "modelling.horizons: 365 days is beyond the longest follow-up in the clinical table (20 days); choose "
        "horizons within follow-up (is cohort.time_unit 'days' right?)"]


def test_preflight_says_when_a_table_cannot_be_read(tmp_path):
    cfg = _user_config(tmp_path)
    (tmp_path / "clinical.csv").write_bytes(b"")
    assert _preflight(cfg, tmp_path) == [
        "cohort.clinical_table: the clinical table could not be read as a CSV/TSV table (EmptyDataError: No "
        "columns to parse from file)"]
    (tmp_path / "clinical.csv").write_bytes("PatientID;Survival.time\nP1;4\xe9\n".encode("latin-1"))
    found = _preflight(cfg, tmp_path)
    assert len(found) == 1 and found[0].startswith("cohort.clinical_table: the clinical table could not be read "
                                                   "as a CSV/TSV table (UnicodeDecodeError")


def test_preflight_checks_files_without_repeating_their_paths(tmp_path):
    cfg = _user_config(tmp_path)
    cfg["cohort"]["dicom_dir"] = "/data/Smith^John"
    cfg["cohort"]["clinical_table"] = "/data/Smith^John/outcome.csv"
    found = _preflight(cfg, tmp_path)
    assert [f.split(":")[0] for f in found] == ["cohort.dicom_dir", "cohort.clinical_table"]
    assert not any("Smith" in f for f in found)
    cfg = _user_config(tmp_path / "t") if (tmp_path / "t").mkdir() is None else None
    (tmp_path / "t" / "features.csv").write_text("id,original_shape_VoxelVolume\nP1,10\n")
    cfg["modelling"]["features_table"] = "features.csv"
    assert _preflight(cfg, tmp_path / "t") == [
        "modelling.features_table: the feature table features.csv has no patient id column 'patient_id'; "
        "its first columns are ['id', 'original_shape_VoxelVolume']. Set modelling.features_id_column to "
        "the column holding the patient ids."]
    cfg["modelling"]["features_id_column"] = "id"
    (tmp_path / "t" / "features.csv").write_text("id,original_shape_VoxelVolume\nX1,10\n")
    found = _preflight(cfg, tmp_path / "t")
    assert len(found) == 1 and "none of its patient ids (column 'id', e.g. ['X1']) is in the clinical table" in found[0]


def test_preflight_checks_that_the_volume_baseline_can_be_built(tmp_path):
    cfg = _user_config(tmp_path)
    cfg["extraction"]["feature_classes"] = ["firstorder", "glcm"]
    assert _preflight(cfg, tmp_path) == [
        "modelling.volume_feature: 'original_shape_MeshVolume' is a shape feature but extraction.feature_classes "
        "['firstorder', 'glcm'] has no 'shape': the volume-only baseline could not be built"]
    cfg["extraction"]["feature_classes"].append("shape")
    cfg["modelling"]["volume_feature"] = "original_shape_Volume"
    assert _preflight(cfg, tmp_path) == [
        "modelling.volume_feature: pyradiomics computes no feature 'original_shape_Volume'; volume features are "
        "original_shape_MeshVolume and original_shape_VoxelVolume"]


def test_any_non_negative_seed_is_accepted():
    schema = load_schema(SCHEMA)
    cfg = yaml.safe_load((REPO / "config" / "example_cohort.yaml").read_text())
    for seed in (0, 20241105, 2**40):
        assert problems({**cfg, "seed": seed}, schema) == []
    assert problems({**cfg, "seed": -1}, schema) == ["seed: -1 is less than the minimum of 0 (the random seed from "
                                                     "which every random step (split, bootstrap, demo data) derives)"]


def test_features_only_needs_no_clinical_table_and_no_modelling_block():
    ibsi = {"seed": 1, "site": "ibsi_c", "cohort": {"dicom_dir": "phantom", "roi_pattern": "GTV"}}
    assert problems(ibsi, load_schema(SCHEMA)) == []
    assert "To compute features only, run: snakemake features" in needs_outcome(ibsi)
    assert needs_outcome(yaml.safe_load((REPO / "config" / "config.yaml").read_text())) is None


def test_modelling_settings_defaults_equal_the_schema():
    """StudyConfig (the modelling block read by the library) repeats no default differently from the schema."""
    from dataclasses import MISSING, fields

    from radsurv.modelling.config import StudyConfig
    from radsurv.schema import default

    compared = 0
    for f in fields(StudyConfig):
        try:
            expected = default("modelling", f.name)
        except KeyError:  # no schema default (e.g. label, seed): nothing to compare
            continue
        ours = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        ours = list(ours) if isinstance(ours, tuple) else ours
        assert ours == expected, f"modelling.{f.name}: StudyConfig {ours!r} != schema {expected!r}"
        compared += 1
    assert compared >= 30


# ------------------------------------------------------------------ longitudinal block (issue #18)
LONG_EXAMPLE = REPO / "config" / "examples" / "longitudinal_demo.yaml"


def _long_cfg(**block):
    cfg = yaml.safe_load(LONG_EXAMPLE.read_text())
    cfg["longitudinal"].update(block)
    return cfg


def test_longitudinal_example_is_valid_and_gives_the_settings():
    """The example lists every key at its schema default: its settings equal a block of defaults only."""
    from snakemake.utils import validate

    from radsurv.longitudinal.settings import longitudinal_settings

    cfg = yaml.safe_load(LONG_EXAMPLE.read_text())
    assert problems(cfg, load_schema(SCHEMA)) == []
    bare = {"seed": 42, "site": "lung_ct", "cohort": cfg["cohort"], "longitudinal": {"enabled": True}}
    validate(bare, schema=str(SCHEMA))
    validate(cfg, schema=str(SCHEMA))
    s = longitudinal_settings(cfg["longitudinal"], cfg["seed"])
    assert s == longitudinal_settings(bare["longitudinal"], 42)
    assert s.timepoints.names == ["planning", "fx5", "fx10", "fx15", "fx20", "post"]
    assert s.timepoints.timepoints[2].days == (12, 16) and s.tumour == "gtv" and s.landmark == "fx10"
    assert s.study.seed == 42 and s.propagation.threads == 1 and s.delta.min_changed_fraction == 0.2


@pytest.mark.parametrize(("block", "expected"), [
    ({"assign_by": "weeks"}, "longitudinal -> assign_by: 'weeks' is not allowed; choose one of 'days', 'fraction', "
                             "'session'"),
    ({"timepoints": {"planning": {"days": [0, 0]}}}, "longitudinal -> timepoints: "),
    ({"rois": {"gtv": {"tumour": True}}}, "longitudinal -> rois -> gtv: the setting 'pattern' is missing"),
    ({"propagation": {"seed": 0}}, "longitudinal -> propagation -> seed: 0 is less than the minimum of 1"),
    ({"delta": {"min_changed_fraktion": 0.3}}, "check the spelling against config/README.md"),
])
def test_longitudinal_schema_messages_name_the_key(block, expected):
    found = problems(_long_cfg(**block), load_schema(SCHEMA))
    assert len(found) == 1 and found[0].startswith(expected) or expected in found[0], found


@pytest.mark.parametrize(("block", "expected"), [
    ({"timepoints": {"planning": {"days": [0, 0]}, "fx5": {"days": [5, 9]}, "fx10": {"days": [8, 16]}}},
     "time points 'fx5' [5, 9] and 'fx10' [8, 16]: days ranges overlap or are out of order"),
    ({"landmark": "planning"}, "longitudinal.landmark: 'planning' is not one of the later time points"),
    ({"landmark": "week3"}, "longitudinal.landmark: 'week3' is not one of the later time points"),
    ({"rois": {"gtv": {"pattern": "GTV"}, "cord": {"pattern": "Cord"}}}, "exactly one ROI must be the tumour"),
    ({"assign_by": "fraction", "timepoints": {"planning": {"fractions": [0, 0]}, "fx5": {"days": [5, 9]}}},
     "time point 'fx5' has no 'fractions' range but assign_by is 'fraction'"),
])
def test_longitudinal_preflight_explains_what_the_schema_cannot(tmp_path, block, expected):
    found = _preflight(_long_cfg(**block), tmp_path, produced=[
        "results/demo/dicom", "results/demo/clinical.csv", *(f"results/demo_longitudinal/{t}.tsv"
                                                               for t in ("images", "contours", "clinical"))])
    assert len(found) == 1 and expected in found[0], found


def test_longitudinal_preflight_names_missing_tables_and_is_silent_when_disabled(tmp_path):
    produced = ["results/demo/dicom", "results/demo/clinical.csv"]
    found = _preflight(_long_cfg(), tmp_path, produced=produced)
    assert [f.split(":")[0] for f in found] == [f"longitudinal -> {k}" for k in ("images", "contours", "clinical")]
    assert _preflight(_long_cfg(enabled=False, landmark="nowhere"), tmp_path, produced=produced) == []
