"""The ``longitudinal`` config block as settings objects (issue #18).

The config schema (``workflow/schemas/config.schema.yaml``) checks each key and holds every
default; :func:`longitudinal_settings` turns the validated block into the settings dataclasses
of the stage modules, and checks what a schema cannot: the windows do not overlap, the landmark
is a later time point, exactly one ROI is the tumour. Its errors are sentences naming the key.
:func:`longitudinal_problems` returns them as a list (the workflow's preflight).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from radsurv.longitudinal.delta import DeltaSettings
from radsurv.longitudinal.propagation import PropagationSettings
from radsurv.longitudinal.rois import RoiSpec, rois_from_config
from radsurv.longitudinal.study import StudySettings
from radsurv.longitudinal.timepoints import TimePointSettings
from radsurv.schema import default

__all__ = ["LongitudinalSettings", "longitudinal_problems", "longitudinal_settings"]


@dataclass(frozen=True)
class LongitudinalSettings:
    """Everything the longitudinal rules need, built once from the config."""

    timepoints: TimePointSettings
    rois: tuple[RoiSpec, ...]
    propagation: PropagationSettings
    delta: DeltaSettings
    study: StudySettings
    landmark: str
    extraction: dict[str, Any]
    validate_propagation: bool
    time_column: str
    event_column: str
    endpoint: str
    label_column: str

    @property
    def tumour(self) -> str:
        """The tumour ROI's name (its relative volume change is the classic comparator)."""
        return next(r.name for r in self.rois if r.tumour)

    def pyradiomics_params(self) -> dict[str, Any]:
        """pyradiomics parameters of every ROI at every time point."""
        from radsurv.features.extract import pyradiomics_params

        return pyradiomics_params(self.extraction)


def longitudinal_settings(block: Mapping[str, Any], seed: int) -> LongitudinalSettings:
    """Settings from the validated ``longitudinal`` block (defaults filled in) and the config's ``seed``.
    A block without the study's keys (:func:`radsurv.workflow.rules.longitudinal_upstream`) gets
    their schema defaults, and its landmark is not checked (the rules that get it do not read them).

    Raises:
        ValueError: a sentence naming the setting that is wrong and why.
    """
    tp = TimePointSettings.from_config(block)
    landmark = str(block.get("landmark", default("longitudinal", "landmark")))
    if "landmark" in block and landmark not in tp.names[1:]:
        raise ValueError(f"longitudinal.landmark: {landmark!r} is not one of the later time points "
                         f"{tp.names[1:]} (the landmark is the on-treatment scan whose change is modelled)")
    return LongitudinalSettings(
        timepoints=tp,
        rois=rois_from_config(block["rois"]),
        propagation=PropagationSettings(**block["propagation"]),
        delta=DeltaSettings(**block["delta"]),
        study=StudySettings(**block.get("study", {}), seed=int(seed)),
        landmark=landmark,
        extraction={"bin_width": block["bin_width"], "feature_classes": list(block["feature_classes"])},
        validate_propagation=bool(block["validate_propagation"]),
        time_column=str(block.get("time_column", default("longitudinal", "time_column"))),
        event_column=str(block.get("event_column", default("longitudinal", "event_column"))),
        endpoint=str(block.get("endpoint", default("longitudinal", "endpoint"))),
        label_column=str(block.get("label_column", default("longitudinal", "label_column"))),
    )


def longitudinal_problems(config: Mapping[str, Any]) -> list[str]:
    """The problems of an enabled ``longitudinal`` block a schema cannot see (empty if none or disabled)."""
    block = config.get("longitudinal") or {}
    if not block.get("enabled"):
        return []
    try:
        longitudinal_settings(block, int(config.get("seed", 0)))
    except (ValueError, KeyError, TypeError) as exc:
        msg = str(exc)
        return [msg if msg.startswith("longitudinal") else f"longitudinal: {msg}"]
    return []
