"""Settings of a classification study (the ``modelling`` block for a binary or multiclass endpoint).

Light: standard library only, so the settings can be validated without scikit-learn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ENDPOINTS", "LEARNERS", "ClassificationSettings"]

ENDPOINTS = ("binary", "multiclass")
LEARNERS = ("logistic_l2", "logistic_l1", "elasticnet", "rf", "gb", "svm")

@dataclass
class ClassificationSettings:
    """Defaults of a classification study (the ``modelling`` block for a non-survival endpoint).

    Attributes:
        endpoint: ``binary`` or ``multiclass``.
        cv_folds, cv_repeats: outer stratified K-fold and its repeats.
        inner_folds: inner stratified folds tuning features, learner and hyperparameters.
        learners: learners the inner loop may choose from (subset of :data:`LEARNERS`).
        n_screen: numbers of screened features tried for linear models and SVM.
        n_screen_trees: numbers of screened features tried for forests and boosting.
        logistic_C: inverse penalty strengths tried for logistic regression.
        svm_C: SVM (RBF kernel) penalties tried.
        rf_trees, rf_min_leaf: random forest size and minimum leaf sizes tried.
        gb_trees, gb_learning_rate: gradient boosting stages and learning rate.
        ensemble_sizes: sizes of the "average of the best inner candidates" ensembles
            that compete with the single best candidate (1 = no ensemble).
        corr_threshold: |Spearman rho| above which features are clustered.
        screen: ``f`` (ANOVA F) or ``rank`` (Mann-Whitney / Kruskal-Wallis).
        min_per_class: fewest patients a class may have.
        n_boot: bootstrap samples of the confidence intervals.
        seed: study seed.
    """

    endpoint: str = "binary"
    cv_folds: int = 5
    cv_repeats: int = 1
    inner_folds: int = 3
    learners: tuple[str, ...] = ("logistic_l2", "logistic_l1", "rf", "gb", "svm")
    n_screen: tuple[int, ...] = (8, 32)
    n_screen_trees: tuple[int, ...] = (64,)
    logistic_C: tuple[float, ...] = (0.05, 0.5)
    svm_C: tuple[float, ...] = (1.0,)
    rf_trees: int = 150
    rf_min_leaf: tuple[int, ...] = (3,)
    gb_trees: int = 100
    gb_learning_rate: float = 0.05
    ensemble_sizes: tuple[int, ...] = (1, 3, 5)
    corr_threshold: float = 0.9
    screen: str = "f"
    min_per_class: int = 5
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"modelling.endpoint must be one of {ENDPOINTS} (or survival), got {self.endpoint!r}")
        bad = [lr for lr in self.learners if lr not in LEARNERS]
        if bad or not self.learners:
            raise ValueError(f"unknown learner(s) {bad}; choose from {LEARNERS}")
        if self.screen not in ("f", "rank"):
            raise ValueError(f"screen must be 'f' or 'rank', got {self.screen!r}")
        if self.cv_folds < 2 or self.inner_folds < 2 or self.cv_repeats < 1:
            raise ValueError("cv_folds and inner_folds must be >= 2 and cv_repeats >= 1")
        if not 0 < self.corr_threshold <= 1:
            raise ValueError("corr_threshold must lie in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings (as passed to the estimators, which stay clonable)."""
        return asdict(self)
