"""What ingestion produces, as records: the scans of a cohort and how they are written.

A :class:`ScanRecord` is one analysable scan (an image series and its contour
object, or one image-sheet row); :class:`Discovery` is the result of discovery
(:func:`radsurv.ingest.discovery.discover` for a DICOM folder,
:func:`radsurv.ingest.sheet.discover_sheet` for an image sheet). This module writes
them (:func:`write_discovery`: scans.tsv, one private JSON manifest per scan, the
discovery QC rows) and reads a manifest back (:func:`read_manifest`). It also holds
what both discovery routes share: the stage names of QC rows, :func:`safe` file-name
ids, :func:`scan_label` and :func:`shown_file`, the only way outputs name an input file.

No DICOM and no image library is imported here: every ingest module can build on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from radsurv.privacy import file_pseudonym
from radsurv.qc import write_qc

STAGE_DISCOVERY = "discovery"
STAGE_CONVERSION = "conversion"


#: Columns of the scans TSV: the ScanRecord fields without any path (the files are read
#: through the private manifests); ``contour_file_id`` is the contour file's
#: :func:`radsurv.privacy.file_pseudonym`.
SCAN_COLUMNS = [
    "scan_id",
    "patient_id",
    "session",
    "days_from_first",
    "hours_from_first",
    "study_number",
    "label",
    "modality",
    "series_uid",
    "study_uid",
    "n_images",
    "contour_type",
    "contour_file_id",
]


@dataclass
class ScanRecord:
    """One analysable scan: an image series and the contour object that references it.

    ``image_files``, ``contour_file`` and ``cohort_root`` are absolute input paths: they
    live only in the private manifest (``results/ingest/private/manifests``), never in
    scans.tsv, a QC reason or a log (which name files by :func:`shown_file`).
    """

    scan_id: str
    patient_id: str
    session: int
    days_from_first: int
    modality: str
    #: pseudonyms (:func:`radsurv.privacy.uid_pseudonym`) of the SeriesInstanceUID / StudyInstanceUID
    series_uid: str
    study_uid: str
    n_images: int
    image_files: list[str]
    contour_file: str
    contour_type: str  # "RTSTRUCT" | "SEG" | "MASK" (pre-converted image sheet)
    #: hours between the first scan's and this scan's acquisition (0.0 when undated)
    hours_from_first: float = 0.0
    #: the patient's study (visit) this scan belongs to, 1 = first study in time
    study_number: int = 1
    #: ``baseline`` | ``retest`` | ``follow-up`` | ``repeat`` | ``undated`` (see :func:`scan_label`)
    label: str = "baseline"
    #: image sheet only: the mask label value of the ROI (0 = every non-zero voxel)
    mask_label: int = 0
    #: the cohort folder (DICOM folder, or the image sheet's folder) the files were found in
    cohort_root: str = ""


def shown_file(scan: ScanRecord, path: str | Path) -> str:
    """How outputs name one of ``scan``'s input files: the pseudonym of its path relative to
    the cohort folder (:func:`radsurv.privacy.file_pseudonym`), never a name or a path."""
    p = Path(path)
    if scan.cohort_root:
        try:
            p = p.relative_to(scan.cohort_root)
        except ValueError:
            pass
    return file_pseudonym(p.as_posix())


@dataclass
class Discovery:
    """Result of :func:`discover`: the scans and the QC rows of the discovery stage."""

    scans: list[ScanRecord] = field(default_factory=list)
    qc: list[dict[str, str]] = field(default_factory=list)


def safe(text: str) -> str:
    """Make ``text`` safe for file names: keep ``[A-Za-z0-9-]``, replace anything else by ``-``."""
    return re.sub(r"[^A-Za-z0-9-]", "-", str(text))


def scan_label(session: int, days_from_first: int, retest_max_days: int, dated: bool = True) -> str:
    """What a patient's scan is, in words: ``baseline``, ``retest``, ``repeat``, ``follow-up``.

    The first scan (session 1) is the ``baseline``. The second scan is a ``retest``
    when it was acquired at most ``retest_max_days`` days after the first (the
    same rule as the test-retest pairing of the robustness stage), else a
    ``follow-up`` (a later time point). Third and later scans are ``repeat``
    within that window (not paired) or ``follow-up``. A scan without a date
    is ``undated``.
    """
    if session <= 1:
        return "baseline"
    if not dated:
        return "undated"
    if days_from_first <= retest_max_days:
        return "retest" if session == 2 else "repeat"
    return "follow-up"


def write_discovery(disc: Discovery, scans_tsv: Path, manifest_dir: Path, qc_tsv: Path) -> None:
    """Write the scans TSV, one JSON manifest per scan and the discovery QC TSV."""
    scans_tsv, manifest_dir, qc_tsv = Path(scans_tsv), Path(manifest_dir), Path(qc_tsv)
    scans_tsv.parent.mkdir(parents=True, exist_ok=True)
    manifest_dir.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(SCAN_COLUMNS)]
    for scan in disc.scans:
        row = {**asdict(scan), "contour_file_id": shown_file(scan, scan.contour_file)}
        lines.append("\t".join(str(row[c]).replace("\t", " ") for c in SCAN_COLUMNS))
        (manifest_dir / f"{scan.scan_id}.json").write_text(
            json.dumps(asdict(scan), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    scans_tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_qc(disc.qc, qc_tsv)


def read_manifest(path: Path) -> ScanRecord:
    """Read a manifest written by :func:`write_discovery`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return ScanRecord(**data)
