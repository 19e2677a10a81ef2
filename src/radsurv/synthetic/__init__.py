"""Synthetic cohorts: the demo cohort and the faulty cohorts used by the tests.

* :mod:`radsurv.synthetic.truth`: the planted patients, tumours, scans and outcomes (no images);
* :mod:`radsurv.synthetic.render`: CT voxels and ROI polygons from that truth;
* :mod:`radsurv.synthetic.demo`: the demo cohort writer (``radsurv-demo``) and a planning-system-style copy;
* :mod:`radsurv.synthetic.faulty`: the demo cohort broken the way real exports are;
* :mod:`radsurv.synthetic.dicom_writer`: the one DICOM writer (image series, RT structure sets);
* :mod:`radsurv.synthetic.small_series`: tiny known-value CT / PET / RTSTRUCT series for unit tests.
"""
