"""Delta radiomics (issue #18): tumour and organs at risk followed over treatment (library only).

Not yet in the workflow: the rules, the ``longitudinal:`` config block of the schema and the
report come later. One function per future rule, taking plain tables / images and a settings
dataclass whose fields become the config keys (draft: ``config/examples/longitudinal_demo.yaml``):

* :mod:`~radsurv.longitudinal.timepoints`: scans -> configured time points (days window,
  fraction, or session column); QC rows for scans fitting no window or sharing one;
* :mod:`~radsurv.longitudinal.rois`: tumour and organs at risk by name pattern, ROI-prefixed features;
* :mod:`~radsurv.longitudinal.propagation`: baseline contour -> later scan (rigid + demons), Dice
  and Jacobian range;
* :mod:`~radsurv.longitudinal.delta`: absolute / relative / log-ratio change and slope, gated by
  the repeatability coefficient; features changing in too few patients dropped;
* :mod:`~radsurv.longitudinal.landmark`: landmark survival data (no immortal-time bias);
* :mod:`~radsurv.longitudinal.study`: baseline vs delta vs baseline + delta vs relative tumour
  volume change, paired bootstrap of the C-index difference.
"""
