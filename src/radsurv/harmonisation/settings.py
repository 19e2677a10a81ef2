"""The config's ``harmonisation:`` block, parsed, and what the survival study needs from it.

Light module (no scikit-learn, no neuroCombat at import time): the workflow's parse-time
helpers and :mod:`radsurv.modelling.data` import it. The defaults live in
``workflow/schemas/config.schema.yaml`` only (:func:`radsurv.schema.default`); a block read
without the schema (a notebook) gets them from there too.

When ``enabled``, ComBat (:class:`radsurv.harmonisation.combat.ComBatHarmoniser`) becomes
the first step of the radiomics branch of every survival pipeline and is refit on the
training patients of every outer and inner fold, of the final models, and applied
unchanged to held-out and external patients. The batch label of each patient and the
protected covariates travel as extra columns of the modelling frame
(:data:`BATCH_COLUMN`, :func:`protect_column`), which the harmoniser reads and drops.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from radsurv.harmonisation.combat import ComBatHarmoniser

__all__ = ["BATCH_COLUMN", "VOLUME_COVARIATE", "HarmonisationSettings", "HarmonisationInput", "protect_column",
           "read_harmonisation"]

#: Column of the modelling frame holding each patient's batch label (read and dropped by ComBat).
BATCH_COLUMN = "_harmonisation_batch"

#: Name of the protected covariate ``log(tumour volume)`` (``harmonisation.protect_volume``).
VOLUME_COVARIATE = "tumour_log_volume"

#: Feature-name fragment of shape features (not harmonised when ``exclude_shape``).
SHAPE_FRAGMENT = "shape_"


def protect_column(name: str) -> str:
    """Column of the modelling frame holding protected covariate ``name`` for ComBat."""
    return f"_harmonisation_protect_{name}"


def _default(*keys: str) -> Any:
    from radsurv.schema import default

    return default("harmonisation", *keys)


@dataclass(frozen=True)
class HarmonisationSettings:
    """The ``harmonisation:`` block (see ``config/README.md``)."""

    enabled: bool
    batch_column: str | None
    acquisition: tuple[str, ...]
    method: str
    empirical_bayes: bool
    protect: tuple[str, ...]
    unseen_batch: str
    min_batch_size: int
    exclude_shape: bool
    diagnostics: bool
    protect_volume: bool = False

    @property
    def protected(self) -> tuple[str, ...]:
        """Every protected covariate: the clinical ``protect`` columns, then
        :data:`VOLUME_COVARIATE` with ``protect_volume``."""
        return self.protect + ((VOLUME_COVARIATE,) if self.protect_volume else ())

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> HarmonisationSettings:
        """From the config block (schema defaults for absent keys); ``ValueError`` on bad values."""
        from radsurv.harmonisation.batches import ACQUISITION_FIELDS
        from radsurv.harmonisation.combat import UNSEEN_BATCH_POLICIES

        b = dict(block or {})
        batch = dict(b.get("batch") or _default("batch") or {})

        def get(key: str) -> Any:
            return b[key] if key in b else _default(key)

        s = cls(enabled=bool(get("enabled")), batch_column=(batch.get("column") or None),
                acquisition=tuple(str(a) for a in (batch.get("acquisition") or ())), method=str(get("method")),
                empirical_bayes=bool(get("empirical_bayes")), protect=tuple(str(p) for p in (get("protect") or ())),
                unseen_batch=str(get("unseen_batch")), min_batch_size=int(get("min_batch_size")),
                exclude_shape=bool(get("exclude_shape")),
                diagnostics=bool(get("diagnostics")), protect_volume=bool(get("protect_volume")))
        if s.method != "combat":
            raise ValueError(f"harmonisation.method must be 'combat', got {s.method!r}")
        if s.unseen_batch not in UNSEEN_BATCH_POLICIES:
            raise ValueError(f"harmonisation.unseen_batch must be one of {list(UNSEEN_BATCH_POLICIES)}, "
                             f"got {s.unseen_batch!r}")
        if s.min_batch_size < 2:
            raise ValueError("harmonisation.min_batch_size must be at least 2 (a batch's spread needs two patients)")
        bad = [a for a in s.acquisition if a not in ACQUISITION_FIELDS]
        if bad:
            raise ValueError(f"harmonisation.batch.acquisition: unknown fact(s) {bad}; choose from "
                             f"{list(ACQUISITION_FIELDS)}")
        if s.enabled and not s.batch_column and not s.acquisition:
            raise ValueError("harmonisation is enabled but harmonisation.batch names neither a clinical column "
                             "(batch.column, e.g. the centre) nor acquisition facts (batch.acquisition)")
        return s

    def policy_text(self) -> str:
        """The unseen-batch policy in one sentence, for the report."""
        if self.unseen_batch == "refuse":
            return ("A patient whose batch had fewer than "
                    f"{self.min_batch_size} patients in a fit's training patients (or none) is refused: "
                    "the run stops with a message naming the batch, because ComBat cannot estimate its offset.")
        return ("A patient whose batch had fewer than "
                f"{self.min_batch_size} patients in a fit's training patients (or none) is left uncorrected "
                "(passthrough) and flagged: its features enter the model as measured.")

    def harmoniser(self, candidates: Sequence[str], protect_numeric: Sequence[str] = (),
                   protect_categorical: Sequence[str] = ()) -> ComBatHarmoniser:
        """The unfitted :class:`ComBatHarmoniser` for a radiomics branch with ``candidates``."""
        from radsurv.harmonisation.combat import ComBatHarmoniser

        skip = [c for c in candidates if SHAPE_FRAGMENT in c] if self.exclude_shape else []
        return ComBatHarmoniser(batch_column=BATCH_COLUMN, covariates=tuple(protect_numeric),
                                categorical_covariates=tuple(protect_categorical), eb=self.empirical_bayes,
                                min_batch_size=self.min_batch_size, unseen_batch=self.unseen_batch,
                                skip_features=tuple(skip))

    def describe(self) -> dict[str, Any]:
        """Plain dict for metrics.json / the report."""
        return {"method": "ComBat (neuroCombat), " + ("empirical Bayes" if self.empirical_bayes else
                                                      "no empirical Bayes"),
                "batch_column": self.batch_column, "acquisition": list(self.acquisition),
                "protect": list(self.protected), "unseen_batch": self.unseen_batch,
                "min_batch_size": self.min_batch_size, "exclude_shape": self.exclude_shape,
                "policy": self.policy_text()}


@dataclass
class HarmonisationInput:
    """What :func:`radsurv.modelling.study.run_study` needs to harmonise inside the folds.

    ``batches``: batch label per patient id (``None``/missing: unknown); ``protect``: the
    protected covariates per patient id (text, as in the clinical table), columns
    ``settings.protect``.
    """

    settings: HarmonisationSettings
    batches: pd.Series
    protect: pd.DataFrame | None = None


def read_harmonisation(batches: str | Path, settings: str | Path) -> HarmonisationInput:
    """The files of rule ``harmonisation_batches`` (``batches.tsv``: ``patient_id, batch``;
    ``settings.json``: the config block as used) as :class:`HarmonisationInput`."""
    import pandas as pd

    st = HarmonisationSettings.from_config(json.loads(Path(settings).read_text())["config"])
    b = pd.read_csv(batches, sep="\t", dtype=str, keep_default_na=False)
    labels = pd.Series(b["batch"].where(b["batch"] != "", None).to_numpy(), index=b["patient_id"].to_numpy(),
                       dtype=object)
    return HarmonisationInput(st, labels, None)
