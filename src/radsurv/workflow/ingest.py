"""Entry points of the ingestion rules: scan discovery and the clinical table."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radsurv.qc import write_qc

log = logging.getLogger(__name__)


def discover_scans(*, scans: str | Path, manifests: str | Path, qc: str | Path, retest_max_days: int,
                   dicom: str | Path | None = None, sheet: str | Path | None = None, threads: int = 1) -> None:
    """The cohort's scans: ``scans.tsv``, one manifest per scan and the discovery QC rows.

    From a DICOM folder (``dicom``: every image series + contour pair, any layout) or from an
    image sheet of NIfTI/NRRD image + mask pairs (``sheet``); both write the same files.
    ``retest_max_days`` (``robustness.retest_max_days``) decides whether a patient's second
    scan is labelled ``retest`` or ``follow-up``. ``threads``: processes reading the DICOM
    headers (same result for any number).
    """
    from radsurv.ingest.records import write_discovery
    from radsurv.privacy import register_input_root

    if (dicom is None) == (sheet is None):
        raise ValueError("discover_scans needs either dicom or sheet")
    if dicom is not None:
        from radsurv.ingest.discovery import discover

        register_input_root(dicom)  # a path under it in any message or log becomes a file pseudonym
        disc = discover(Path(dicom), retest_max_days=int(retest_max_days), workers=int(threads))
    else:
        from radsurv.ingest.sheet import discover_sheet

        register_input_root(Path(sheet).parent)
        disc = discover_sheet(Path(sheet), retest_max_days=int(retest_max_days))
    Path(manifests).mkdir(parents=True, exist_ok=True)
    write_discovery(disc, Path(scans), Path(manifests), Path(qc))
    log.info("%s: %d scans, %d QC findings", "discovered" if dicom is not None else "image sheet",
             len(disc.scans), len(disc.qc))


def standardise_clinical(*, table: str | Path | list[str], scans: str | Path, columns: Mapping[str, Any],
                         clinical: str | Path, qc: str | Path, labels: Sequence[str] = (),
                         survival: bool = True) -> None:
    """The standardised clinical table (patient_id, time and event when ``survival``, covariates,
    and the categorical endpoints' ``labels`` columns as written) + its QC rows."""
    import pandas as pd

    from radsurv.ingest.clinical import load_clinical

    scan_table = pd.read_csv(scans, sep="\t", dtype={"patient_id": str})
    df, rows = load_clinical(table, columns, image_ids=sorted(scan_table["patient_id"].unique()),
                             labels=list(labels), survival=bool(survival))
    df.to_csv(clinical, sep="\t", index=False)
    write_qc(rows, qc)
