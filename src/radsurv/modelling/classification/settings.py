"""Settings of a classification study (the ``modelling`` block for a binary or multiclass endpoint).

Light: standard library and :mod:`radsurv.schema` only, so the settings can be validated
without scikit-learn. Every default lives once, in ``workflow/schemas/config.schema.yaml``:
the learner grids in ``modelling.classification``, the folds, repeats, correlation threshold
and bootstrap resamples in the ``modelling`` keys shared with the survival models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from radsurv.schema import default

__all__ = ["ENDPOINTS", "LEARNERS", "GRID_KEYS", "SHARED_KEYS", "ClassificationSettings"]

ENDPOINTS = ("binary", "multiclass")
LEARNERS = ("logistic_l2", "logistic_l1", "elasticnet", "rf", "gb", "svm")
#: Keys of the config block ``modelling.classification`` (the learner grids).
GRID_KEYS = ("learners", "n_screen", "n_screen_trees", "logistic_C", "svm_C", "rf_trees", "rf_min_leaf", "gb_trees",
             "gb_learning_rate", "ensemble_sizes", "inner_repeats", "selection", "screen", "min_per_class",
             "cluster_features")
#: ``modelling`` keys shared with the survival models -> the settings field they fill.
SHARED_KEYS = {"cv_folds": "cv_folds", "cv_repeats": "cv_repeats", "inner_folds": "inner_folds",
               "corr_threshold": "corr_threshold", "bootstrap": "n_boot"}


def _grid(key: str) -> Any:
    """The schema default of ``modelling.classification.<key>`` (lists as tuples)."""
    v = default("modelling", "classification", key)
    return tuple(v) if isinstance(v, list) else v

@dataclass
class ClassificationSettings:
    """Defaults of a classification study (the ``modelling`` block for a non-survival endpoint).

    Every default is the schema's (``modelling.classification.<key>`` for the learner grids,
    ``modelling.<key>`` for the folds, repeats, correlation threshold and bootstrap);
    :meth:`from_config` builds the settings from a validated config.

    Attributes:
        endpoint: ``binary`` or ``multiclass``.
        cv_folds, cv_repeats: outer stratified K-fold and its repeats.
        inner_folds: inner stratified folds tuning features, learner and hyperparameters.
        learners: learners the inner loop may choose from (subset of :data:`LEARNERS`).
        n_screen: numbers of screened features tried for linear models and SVM (0 = every feature).
        n_screen_trees: numbers of screened features tried for forests and boosting (0 = every
            feature, no screen).
        logistic_C: inverse penalty strengths tried for logistic regression.
        svm_C: SVM (RBF kernel) penalties tried.
        rf_trees, rf_min_leaf: random forest size and minimum leaf sizes tried.
        gb_trees, gb_learning_rate: gradient boosting stages and learning rate.
        ensemble_sizes: sizes of the "average of the best inner candidates" ensembles
            that compete with the single best candidate (1 = no ensemble).
        inner_repeats: repeats of the inner K-fold with new folds (a less noisy choice).
        selection: ``best`` (highest mean inner AUC) or ``one_se`` (the largest ensemble
            within one standard error of the best).
        corr_threshold: |Spearman rho| above which features are clustered.
        cluster_features: cluster correlated features (one representative each) before the
            screen and the learners; off, every feature that passes the quality filter is kept.
        screen: ``f`` (ANOVA F) or ``rank`` (Mann-Whitney / Kruskal-Wallis).
        min_per_class: fewest patients a class may have.
        n_boot: bootstrap samples of the confidence intervals.
        seed: study seed.
    """

    endpoint: str = "binary"
    cv_folds: int = default("modelling", "cv_folds")
    cv_repeats: int = default("modelling", "cv_repeats")
    inner_folds: int = default("modelling", "inner_folds")
    learners: tuple[str, ...] = _grid("learners")
    n_screen: tuple[int, ...] = _grid("n_screen")
    n_screen_trees: tuple[int, ...] = _grid("n_screen_trees")
    logistic_C: tuple[float, ...] = _grid("logistic_C")
    svm_C: tuple[float, ...] = _grid("svm_C")
    rf_trees: int = _grid("rf_trees")
    rf_min_leaf: tuple[int, ...] = _grid("rf_min_leaf")
    gb_trees: int = _grid("gb_trees")
    gb_learning_rate: float = _grid("gb_learning_rate")
    ensemble_sizes: tuple[int, ...] = _grid("ensemble_sizes")
    inner_repeats: int = _grid("inner_repeats")
    selection: str = _grid("selection")
    corr_threshold: float = default("modelling", "corr_threshold")
    cluster_features: bool = _grid("cluster_features")
    screen: str = _grid("screen")
    min_per_class: int = _grid("min_per_class")
    n_boot: int = default("modelling", "bootstrap")
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):  # lists from a config file as tuples (the estimators stay clonable)
            v = getattr(self, f.name)
            if isinstance(v, list):
                setattr(self, f.name, tuple(v))
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"modelling.endpoint must be one of {ENDPOINTS} (or survival), got {self.endpoint!r}")
        bad = [lr for lr in self.learners if lr not in LEARNERS]
        if bad or not self.learners:
            raise ValueError(f"unknown learner(s) {bad}; choose from {LEARNERS}")
        if self.selection not in ("best", "one_se"):
            raise ValueError(f"selection must be 'best' or 'one_se', got {self.selection!r}")
        if self.inner_repeats < 1:
            raise ValueError("inner_repeats must be >= 1")
        if self.screen not in ("f", "rank"):
            raise ValueError(f"screen must be 'f' or 'rank', got {self.screen!r}")
        if self.cv_folds < 2 or self.inner_folds < 2 or self.cv_repeats < 1:
            raise ValueError("cv_folds and inner_folds must be >= 2 and cv_repeats >= 1")
        if not 0 < self.corr_threshold <= 1:
            raise ValueError("corr_threshold must lie in (0, 1]")

    @classmethod
    def from_config(cls, modelling: Mapping[str, Any] | None, endpoint: str, seed: int = 0) -> ClassificationSettings:
        """The settings of one endpoint from the config's ``modelling`` block: the shared keys
        (:data:`SHARED_KEYS`) and the ``classification`` block (:data:`GRID_KEYS`); keys that
        are absent keep the schema default; other ``modelling`` keys (survival) are ignored."""
        m = dict(modelling or {})
        kw: dict[str, Any] = {field: m[key] for key, field in SHARED_KEYS.items() if key in m}
        grid = dict(m.get("classification") or {})
        unknown = sorted(set(grid) - set(GRID_KEYS))
        if unknown:
            raise ValueError(f"unknown modelling.classification key(s) {unknown}; known: {list(GRID_KEYS)}")
        kw.update(grid)
        return cls(endpoint=endpoint, seed=int(seed), **kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings (as passed to the estimators, which stay clonable)."""
        return asdict(self)
