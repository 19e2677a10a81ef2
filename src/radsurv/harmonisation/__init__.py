"""Multi-centre studies: batch labels, ComBat inside the folds, batch diagnostics and
volume confound controls (issue #19; the workflow's ``harmonisation`` config block, rules
``harmonisation_batches`` / ``harmonisation_diagnostics`` and the survival study use it).

* :mod:`radsurv.harmonisation.batches`: batch labels from a clinical column and/or the
  acquisition facts ingestion records (manufacturer, model, kernel, slice spacing).
* :mod:`radsurv.harmonisation.combat`: :class:`ComBatHarmoniser`, ComBat (neuroCombat)
  as a transformer fit on training patients only, with an unseen-batch policy.
* :mod:`radsurv.harmonisation.diagnostics`: site-prediction AUC, per-feature
  Kruskal-Wallis batch test, PCA figure, survival C with and without harmonisation.
* :mod:`radsurv.harmonisation.confounds`: association with tumour volume and a
  volume-residualising transformer.
"""

from radsurv.harmonisation.combat import ComBatHarmoniser, with_harmonisation
from radsurv.harmonisation.confounds import VolumeResidualiser, volume_association

__all__ = ["ComBatHarmoniser", "with_harmonisation", "VolumeResidualiser", "volume_association"]
