"""Config files validate against the schema; broken configs get plain-language messages."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from radsurv.config import explain, load_schema, problems

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
    del bad["cohort"]["columns"]["event"]
    bad["robustness"]["icc_form"] = "ICC(2)"
    bad["extraction"]["binwidth"] = 25
    text = explain(bad, SCHEMA)
    assert "4 problem(s)" in text
    assert "cohort -> roi_policy: 'biggest' is not allowed; choose one of 'first', 'largest'" in text
    assert "cohort -> columns: the setting 'event' is missing (the column with the event indicator" in text
    assert "'binwidth' was unexpected" in text and "config/README.md" in text
    assert explain(cfg, SCHEMA) == "The configuration is valid."
