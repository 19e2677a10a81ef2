"""The ``modelling`` block of the config as a validated dataclass, :class:`StudyConfig`.

Light on purpose: imports only the standard library, numpy, pandas and light radsurv
modules (no scikit-learn, scipy or scikit-survival), so the workflow can validate the
config (:func:`radsurv.config.preflight`) without loading the modelling stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from radsurv.ingest.clinical import CovariateSpec

__all__ = ["StudyConfig", "LEARNERS", "MODELS", "RISK_CUTS", "PRIMARY", "SEED_SPLIT", "SEED_OUTER_FOLDS",
           "SEED_FOLD_FIT", "SEED_FINAL_FIT", "SEED_BOOTSTRAP", "derive_seed", "parallel_map"]

#: Survival learners of the radiomics model (estimators in :mod:`radsurv.modelling.transformers`).
LEARNERS = ("cox", "coxnet", "rsf", "gbsa")
MODELS = ("radiomics", "volume", "clinical", "combined")
RISK_CUTS = ("median", "tertiles", "maxstat")
PRIMARY = "radiomics"
#: Purposes of the seeds derived from the config's ``seed`` (:func:`derive_seed`).
SEED_SPLIT, SEED_OUTER_FOLDS, SEED_FOLD_FIT, SEED_FINAL_FIT, SEED_BOOTSTRAP = 1, 2, 3, 4, 5


def derive_seed(seed: int, *keys: int) -> int:
    """A ``random_state`` in ``[0, 2**32 - 1]`` derived from the study seed and ``keys``
    (purpose, repeat, fold ...) by numpy's :class:`numpy.random.SeedSequence`.

    Any non-negative seed works (scikit-learn and numpy's legacy generators accept only
    32-bit seeds, so ``seed * 1000 + r`` overflowed for seeds above 4,294,967); different
    keys give independent streams, and the same inputs always give the same number.

    Raises:
        ValueError: a negative seed or key, with a message naming the config key.
    """
    vals = [int(seed), *(int(k) for k in keys)]
    if any(v < 0 for v in vals):
        raise ValueError(f"the config's seed must be a whole number >= 0, got {seed}")
    return int(np.random.SeedSequence(vals).generate_state(1, dtype=np.uint32)[0])


def parallel_map(func: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], n_jobs: int = 1) -> list[Any]:
    """``[func(*t) for t in tasks]``, in worker processes when ``n_jobs`` > 1 (joblib), in task order.

    The tasks must be independent and carry their own seeds: the results are then the same for
    any ``n_jobs``. Estimators inside keep one thread each.
    """
    jobs = max(1, min(int(n_jobs), len(tasks)))
    if jobs == 1:
        return [func(*t) for t in tasks]
    from joblib import Parallel, delayed

    return list(Parallel(n_jobs=jobs)(delayed(func)(*t) for t in tasks))


def validation_rows(column: Any, split_by: str, validation_values: Sequence[str],
                    split_date: str | None) -> tuple[np.ndarray, str]:
    """Which patients of the ``split`` design are validation patients, from the ``split_by``
    column (a pandas Series over the patients): on or after ``split_date`` when given, else a
    value among ``validation_values`` (as text, stripped); and how the split was made, in words.

    Raises:
        ValueError: ``split_date`` with values that are not dates, or an empty cohort.
    """
    import pandas as pd

    if split_date:
        d = pd.to_datetime(column, errors="coerce")
        if d.isna().any():
            raise ValueError(f"split_by column {split_by!r} has {int(d.isna().sum())} value(s) that are not dates")
        is_val = (d >= pd.Timestamp(split_date)).to_numpy()
        how = f"{split_by} on/after {split_date}"
    else:
        is_val = column.astype(str).str.strip().isin(validation_values).to_numpy()
        how = f"{split_by} in {list(validation_values)}"
    if is_val.all() or not is_val.any():
        raise ValueError(f"the split ({how}) leaves an empty development or validation cohort")
    return is_val, how


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


@dataclass(frozen=True)
class StudyConfig:
    """The ``modelling`` block of the config (see config/README.md for each key)."""

    endpoint: str = "survival"
    label: dict[str, Any] | None = None
    endpoints: dict[str, Any] = field(default_factory=dict)
    biology_columns: list[str] = field(default_factory=list)
    classification: dict[str, Any] = field(default_factory=dict)
    design: str = "cv"
    cv_folds: int = 5
    cv_repeats: int = 3
    inner_folds: int = 3
    test_fraction: float = 0.35
    split_by: str | None = None
    validation_values: tuple[str, ...] = ()
    split_date: str | None = None
    learner: str = "cox"
    corr_threshold: float = 0.9
    n_screen: int = 20
    max_features: tuple[int, ...] = (2, 4, 8)
    penalizer: tuple[float, ...] = (1.0, 10.0)
    l1_ratio: float = 1.0
    coxnet_alphas: tuple[float, ...] = (0.05, 0.1, 0.2)
    rsf_trees: int = 300
    rsf_min_leaf: tuple[int, ...] = (5, 15)
    gbsa_trees: int = 100
    gbsa_learning_rate: tuple[float, ...] = (0.05, 0.1)
    clinical_covariates: dict[str, Any] = field(default_factory=dict)
    missing_covariates: str = "impute"
    risk_cut: str = "median"
    horizons: tuple[float, ...] = ()
    tau: float | None = None
    calibration_groups: int = 4
    volume_feature: str = "original_shape_MeshVolume"
    volume_adjust: bool = False
    volume_surrogate_rho: float = 0.9  # read by the volume_correlation rule and the report, not by the fits
    bootstrap: int = 500
    features_table: str | None = None
    features_id_column: str = "patient_id"
    features_header_rows: int = 1
    features_id_pattern: str | None = None
    feature_pattern: str | None = None
    external_cohorts: tuple[dict[str, str], ...] = ()
    published_signatures: tuple[str, ...] = ()
    seed: int = 42

    def __post_init__(self) -> None:
        self._normalise()
        self._check_seed()
        self._check_choices()
        self._check_design()
        self.covariate_specs()  # validates the covariate definitions

    def _normalise(self) -> None:
        """Sequences as tuples (a single value becomes a 1-tuple), validation values as text."""
        for k in ("max_features", "penalizer", "coxnet_alphas", "rsf_min_leaf", "gbsa_learning_rate",
                  "horizons", "validation_values", "external_cohorts", "published_signatures"):
            object.__setattr__(self, k, tuple(_as_list(getattr(self, k))))
        object.__setattr__(self, "validation_values", tuple(str(v) for v in self.validation_values))

    def _check_seed(self) -> None:
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0 (it makes the folds and resamples "
                             f"reproducible), got {self.seed!r}")

    def _check_choices(self) -> None:
        """Keys with a fixed set of values."""
        if self.design not in ("cv", "split"):
            raise ValueError(f"design must be 'cv' or 'split', got {self.design!r}")
        if self.learner not in LEARNERS:
            raise ValueError(f"learner must be one of {LEARNERS}, got {self.learner!r}")
        if self.risk_cut not in RISK_CUTS:
            raise ValueError(f"risk_cut must be one of {RISK_CUTS}, got {self.risk_cut!r}")
        if self.missing_covariates not in ("impute", "complete_case"):
            raise ValueError("missing_covariates must be 'impute' or 'complete_case'")

    def _check_design(self) -> None:
        """Folds, split and tuning grids."""
        if self.cv_folds < 2 or self.inner_folds < 2 or self.cv_repeats < 1:
            raise ValueError("cv_folds and inner_folds must be >= 2, cv_repeats >= 1")
        if not 0 < self.test_fraction < 1:
            raise ValueError("test_fraction must be in (0, 1)")
        if self.design == "split" and self.split_by and not (self.validation_values or self.split_date):
            raise ValueError("split_by needs validation_values or split_date")
        if not self.max_features or not self.penalizer:
            raise ValueError("max_features and penalizer need at least one value")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, seed: int | None = None) -> StudyConfig:
        """From the config block; unknown keys raise ``ValueError`` (typos)."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown modelling config key(s): {unknown}")
        if seed is not None:
            d["seed"] = int(seed)
        return cls(**d)

    def covariate_specs(self) -> list[CovariateSpec]:
        """The configured clinical covariates, parsed (raises ``ValueError`` on a bad definition)."""
        return [CovariateSpec.from_config(k, v) for k, v in (self.clinical_covariates or {}).items()]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists), as written to the final-model description."""
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
