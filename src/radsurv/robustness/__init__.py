"""Robustness: ICC forms, test-retest, image perturbation, discretisation and the robust-feature selection."""
