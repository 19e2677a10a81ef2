"""The workflow's JSON schemas: checks with one plain sentence per problem, and the defaults.

The workflow config (:mod:`radsurv.config`) and the image sheet (:mod:`radsurv.ingest.sheet`)
are checked with :func:`problems`. Every default of a config setting lives once, in
``workflow/schemas/config.schema.yaml``: Snakemake fills it in when it validates a config, and
the library's settings classes take their defaults from it through :func:`default`. A leaf
module: it imports no other part of radsurv.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

#: The workflow's schemas (the package is installed from the repository, editable).
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"
CONFIG_SCHEMA = SCHEMA_DIR / "config.schema.yaml"
IMAGES_SCHEMA = SCHEMA_DIR / "images.schema.yaml"


@cache
def _config_schema() -> dict[str, Any]:
    if not CONFIG_SCHEMA.is_file():
        raise FileNotFoundError(f"radsurv's config schema is missing ({CONFIG_SCHEMA}); install radsurv from its "
                                "repository with install.sh (pip install -e .)")
    return load_schema(CONFIG_SCHEMA)


def default(*keys: str) -> Any:
    """The schema default of the config setting ``keys`` (e.g. ``default("robustness", "threshold")``)."""
    node: Any = _config_schema()
    for key in keys:
        node = node["properties"][key]
    if "default" not in node:
        raise KeyError(f"the config schema has no default for {'.'.join(keys)}")
    return node["default"]


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON schema."""
    return yaml.safe_load(Path(path).read_text())


def _describe(schema: Mapping[str, Any], path: list[Any]) -> str:
    """The schema's description of the setting at ``path`` ('' when it has none)."""
    node: Any = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return str(node.get("description", "")) if isinstance(node, Mapping) else ""


def problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every way ``config`` breaks ``schema``, as sentences (empty if valid)."""
    validator = jsonschema.Draft202012Validator(schema)
    out: list[str] = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = " -> ".join(str(p) for p in err.absolute_path) or "(top level)"
        what = _describe(schema, list(err.absolute_path))
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            sub = _describe(schema, [*err.absolute_path, missing])
            msg = f"{key}: the setting '{missing}' is missing" + (f" ({sub})" if sub else "")
        elif err.validator == "additionalProperties":
            msg = f"{key}: {err.message} — check the spelling against config/README.md"
        elif err.validator == "enum":
            allowed = ", ".join(repr(v) for v in err.validator_value)
            msg = f"{key}: {err.instance!r} is not allowed; choose one of {allowed}"
        else:
            msg = f"{key}: {err.message}"
        if what and err.validator != "required":
            msg += f" ({what})"
        out.append(msg)
    return out
