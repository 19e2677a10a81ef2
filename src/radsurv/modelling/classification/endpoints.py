"""A categorical endpoint of the config (``modelling.label`` / ``modelling.endpoints``): its
study settings and the checks of its column that can be made before any job runs.

Light: standard library only (plus the light :mod:`.settings`), so that
:func:`radsurv.config.preflight` can use it while Snakemake parses the DAG.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from radsurv.modelling.classification.settings import ClassificationSettings

__all__ = ["endpoint_settings", "label_text", "class_counts", "label_problems"]

def endpoint_settings(modelling: Mapping[str, Any], seed: int, endpoint: str) -> ClassificationSettings:
    """The :class:`ClassificationSettings` of one endpoint of the run: the design keys shared with
    the survival study, the config's ``seed``, the endpoint's kind (``binary`` / ``multiclass``)
    and the learner grids of ``modelling.classification``
    (:meth:`ClassificationSettings.from_config`).

    Raises:
        ValueError: an unknown key in ``modelling.classification`` or a value the settings reject.
    """
    return ClassificationSettings.from_config(modelling, endpoint, seed)


def label_text(value: Any) -> str | None:
    """A label cell as the endpoint reads it: stripped text, ``None`` when empty or missing
    (the same reading as :func:`radsurv.modelling.classification.design.validate_labels`)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    s = str(value).strip()
    return s or None


def class_counts(values: Iterable[Any], classes: Iterable[Any] | None = None) -> tuple[Counter[str], int, int]:
    """``(patients per class, missing values, values not among the declared classes)``."""
    allowed = None if classes is None else {str(c).strip() for c in classes}
    counts: Counter[str] = Counter()
    n_missing = n_unknown = 0
    for v in values:
        t = label_text(v)
        if t is None:
            n_missing += 1
        elif allowed is not None and t not in allowed:
            n_unknown += 1
        else:
            counts[t] += 1
    return counts, n_missing, n_unknown


def label_problems(values: Iterable[Any], spec: Mapping[str, Any], min_per_class: int, key: str) -> list[str]:
    """What makes an endpoint column unusable, one plain sentence each (empty when usable).

    ``spec``: ``{endpoint, column, positive_class?, classes?}``; ``key``: the config key the
    sentences name (``modelling.label`` or ``modelling.endpoints.<name>``). Checked: two or more
    classes among the valid values (exactly two for a binary endpoint), the positive class among
    them, at least ``min_per_class`` patients in every class. Missing and undeclared values are
    not problems: the endpoint's QC table reports each such patient.
    """
    column = spec["column"]
    counts, n_missing, n_unknown = class_counts(values, spec.get("classes"))
    skipped = (f" ({n_missing} missing and {n_unknown} undeclared value(s) are left out)"
               if n_missing or n_unknown else "")
    found = ", ".join(f"{c} ({n})" for c, n in sorted(counts.items())) or "none"
    if len(counts) < 2:
        return [f"{key}: column '{column}' has {len(counts)} class(es) among its valid values ({found}){skipped}; "
                "a classification endpoint needs at least two"]
    out = []
    if spec["endpoint"] == "binary" and len(counts) != 2:
        out.append(f"{key}: column '{column}' has {len(counts)} classes ({found}) but the endpoint is binary; "
                   "declare the two classes (classes: [...]) or make the endpoint multiclass")
    pos = spec.get("positive_class")
    if spec["endpoint"] == "binary" and pos is not None and str(pos).strip() not in counts:
        out.append(f"{key}.positive_class: '{pos}' never occurs in column '{column}' (its classes: {found})")
    small = {c: n for c, n in counts.items() if n < int(min_per_class)}
    if small:
        out.append(f"{key}: class(es) {', '.join(f'{c} ({n})' for c, n in sorted(small.items()))} of column "
                   f"'{column}' have fewer than {min_per_class} patients, too few for cross-validated modelling "
                   "(merge classes, or leave this endpoint out)")
    return out
