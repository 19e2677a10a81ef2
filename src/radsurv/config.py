"""Config validation with messages a clinician can act on.

The workflow validates its config with ``snakemake.utils.validate`` against
``workflow/schemas/config.schema.yaml``; when that fails, :func:`explain`
turns every schema violation into one plain sentence naming the config key,
what is wrong, and what the key means (the schema's description).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from radsurv.schema import load_schema, problems


def explain(config: Mapping[str, Any], schema_path: str | Path) -> str:
    """A readable, multi-line account of what is wrong with ``config``."""
    found = problems(config, load_schema(schema_path))
    return format_problems(found) if found else "The configuration is valid."


def format_problems(found: list[str]) -> str:
    """One line per problem under a count, as the workflow prints it when it stops."""
    return "\n".join([f"The configuration has {len(found)} problem(s):"] + [f"  - {p}" for p in found])


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


# ------------------------------------------------------------------ checks before the first job
def _exists(path: str | Path, base_dir: Path) -> Path | None:
    p = Path(path)
    p = p if p.is_absolute() else base_dir / p
    return p if p.exists() else None


def _first_lines(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0] if len(text) > 400 else text


def _table_problem(key: str, what: str, err: BaseException) -> str:
    import pandas as pd

    unreadable = (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)
    if isinstance(err, ValueError) and not isinstance(err, unreadable):  # radsurv's own message
        return f"{key}: {_first_lines(err)}"
    return f"{key}: the {what} could not be read as a CSV/TSV table ({type(err).__name__}: {_first_lines(err)})"


def _as_paths(value: str | Sequence[str]) -> list[str]:
    """``cohort.clinical_table``: one file or a list of files joined on the id."""
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


def _check_clinical(config: Mapping[str, Any], path: Path | list[Path], problems_: list[str]) -> Any:
    """Read the clinical table as the ``standardise_clinical`` rule will; problems with its endpoint
    and covariates are appended. Returns the usable table, or None."""
    from radsurv.ingest.clinical import load_clinical

    cohort = config["cohort"]
    columns = cohort["columns"]
    _check_endpoints(config, path, problems_)
    survival = _survival_study(config)
    try:
        table, qc = load_clinical(path, columns, survival=survival)
    except Exception as err:  # noqa: BLE001 -- any reading failure is reported, with its kind
        problems_.append(_table_problem("cohort.clinical_table", "clinical table", err))
        return None
    listed = set(columns.get("covariates") or [])
    if not survival:  # categorical endpoints only: no survival time, event or follow-up to check
        _check_covariates(config["modelling"], table, listed, problems_)
        _check_split(config["modelling"], table, listed, problems_)
        return table
    unit = cohort["time_unit"]
    n_rows = len(table) + sum(1 for q in qc if q.get("status") == "excluded")
    if table.empty:
        reasons = "; ".join(q["reason"] for q in qc[:3])
        problems_.append(
            f"cohort.columns: none of the {n_rows} rows of the clinical table has a usable survival time "
            f"('{columns['time']}') and event ('{columns['event']}'); check that these are the right columns"
            + (f" (first rows left out: {reasons})" if reasons else ""))
        return None
    if int(table["event"].sum()) == 0:
        problems_.append(
            f"cohort.columns.event: column '{columns['event']}' has no event (death or progression) among its "
            f"{len(table)} usable rows; a survival model needs events (1 = event, 0 = censored)")
    m = config["modelling"]
    _check_follow_up(m, table, unit, problems_)
    _check_covariates(m, table, listed, problems_)
    _check_split(m, table, listed, problems_)
    return table


def _survival_study(config: Mapping[str, Any]) -> bool:
    from radsurv.workflow.rules import survival_study

    return survival_study(config)


def _check_endpoints(config: Mapping[str, Any], path: Path | list[Path], problems_: list[str]) -> None:
    """Each binary / multiclass endpoint (``modelling.label``, ``modelling.endpoints``), key by key:
    its column is in the clinical table and is no id, survival or covariate column; its classes
    (two or more, exactly two when binary, the positive class among them, at least
    ``min_per_class`` patients each: :func:`radsurv.modelling.classification.endpoints.label_problems`)."""
    from radsurv.ingest.clinical import read_clinical_tables
    from radsurv.modelling.classification.endpoints import endpoint_settings, label_problems
    from radsurv.workflow.rules import classification_endpoints

    try:
        endpoints = classification_endpoints(config)
    except ValueError as err:
        problems_.append(str(err))
        return
    if not endpoints:
        return
    m, columns = config["modelling"], config["cohort"]["columns"]
    try:
        raw, _ = read_clinical_tables(path if isinstance(path, Path) else list(path), str(columns["id"]))
    except Exception:  # noqa: BLE001 -- an unreadable table is reported once, by the read after this
        return
    main = next(iter(endpoints)) if m.get("endpoint", "survival") != "survival" else None
    reserved = {columns.get(k): k for k in ("id", "time", "event") if columns.get(k)}
    reserved.update({c: "covariate" for c in m.get("clinical_covariates") or {}})
    for name, spec in endpoints.items():
        key = "modelling.label" if name == main else f"modelling.endpoints.{name}"
        col = str(spec["column"])
        if col not in raw.columns:
            problems_.append(f"{key}: column '{col}' is not in the clinical table (its columns: {list(raw.columns)})")
            continue
        if col in reserved:
            problems_.append(f"{key}: column '{col}' is also the {reserved[col]} column; an endpoint cannot be a "
                             "model input")
            continue
        try:
            min_per_class = endpoint_settings(m, int(config.get("seed", 0)), str(spec["endpoint"])).min_per_class
        except (ValueError, TypeError) as err:
            problems_.append(f"modelling.classification: {err}")
            return
        problems_ += label_problems(raw[col].tolist(), spec, min_per_class, key)


def _check_follow_up(m: Mapping[str, Any], table: Any, unit: str, problems_: list[str]) -> None:
    """``modelling.horizons`` and ``modelling.tau`` within the clinical table's follow-up."""
    t_max = float(table["time"].max())
    for h in list(m.get("horizons") or []):
        if float(h) >= t_max:
            problems_.append(
                f"modelling.horizons: {h:g} {unit} is beyond the longest follow-up in the clinical table "
                f"({t_max:g} {unit}); choose horizons within follow-up (is cohort.time_unit '{unit}' right?)")
    if m.get("tau") is not None and float(m["tau"]) > t_max:
        problems_.append(f"modelling.tau: {m['tau']:g} {unit} is beyond the longest follow-up in the clinical "
                         f"table ({t_max:g} {unit})")


def _check_covariates(m: Mapping[str, Any], table: Any, listed: set[str], problems_: list[str]) -> None:
    """Every ``modelling.clinical_covariates`` entry is read from the table and its values parse."""
    from radsurv.ingest.clinical import CovariateSpec

    for name, spec_cfg in (m.get("clinical_covariates") or {}).items():
        if name not in listed:
            problems_.append(f"modelling.clinical_covariates: '{name}' is not listed in cohort.columns.covariates "
                             f"(listed: {sorted(listed)}); add it there so that it is read from the clinical table")
            continue
        try:
            CovariateSpec.from_config(name, spec_cfg).parse(table[name].tolist())
        except ValueError as err:
            problems_.append(f"modelling.clinical_covariates.{name}: {err}")


def _check_split(m: Mapping[str, Any], table: Any, listed: set[str], problems_: list[str]) -> None:
    """``split`` design by a clinical column: the column, its values or dates, both cohorts non-empty."""
    import pandas as pd

    col = m.get("split_by")
    if m["design"] != "split" or not col:
        return
    if col not in listed:
        problems_.append(f"modelling.split_by: column '{col}' is not listed in cohort.columns.covariates "
                         f"(listed: {sorted(listed)})")
        return
    values = table[col].astype(str).str.strip()
    if m.get("split_date"):
        try:
            cut = pd.Timestamp(str(m["split_date"]))
        except ValueError:
            problems_.append(f"modelling.split_date: '{m['split_date']}' is not a date (write YYYY-MM-DD)")
            return
        dates = pd.to_datetime(values, errors="coerce")
        bad = sorted(set(values[dates.isna()]))
        if bad:
            problems_.append(f"modelling.split_by: column '{col}' has value(s) that are not dates: {bad[:5]}")
            return
        val = dates >= cut
        how = f"'{col}' on or after {m['split_date']}"
    else:
        wanted = [str(v).strip() for v in m.get("validation_values") or []]
        absent = [v for v in wanted if v not in set(values)]
        if absent:
            problems_.append(f"modelling.validation_values: {absent} never occur in column '{col}' "
                             f"(its values: {sorted(set(values))[:10]})")
        val = values.isin(wanted)
        how = f"'{col}' in {wanted}"
    if bool(val.all()) or not bool(val.any()):
        problems_.append(f"modelling.split_by: the split ({how}) leaves the development or the validation "
                         "cohort without patients")


def _check_feature_table(key: str, path: Path, m: Mapping[str, Any], problems_: list[str]) -> Any:
    """Read a feature table as the model step will (``modelling.features_*`` keys)."""
    from radsurv.features.table import read_feature_table

    try:
        return read_feature_table(path, str(m["features_id_column"]), int(m["features_header_rows"]),
                                  m.get("features_id_pattern"))
    except Exception as err:  # noqa: BLE001
        problems_.append(_table_problem(key, "feature table", err))
        return None


#: The shape features pyradiomics knows (``radiomics.shape.RadiomicsShape.getFeatureNames()``, deprecated
#: ones included; a unit test compares this list with the installed pyradiomics). Kept here so that the
#: checks before the first job do not import pyradiomics (and with it SimpleITK and scipy).
SHAPE_FEATURES = (
    "Compactness1", "Compactness2", "Elongation", "Flatness", "LeastAxisLength", "MajorAxisLength",
    "Maximum2DDiameterColumn", "Maximum2DDiameterRow", "Maximum2DDiameterSlice", "Maximum3DDiameter",
    "MeshVolume", "MinorAxisLength", "SphericalDisproportion", "Sphericity", "SurfaceArea", "SurfaceVolumeRatio",
    "VoxelVolume",
)
SHAPE_FEATURE_NAMES = frozenset(f"original_shape_{n}" for n in SHAPE_FEATURES)


def preflight(config: Mapping[str, Any], base_dir: str | Path = ".",
              produced: Collection[str] = ()) -> list[str]:
    """Everything a schema-valid config and its tables can get wrong, checked before any job runs.

    ``config`` has been validated against ``workflow/schemas/config.schema.yaml`` (which
    fills every default, as the workflow's ``validate`` does). ``base_dir`` is the folder
    relative paths are read from (where snakemake runs); ``produced`` are files and folders
    the workflow writes itself (the demo cohort), whose contents cannot be checked yet.
    Returns one sentence per problem, naming the config key (empty if nothing is wrong).
    Checked: the DICOM folder; the clinical table (readable, its id/time/event/covariate
    columns, usable rows and events, every configured covariate's values against its levels
    and missing codes, the split column and its values or dates, horizons within follow-up);
    the modelling block as the model step reads it; regular expressions; a features table,
    external cohorts' tables and published signatures; whether the volume baseline's feature
    will be extracted. Input paths are not repeated in the messages (folder names can be
    patient names): the key says which.
    """
    base = Path(base_dir)
    produced_set = {str(Path(p)) for p in produced}

    def is_produced(p: str) -> bool:
        return str(Path(p)) in produced_set

    out: list[str] = []
    _check_inputs_and_patterns(config, base, is_produced, out)
    _check_modelling_block(config, out)
    table = _check_clinical_table(config, base, is_produced, out)
    m = config["modelling"]
    if m.get("features_table"):
        _check_own_feature_table(config, base, table, out)
    else:
        _check_volume_feature(config, out)
    _check_external_cohorts(config, base, out)
    _check_published_signatures(m, base, out)
    _check_longitudinal(config, base, is_produced, out)
    return out


def _check_longitudinal(config: Mapping[str, Any], base: Path, is_produced: Callable[[str], bool],
                        out: list[str]) -> None:
    """An enabled ``longitudinal`` block: its tables exist (or the demo makes them), its settings hold."""
    block = config.get("longitudinal") or {}
    if not block.get("enabled"):
        return
    from radsurv.longitudinal.settings import longitudinal_problems  # only when enabled (loads SimpleITK)

    for key in ("images", "contours", "clinical"):
        if not is_produced(block[key]) and _exists(block[key], base) is None:
            out.append(f"longitudinal -> {key}: the file does not exist (set demo.longitudinal: true for the demo)")
    out += longitudinal_problems(config)


def _check_inputs_and_patterns(config: Mapping[str, Any], base: Path, is_produced: Callable[[str], bool],
                               out: list[str]) -> None:
    """The DICOM folder exists (unless the workflow writes it); the regular expressions compile."""
    cohort, m = config["cohort"], config["modelling"]
    dicom = cohort.get("dicom_dir")
    if dicom and not is_produced(dicom) and not m.get("features_table"):
        found = _exists(dicom, base)
        if found is None or not found.is_dir():
            out.append("cohort.dicom_dir: the folder given there does not exist (a relative path is read from "
                       "the folder you run snakemake in)")
    for key, pattern in (("cohort.roi_pattern", cohort.get("roi_pattern")),
                         ("modelling.feature_pattern", m.get("feature_pattern"))):
        if pattern:
            try:
                re.compile(str(pattern))
            except re.error as err:
                out.append(f"{key}: {pattern!r} is not a valid regular expression ({err})")


def _check_modelling_block(config: Mapping[str, Any], out: list[str]) -> None:
    """The modelling block as the model step reads it (:class:`radsurv.modelling.config.StudyConfig`)."""
    from radsurv.modelling.config import StudyConfig

    block = {k: v for k, v in config["modelling"].items() if k != "classification"}  # read by endpoint_settings
    try:
        StudyConfig.from_dict(block, seed=int(config["seed"]))
    except (ValueError, TypeError) as err:
        out.append(f"modelling: {err}")


def _check_clinical_table(config: Mapping[str, Any], base: Path, is_produced: Callable[[str], bool],
                          out: list[str]) -> Any:
    """The clinical table(s): given with ``cohort.columns``, existing, readable and usable
    (:func:`_check_clinical`). Returns the usable table, or None."""
    cohort = config["cohort"]
    clinical = cohort.get("clinical_table")
    if clinical and not cohort.get("columns"):
        out.append("cohort.columns: needed with cohort.clinical_table (which columns hold the patient id, "
                   "the survival time and the event)")
        return None
    columns = cohort.get("columns") or {}
    if clinical and _survival_study(config) and not (columns.get("time") and columns.get("event")):
        out.append("cohort.columns: a survival study (modelling.endpoint: survival) needs the columns 'time' "
                   "(survival or follow-up time) and 'event' (1 = event, 0 = censored); a study of a binary or "
                   "multiclass endpoint only sets modelling.endpoint and modelling.label instead")
        return None
    if not clinical or any(is_produced(str(c)) for c in _as_paths(clinical)):
        return None
    found_all = [_exists(c, base) for c in _as_paths(clinical)]
    if any(f is None or not f.is_file() for f in found_all):
        n_bad = sum(f is None or not f.is_file() for f in found_all)
        which = "the file given there does not exist" if len(found_all) == 1 else \
            f"{n_bad} of the {len(found_all)} files given there do not exist"
        out.append(f"cohort.clinical_table: {which} (a relative path is read from the folder you run "
                   "snakemake in)")
        return None
    return _check_clinical(config, found_all[0] if len(found_all) == 1 else found_all, out)


def _check_own_feature_table(config: Mapping[str, Any], base: Path, table: Any, out: list[str]) -> None:
    """``modelling.features_table``: exists, reads, and shares patient ids with the clinical table."""
    m = config["modelling"]
    found = _exists(m["features_table"], base)
    if found is None:
        out.append("modelling.features_table: the file given there does not exist")
        return
    feats = _check_feature_table("modelling.features_table", found, m, out)
    if feats is None or table is None:
        return
    shared = set(map(str, feats.index)) & set(table["patient_id"].astype(str))
    if not shared:
        out.append(f"modelling.features_table: none of its patient ids (column '{m['features_id_column']}', e.g. "
                   f"{sorted(map(str, feats.index))[:3]}) is in the clinical table (e.g. "
                   f"{sorted(table['patient_id'].astype(str))[:3]}); the ids must be written the same way")


def _check_volume_feature(config: Mapping[str, Any], out: list[str]) -> None:
    """The volume-only baseline's feature (``modelling.volume_feature``) will be extracted."""
    vol = str(config["modelling"]["volume_feature"])
    classes = (config.get("extraction") or {}).get("feature_classes")
    if classes is not None and "shape" not in classes and vol.startswith("original_shape_"):
        out.append(f"modelling.volume_feature: '{vol}' is a shape feature but extraction.feature_classes "
                   f"{list(classes)} has no 'shape': the volume-only baseline could not be built")
    if vol.startswith("original_shape_") and vol not in SHAPE_FEATURE_NAMES:
        out.append(f"modelling.volume_feature: pyradiomics computes no feature '{vol}'; volume features "
                   "are original_shape_MeshVolume and original_shape_VoxelVolume")


def _check_external_cohorts(config: Mapping[str, Any], base: Path, out: list[str]) -> None:
    """Each external validation cohort's feature and clinical tables exist and read."""
    m, columns = config["modelling"], config["cohort"].get("columns")
    for i, ext_cohort in enumerate(m.get("external_cohorts") or []):
        key = f"modelling.external_cohorts[{ext_cohort.get('name', i)}]"
        f_path = _exists(ext_cohort["features_table"], base)
        c_path = _exists(ext_cohort["clinical_table"], base)
        if f_path is None:
            out.append(f"{key}.features_table: the file given there does not exist")
        else:
            _check_feature_table(f"{key}.features_table", f_path, m, out)
        if c_path is None:
            out.append(f"{key}.clinical_table: the file given there does not exist")
        elif columns:
            from radsurv.ingest.clinical import load_clinical
            from radsurv.workflow.rules import classification_endpoints

            try:
                labels = [str(s["column"]) for s in classification_endpoints(config).values()]
                load_clinical(c_path, columns, labels=labels, survival=_survival_study(config))
            except Exception as err:  # noqa: BLE001
                out.append(_table_problem(f"{key}.clinical_table", "clinical table", err))


def _check_published_signatures(m: Mapping[str, Any], base: Path, out: list[str]) -> None:
    """Each published signature file exists and reads (:func:`radsurv.modelling.signatures.load_signature`;
    imported only when signatures are configured)."""
    for path in m.get("published_signatures") or []:
        from radsurv.modelling.signatures import load_signature

        found = _exists(path, base)
        if found is None:
            out.append(f"modelling.published_signatures: no signature file {Path(path).name!r}")
            continue
        try:
            load_signature(found)
        except Exception as err:  # noqa: BLE001
            out.append(f"modelling.published_signatures: {_first_lines(err)}")


def needs_outcome(config: Mapping[str, Any]) -> str | None:
    """Why the full analysis (target ``all``: models and report) cannot run with this config,
    or None. ``snakemake features`` needs neither a clinical table nor a modelling block."""
    cohort = config.get("cohort") or {}
    missing = [k for k in ("clinical_table", "columns") if not cohort.get(k)]
    if not missing:
        return None
    return ("The models and the report need the outcome: set " + " and ".join(f"cohort.{k}" for k in missing)
            + " (the clinical table with one row per patient, and its id, time and event columns). "
            "To compute features only, run: snakemake features")
