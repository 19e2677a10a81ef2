"""Checking a record against a JSON schema, with one plain sentence per problem.

The image sheet (:mod:`radsurv.ingest.sheet`) checks each row with these; they are
the checks of the workflow config (:func:`radsurv.config.problems`). A leaf module: it
imports no other part of radsurv, so ingest does not depend on :mod:`radsurv.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml


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
