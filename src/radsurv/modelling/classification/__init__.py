"""Classification endpoints (tumour biology, nodal status, response ...): issue #17.

The workflow calls it through :mod:`radsurv.workflow.classification` (rule ``fit_classifier``):
:mod:`.metrics` (AUC with paired
bootstrap CIs, DeLong, threshold metrics, calibration, decision curve), :mod:`.settings`
(the study settings), :mod:`.models` (feature steps, the tuned radiomics classifier and
the volume / clinical / prevalence baselines), :mod:`.design` (leakage-free repeated
nested cross-validation or a development/validation split, and the model comparison)
and :mod:`.radiogenomics` (feature-biology association screen with Benjamini-Hochberg
FDR, volume-adjusted).
"""
