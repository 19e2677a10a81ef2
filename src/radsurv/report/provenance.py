"""The report's record of its inputs: checksums of the clinical table, the image sheet and the
input files of every converted scan, so a reader can tell whether a rerun used the same data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def converted_inputs_sha256(converted_dirs: Sequence[str | Path]) -> tuple[int, str] | None:
    """Digest of the input files of every converted scan: SHA-256 of the sorted lines
    ``scan_id<TAB>input_sha256`` from each ``provenance.json`` (written by conversion,
    which hashes the files it has just read). ``None`` when no scan was converted."""
    lines = []
    for d in converted_dirs:
        prov = Path(d) / "provenance.json"
        if prov.is_file():
            rec = json.loads(prov.read_text())
            if rec.get("input_sha256"):
                lines.append(f"{rec['scan_id']}\t{rec['input_sha256']}")
    if not lines:
        return None
    return len(lines), hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def input_checks(cohort: Mapping[str, Any], converted_dirs: Sequence[str | Path]) -> list[tuple[str, str, str]]:
    """SHA-256 of the clinical table and the image sheet of ``cohort`` (``config['cohort']``) and the
    digest of the converted scans' input files (:func:`converted_inputs_sha256`), as the report lists them:
    ``(input, file, sha256)`` rows."""
    from radsurv.ingest.converted import files_sha256

    checks = []
    for label, key in (("clinical table", "clinical_table"), ("image sheet", "image_sheet")):
        path = cohort.get(key)
        if path and Path(path).is_file():
            checks.append((label, Path(path).name, files_sha256([path])))
    scan_digest = converted_inputs_sha256(converted_dirs)
    if scan_digest:
        n, digest = scan_digest
        source = "image sheet files" if cohort.get("image_sheet") else "DICOM files"
        checks.append((f"{source} of the {n} converted scans", "per scan: provenance.json input_sha256", digest))
    return checks
