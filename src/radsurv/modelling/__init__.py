"""Modelling: transformers, learners, study design (nested CV, split, external), risk groups, metrics,
published signatures and the classification model family."""
