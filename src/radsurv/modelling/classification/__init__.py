"""Classification endpoints (tumour biology, nodal status, response ...): issue #17.

Library core only, not yet called by the workflow: :mod:`.metrics` (AUC with paired
bootstrap CIs, DeLong, threshold metrics, calibration, decision curve), :mod:`.design`
(leakage-free repeated nested cross-validation with learner choice tuned in the inner
loop and the volume / clinical / prevalence baselines) and :mod:`.radiogenomics`
(feature-biology association screen with Benjamini-Hochberg FDR, volume-adjusted).
It moves to ``radsurv.modelling.legacy.classification`` in the package restructure.
"""
