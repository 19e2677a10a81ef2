"""Pseudonyms for DICOM UIDs, so that no Study/Series/SOP Instance UID reaches an output.

DICOM PS3.15 (Annex E, Basic Application Level Confidentiality Profile) treats
the instance UIDs as identifying: whoever holds the hospital's PACS can look a
UID up and find the patient. radsurv therefore writes, wherever it would name a
UID (``scans.tsv``, the scan manifests, ``provenance.json``, QC reasons, logs),
a one-way pseudonym of it instead:

* :func:`uid_pseudonym` -- ``"uid-"`` and the first 16 hex digits (64 bits) of the
  SHA-256 of the UID. The same UID always gives the same pseudonym (in every run
  and on every machine), so a series can be followed through all outputs, and the
  data holder can re-link by hashing the UIDs of their own files; without those
  files it cannot be inverted. Unsalted on purpose: a salt would have to be kept secret and
  reproduced by every colleague who re-runs the study.
* :func:`scrub_uids` -- replaces every UID-shaped token in free text (exception
  messages of GDCM or highdicom, log lines) by its pseudonym. A UID-shaped token
  is a dotted number starting with 0, 1 or 2 with at least four components, or
  the UUID-derived form ``2.25.<decimal>`` (PS3.5 B.2). UIDs of the DICOM standard
  itself (root ``1.2.840.10008``: SOP classes, transfer syntaxes) identify nobody and
  stay readable, e.g. in "transfer syntax ... not supported". Folder and file names
  that are UIDs (``<StudyUID>/<SeriesUID>/<SOPUID>.dcm``, a common PACS export
  layout) are replaced too: they are the same identifiers.
* :func:`file_pseudonym` -- what outputs call an input file: ``"file-"`` and 16 hex
  digits of the SHA-256 of its path relative to the cohort folder. Neither the
  file name nor any folder name is written: planning systems name files by their
  UIDs (``CT.<SOPInstanceUID>.dcm``, ``RS.<uid>.dcm``) and exports are often
  foldered by patient name (``DOE^JOHN_12345/``), and absolute paths add the
  user's own folders. Absolute input paths are kept only in the private
  intermediates (``results/ingest/private/``), which the workflow needs to read
  the files and never summarises into a shareable table.
* :func:`find_pseudonym` -- the way back for the data holder: the files under a
  DICOM folder whose UIDs, UID-shaped path parts or relative path have a given
  pseudonym, so that a QC row naming ``uid-...`` or ``file-...`` leads to the file
  (``python -m radsurv.privacy DICOM_DIR uid-...|file-...``).

The pseudonym is not UID-shaped, so scrubbing is idempotent and never hashes a
pseudonym again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from pathlib import Path

PREFIX = "uid-"
FILE_PREFIX = "file-"

#: dotted numbers with >= 4 components starting with 0/1/2, or 2.25.<long decimal>;
#: not part of a longer number (a digit or "<digit>." before, a digit or ".<digit>" after),
#: not under the DICOM standard's own root. A letter, "_" or "." after a word before the
#: UID does not protect it: planning systems write ``CT.<uid>.dcm``, ``RS_<uid>.dcm``.
_UID = re.compile(r"(?<!\d)(?<!\d\.)(?!1\.2\.840\.10008\.)(?:[0-2](?:\.\d+){3,}|2\.25\.\d{10,})(?!\d|\.\d)")


def uid_pseudonym(uid: str) -> str:
    """The pseudonym written instead of ``uid`` (``""`` stays ``""``)."""
    uid = uid.strip().rstrip("\x00").strip()
    if not uid:
        return ""
    return PREFIX + hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:16]


def file_pseudonym(relative_path: str | Path) -> str:
    """The name outputs give an input file: ``file-`` + 16 hex of the SHA-256 of its path
    relative to the cohort folder (POSIX separators), e.g. ``file-3f2a...``.

    One-way like :func:`uid_pseudonym`; the same file gives the same pseudonym in every run
    as long as the cohort folder's layout is the same.
    """
    rel = Path(relative_path).as_posix() if isinstance(relative_path, Path) else str(relative_path)
    return FILE_PREFIX + hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:16]


#: input folders registered by the running job (:func:`register_input_root`), longest first
_INPUT_ROOTS: list[str] = []


def register_input_root(root: str | Path) -> None:
    """Declare the cohort folder this process reads from: from now on :func:`scrub_uids` also
    replaces any path under it (as given and resolved) by the :func:`file_pseudonym` of the
    file, e.g. in a library's error message or a traceback."""
    for r in {str(root), str(Path(root).resolve())}:
        r = r.rstrip("/")
        if r and r not in _INPUT_ROOTS:
            _INPUT_ROOTS.append(r)
    _INPUT_ROOTS.sort(key=len, reverse=True)


def _scrub_paths(text: str) -> str:
    for root in _INPUT_ROOTS:
        if root in text:
            # the path runs to the next whitespace, quote or bracket
            text = re.sub(re.escape(root) + r"(?:(/[^\s'\"()\[\]{},;]*)|(?![^\s'\"()\[\]{},;:.]))",
                          lambda m: file_pseudonym(m.group(1)[1:].rstrip(".:")) if m.group(1) else "<cohort folder>",
                          text)
    return text


def scrub_uids(text: str) -> str:
    """``text`` with every UID-shaped token replaced by :func:`uid_pseudonym` of it, and every
    path under a registered input folder (:func:`register_input_root`) by its file pseudonym."""
    return _UID.sub(lambda m: uid_pseudonym(m.group(0)), _scrub_paths(text) if _INPUT_ROOTS else text)


class ScrubbingFormatter(logging.Formatter):
    """A log formatter whose output (message, traceback and all) has no DICOM UIDs."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub_uids(super().format(record))


HEADER_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def header_uids(path: str | Path) -> set[str]:
    """The non-empty :data:`HEADER_UIDS` of one file; empty when pydicom cannot read it."""
    import pydicom

    try:
        with warnings.catch_warnings():  # force=True on a non-DICOM file warns
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=list(HEADER_UIDS))
    except Exception:  # noqa: BLE001 -- not DICOM: no UIDs
        return set()
    return {str(ds.get(k, "")) for k in HEADER_UIDS} - {""}


def find_pseudonym(dicom_dir: str | Path, pseudonym: str) -> list[str]:
    """Relative paths of the files under ``dicom_dir`` that ``pseudonym`` can stand for.

    ``file-...`` (:func:`file_pseudonym`): the file with that relative path. ``uid-...``:
    the files one of whose :data:`HEADER_UIDS` or UID-shaped path parts has that pseudonym
    (files pydicom cannot read are matched by path only).
    """
    root = Path(dicom_dir)
    pseudonym = pseudonym.strip()
    hits: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if pseudonym.startswith(FILE_PREFIX):
            if file_pseudonym(rel) == pseudonym:
                hits.append(rel)
        elif any(uid_pseudonym(u) == pseudonym for u in set(_UID.findall(rel)) | header_uids(path)):
            hits.append(rel)
    return hits


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="List the files under a DICOM folder that a radsurv "
                                             "pseudonym (uid-... or file-...) stands for.")
    ap.add_argument("dicom_dir", type=Path)
    ap.add_argument("pseudonym", help="as written in scans.tsv, a QC reason or a log, e.g. uid-0123456789abcdef "
                                      "or file-0123456789abcdef")
    args = ap.parse_args(argv)
    hits = find_pseudonym(args.dicom_dir, args.pseudonym)
    print("\n".join(hits) if hits else f"no file under {args.dicom_dir} has the pseudonym {args.pseudonym}")
    return 0 if hits else 1


if __name__ == "__main__":
    raise SystemExit(main())
