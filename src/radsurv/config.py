"""Config validation with messages a clinician can act on.

The workflow validates its config with ``snakemake.utils.validate`` against
``workflow/schemas/config.schema.yaml``; when that fails, :func:`explain`
turns every schema violation into one plain sentence naming the config key,
what is wrong, and what the key means (the schema's description).
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


def explain(config: Mapping[str, Any], schema_path: str | Path) -> str:
    """A readable, multi-line account of what is wrong with ``config``."""
    found = problems(config, load_schema(schema_path))
    if not found:
        return "The configuration is valid."
    lines = [f"The configuration has {len(found)} problem(s):"] + [f"  - {p}" for p in found]
    return "\n".join(lines)


# ------------------------------------------------------------------ site presets
#: Where the shipped site presets live (``config/sites/<name>.yaml``).
SITES_DIR = Path(__file__).resolve().parents[2] / "config" / "sites"
SITE_BLOCKS = ("preprocessing", "extraction")


def site_path(site: str, sites_dir: str | Path | None = None) -> Path:
    """The preset file of ``site``: a name in ``sites_dir`` or a path to a YAML file."""
    if site.endswith((".yaml", ".yml")) or "/" in site or "\\" in site:
        path = Path(site)
    else:
        path = Path(sites_dir or SITES_DIR) / f"{site}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(sites_dir or SITES_DIR).glob("*.yaml"))
        raise ValueError(f"site '{site}': no preset file {path}; shipped sites: {', '.join(known)}")
    return path


def load_site(site: str, sites_dir: str | Path | None = None) -> dict[str, Any]:
    """A site preset: a mapping with ``preprocessing`` and ``extraction`` blocks."""
    data = yaml.safe_load(site_path(site, sites_dir).read_text()) or {}
    unknown = sorted(set(data) - {*SITE_BLOCKS, "description"})
    if unknown:
        raise ValueError(f"site '{site}': unexpected top-level keys {unknown}; a site has only "
                         "description, preprocessing and extraction")
    return data


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid onto ``base`` key by key: nested mappings merged, anything else
    (lists included) replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_site(config: dict[str, Any], sites_dir: str | Path | None = None) -> dict[str, Any]:
    """Merge the config's ``site`` preset into it, in place, and return it.

    The preset gives the ``preprocessing`` and ``extraction`` blocks; keys the
    config itself sets in those blocks win (key by key; lists are replaced).
    A legacy ``extraction.resegment_range`` is moved to
    ``preprocessing.resegment_range``, where re-segmentation now happens.
    """
    if config.get("site"):
        preset = load_site(str(config["site"]), sites_dir)
        for block in SITE_BLOCKS:
            config[block] = deep_merge(preset.get(block) or {}, config.get(block) or {})
    ext = config.get("extraction")
    if isinstance(ext, dict) and ext.get("resegment_range") is not None:
        pre = config.setdefault("preprocessing", {})
        if pre.get("resegment_range") is None:
            pre["resegment_range"] = ext["resegment_range"]
        elif list(pre["resegment_range"]) != list(ext["resegment_range"]):
            raise ValueError("extraction.resegment_range and preprocessing.resegment_range disagree; "
                             "keep only preprocessing.resegment_range")
        del ext["resegment_range"]
    return config
