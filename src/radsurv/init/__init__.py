"""``radsurv init DICOM_DIR [CLINICAL_TABLE]``: a starting config for a new cohort.

The command looks at the data and writes a complete, standalone config (nothing
of ``config/config.yaml`` is needed underneath it), with a comment on every
choice and a list of what it could not decide:

* the DICOM folder, through the workflow's own discovery (:func:`radsurv.ingest.discovery.discover`):
  modalities, ROI names with the number of patients having each, repeat scans
  (days between a patient's scans) and the discovery QC findings; from these
  ``cohort.roi_pattern``, ``cohort.roi_policy``, ``site`` and the robustness method;
* the clinical table, if given: the id column (the one whose values match the
  DICOM PatientIDs), time and event columns, the time unit, and the covariates
  with their types (numeric, ordinal with levels in stage order, categorical)
  and missing-value codes.

The written config is validated against ``workflow/schemas/config.schema.yaml``
(:func:`radsurv.schema.problems`) before it is written. Only counts, ROI names,
column names and pseudonymised ids reach the terminal: no UID, no file name, no
DICOM header value other than the cohort's PatientIDs (which are not printed either).

Modules: :mod:`radsurv.init.survey` (the DICOM folder: ROI, site, robustness),
:mod:`radsurv.init.clinical` (the clinical table: columns, time unit, covariates) and
:mod:`radsurv.init.command` (the config, its comments and the ``radsurv init`` command).
"""
