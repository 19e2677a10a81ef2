"""Helpers the Snakefile calls while it builds the DAG.

Light on purpose: importing this module (and everything the Snakefile imports) loads no
scipy, SimpleITK, matplotlib, pyradiomics, scikit-learn or scikit-survival, so that
``snakemake -n`` and the main Snakemake process of a run stay quick
(``tests/test_workflow.py::test_parsing_the_dag_imports_no_heavy_library``).
Result paths are built in the rules, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def cohort_source(cohort: Mapping[str, Any]) -> tuple[str, str]:
    """``("dicom", folder)`` or ``("sheet", file)`` from ``config['cohort']``.

    Raises ValueError with a plain sentence when neither or both are given, or
    when a DICOM cohort lacks ``roi_pattern``.
    """
    dicom, sheet = cohort.get("dicom_dir"), cohort.get("image_sheet")
    if dicom and sheet:
        raise ValueError(
            "cohort: give either dicom_dir (a folder of DICOM files) or image_sheet (a table of "
            "NIfTI/NRRD image and mask files), not both"
        )
    if not dicom and not sheet:
        raise ValueError(
            "cohort: the setting 'dicom_dir' or 'image_sheet' is missing (where the cohort's images are: "
            "a folder of DICOM files, or a table of NIfTI/NRRD image and mask files)"
        )
    if dicom and not cohort.get("roi_pattern"):
        raise ValueError(
            "cohort: the setting 'roi_pattern' is missing (a regular expression matched against ROI names, "
            "for example ^GTV); a DICOM cohort needs it to find the tumour contour"
        )
    return ("dicom", str(dicom)) if dicom else ("sheet", str(sheet))


def robustness_analyses(robustness: Mapping[str, Any]) -> list[str]:
    """The robustness analyses ``config['robustness']`` switches on: ``test-retest``,
    ``perturbation`` (by ``method``, which the config schema has checked) and
    ``discretisation`` (when enabled), in the order the workflow runs and combines them."""
    method = robustness["method"]
    names = (["test-retest"] if method in ("test-retest", "both") else []) + \
        (["perturbation"] if method in ("perturbation", "both") else [])
    if robustness["discretisation"]["enabled"]:
        names.append("discretisation")
    return names


def first_scans(scans_tsv: str | Path) -> list[str]:
    """Each patient's first scan (lowest ``session``) in ``scans.tsv``: the scan modelling uses.

    Perturbation and discretisation robustness are computed on these, so a
    retest scan never takes part in them.
    """
    import pandas as pd

    from radsurv.robustness.selection import first_scans as first_of_each_patient

    return first_of_each_patient(pd.read_csv(scans_tsv, sep="\t", dtype=str))


def scan_ids(scans_tsv: str | Path) -> list[str]:
    """Every scan id of ``scans.tsv``, in its order."""
    import pandas as pd

    return pd.read_csv(scans_tsv, sep="\t", dtype=str)["scan_id"].tolist()


def scan_batches(scans: Sequence[str], batch_size: int) -> dict[str, list[str]]:
    """Scans in groups of ``batch_size`` (rule ``extract_scan_batch``), in the order of
    ``scans.tsv``: batch id (``"0"``, ``"1"``, ...) -> its scan ids."""
    size = max(1, int(batch_size))
    return {str(i // size): list(scans[i:i + size]) for i in range(0, len(scans), size)}


def batch_of(scan: str, scans: Sequence[str], batch_size: int) -> str:
    """The batch id of ``scan`` (:func:`scan_batches`)."""
    return str(list(scans).index(scan) // max(1, int(batch_size)))


def model_inputs(config: Mapping[str, Any], pipeline: Mapping[str, str]) -> dict[str, str]:
    """Input files of rule ``fit_models``.

    ``pipeline``: the workflow's own ``features``, ``robust`` and ``clinical`` files (paths
    from the rules), used unless ``modelling.features_table`` is set; then the user's feature
    table and raw clinical table. Plus external cohorts' tables and published signatures.
    """
    m = config["modelling"]
    if m.get("features_table"):
        files = {"features": m["features_table"], "clinical": config["cohort"]["clinical_table"]}
    else:
        files = {k: pipeline[k] for k in ("features", "robust", "clinical")}
    for i, ext in enumerate(m.get("external_cohorts", []) or []):
        files[f"external_features_{i}"] = ext["features_table"]
        files[f"external_clinical_{i}"] = ext["clinical_table"]
    files.update({f"signature_{i}": p for i, p in enumerate(m.get("published_signatures", []) or [])})
    files.update(harmonisation_model_inputs(config))
    return files


#: Files of rule ``harmonisation_batches`` that ``fit_models`` reads when harmonisation is on.
HARMONISATION_FILES = {"harmonisation_batches": "results/harmonisation/batches.tsv",
                       "harmonisation_settings": "results/harmonisation/settings.json"}


def harmonisation_enabled(config: Mapping[str, Any]) -> bool:
    """Whether ComBat harmonisation runs (``harmonisation.enabled``)."""
    return bool((config.get("harmonisation") or {}).get("enabled", False))


def harmonisation_model_inputs(config: Mapping[str, Any]) -> dict[str, str]:
    """The extra inputs of ``fit_models`` when harmonisation is on (none when off, so the
    rule and its outputs are exactly those of a single-centre study)."""
    return dict(HARMONISATION_FILES) if harmonisation_enabled(config) else {}


def robustness_within_batch(config: Mapping[str, Any]) -> bool:
    """Whether the robustness ICCs nest patients in their harmonisation batch (harmonisation on
    and ``robustness.within_batch``)."""
    return harmonisation_enabled(config) and bool((config.get("robustness") or {}).get("within_batch"))


def _negative_controls_pattern() -> str:
    from radsurv.robustness.controls import CONTROLS

    return "|".join(sorted(CONTROLS, key=len, reverse=True))


#: The ``{control}`` wildcard of the negative-control rules: one of the controls offered.
NEGATIVE_CONTROLS_PATTERN = _negative_controls_pattern()


def negative_controls(config: Mapping[str, Any]) -> list[str]:
    """The negative controls the run re-studies (``harmonisation.negative_controls``), on the
    pipeline's own scans only (a user's feature table has no images)."""
    if (config.get("modelling") or {}).get("features_table"):
        return []
    return [str(c) for c in ((config.get("harmonisation") or {}).get("negative_controls") or [])]


def harmonisation_diagnostics_enabled(config: Mapping[str, Any]) -> bool:
    """Whether rule ``harmonisation_diagnostics`` runs (enabled and ``diagnostics`` not off)."""
    h = config.get("harmonisation") or {}
    return harmonisation_enabled(config) and bool(h.get("diagnostics", True))


def survival_study(config: Mapping[str, Any]) -> bool:
    """Whether the run studies a survival endpoint (``modelling.endpoint`` is ``survival``): the
    survival model rules, Kaplan-Meier figures and survival report sections run only then."""
    return (config.get("modelling") or {}).get("endpoint", "survival") == "survival"


def classification_endpoints(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's binary and multiclass endpoints, name -> ``{endpoint, column, positive_class?,
    classes?}``, in config order: the main endpoint (``modelling.endpoint`` binary or multiclass,
    named after its ``modelling.label.column``) first, then ``modelling.endpoints``. Each gets its
    own outputs in ``results/endpoints/<name>/``.

    Raises ValueError with a plain sentence when a categorical main endpoint has no
    ``modelling.label``, or when two endpoints share a name.
    """
    m = config.get("modelling") or {}
    out: dict[str, dict[str, Any]] = {}
    if m.get("endpoint", "survival") != "survival":
        label = m.get("label")
        if not label or not label.get("column"):
            raise ValueError(
                f"modelling: the main endpoint is {m['endpoint']}, so modelling.label.column must name the "
                "clinical table's column that holds each patient's class"
            )
        out[str(label["column"])] = {"endpoint": m["endpoint"], **dict(label)}
    for name, spec in (m.get("endpoints") or {}).items():
        if name in out:
            raise ValueError(
                f"modelling.endpoints: the name {name!r} is already the main endpoint's; give it another name"
            )
        out[str(name)] = dict(spec)
    return out


def biology_columns(config: Mapping[str, Any]) -> dict[str, str]:
    """The clinical columns the radiogenomics screen tests, column -> declared type: each
    categorical endpoint's column (``binary``, or ``categorical`` for a multiclass one), then
    ``modelling.biology_columns`` (``""``: the type is read from the values). Empty: no screen."""
    out: dict[str, str] = {}
    for spec in classification_endpoints(config).values():
        out.setdefault(str(spec["column"]), "binary" if spec["endpoint"] == "binary" else "categorical")
    for col in (config.get("modelling") or {}).get("biology_columns") or []:
        out.setdefault(str(col), "")
    return out


def endpoint_files(config: Mapping[str, Any], patterns: Mapping[str, Any]) -> dict[str, str]:
    """Every categorical endpoint's files as named inputs of the report rule:
    ``endpoint__<name>__<kind>`` -> ``patterns[kind]`` with ``{endpoint}`` set to the name."""
    return {f"endpoint__{name}__{kind}": str(pattern).format(endpoint=name)
            for name in classification_endpoints(config) for kind, pattern in patterns.items()}


def survival_only(config: Mapping[str, Any], files: Mapping[str, Any]) -> dict[str, Any]:
    """``files`` when the study has a survival endpoint (:func:`survival_study`), else none: the
    survival inputs and outputs of the report rules."""
    return dict(files) if survival_study(config) else {}


def biology_inputs(config: Mapping[str, Any], pipeline: Mapping[str, str]) -> dict[str, Any]:
    """Input files of rule ``radiogenomics_screen``: the pipeline's ``features`` and ``robust``
    list (paths from the rules), or ``modelling.features_table`` when set; and the raw clinical
    table(s) ``cohort.clinical_table``, where the biology columns are."""
    m = config["modelling"]
    files: dict[str, Any] = ({"features": m["features_table"]} if m.get("features_table")
                             else {k: pipeline[k] for k in ("features", "robust")})
    files["clinical"] = config["cohort"]["clinical_table"]
    return files


def federated_inputs(config: Mapping[str, Any]) -> dict[str, str]:
    """Input files of rule ``federated_study``: each site's feature and clinical table
    (``features_<i>``, ``clinical_<i>`` in the order of ``federated.sites``)."""
    files: dict[str, str] = {}
    for i, site in enumerate((config.get("federated") or {}).get("sites") or []):
        files[f"features_{i}"] = str(site["features_table"])
        files[f"clinical_{i}"] = str(site["clinical_table"])
    return files


def federated_enabled(config: Mapping[str, Any]) -> bool:
    """Whether the run includes the federated study (``federated.enabled``) in ``all`` and the report."""
    return bool((config.get("federated") or {}).get("enabled", False))


def longitudinal_enabled(config: Mapping[str, Any]) -> bool:
    """Whether the run includes the delta-radiomics study (``longitudinal.enabled``) in ``all`` and the report."""
    return bool((config.get("longitudinal") or {}).get("enabled", False))


#: The keys of the ``longitudinal`` block that only the study and its figures read. The rules
#: before the study (time points, per-scan features, deltas) get the block without them
#: (:func:`longitudinal_upstream`), so editing the endpoint, the landmark or the study settings
#: re-runs the study, not the propagation and extraction of every scan.
LONGITUDINAL_STUDY_KEYS = ("enabled", "clinical", "time_column", "event_column", "endpoint", "label_column",
                           "landmark", "study")


def longitudinal_upstream(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``longitudinal`` block without :data:`LONGITUDINAL_STUDY_KEYS` (parameters of the rules before the study)."""
    return {k: v for k, v in (config.get("longitudinal") or {}).items() if k not in LONGITUDINAL_STUDY_KEYS}


def longitudinal_demo_tables(config: Mapping[str, Any], demo_dir: str) -> list[str]:
    """The longitudinal demo's tables in ``demo_dir`` when ``demo.longitudinal`` makes them (else none)."""
    if not (config.get("demo") or {}).get("longitudinal"):
        return []
    return [f"{demo_dir}/{name}.tsv" for name in ("images", "contours", "clinical", "truth")]
