"""Features: IBSI preprocessing, pyradiomics extraction, the feature matrix and the IBSI phantom checks."""
