"""DICOM discovery: from a folder tree to numbered scans (image series + contour object).

:func:`discover` walks an arbitrary folder tree, reads every file's header
(:func:`radsurv.ingest.headers.examine_all`), groups image instances (CT/MR/PT) by
SeriesInstanceUID and pairs every RTSTRUCT / DICOM-SEG with the image series it
*references* (never by guessing from the patient or the frame of reference, so
localizers and second reconstructions are never picked). Each pair is one *scan*,
numbered per patient in time order (``{patient}_S1``, ``_S2``, ...). Problems become
QC rows, not crashes.

Only the PatientID (the cohort id), pseudonyms of the UIDs
(:func:`radsurv.privacy.uid_pseudonym`; the UIDs themselves are used only here, to
pair contours with images), modality and file pseudonyms are written anywhere.
Absolute dates are used solely to order sessions and to compute
``days_from_first``; they never leave this module.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radsurv.ingest.dicomattrs import date_time
from radsurv.ingest.headers import ContourFile, Examined, ImageFile, ImageSeries, examine_all, rel_path
from radsurv.ingest.records import STAGE_DISCOVERY, Discovery, ScanRecord, safe, scan_label
from radsurv.privacy import file_pseudonym, uid_pseudonym
from radsurv.qc import qc_row
from radsurv.schema import default

log = logging.getLogger(__name__)


def discover(root: Path, retest_max_days: int = default("robustness", "retest_max_days"),
             workers: int = 1) -> Discovery:
    """Find all analysable (image series, contour object) pairs below ``root``.

    Any depth and any file names are accepted. Non-DICOM files and DICOMDIR are
    ignored; empty, truncated or unreadable DICOM files become QC warnings.
    Scans are numbered per PatientID in acquisition date/time order; each gets
    its study (visit) number, days and hours from the patient's first scan and a
    label (``baseline``, ``retest`` within ``retest_max_days``, ``follow-up``;
    see :func:`scan_label`). A patient with images but no analysable scan gets
    one ``excluded`` row.

    ``workers`` > 1 reads the file headers in that many processes (reading is most of
    the time, and waits on the disk); the result is the same for any ``workers``.
    """
    root = Path(root)
    disc = Discovery()
    paths = _walk(root)
    found = _collect(disc, root, paths, examine_all(paths, root, workers))
    pairing = _pair_contours(disc, found)
    _select_latest(pairing)
    _report_unpaired_series(disc, found.series, pairing)
    _number_sessions(disc, root, found.series, pairing, retest_max_days)
    _exclude_patients_without_scans(disc, found.series)
    return disc


def _add_qc(disc: Discovery, pid: str, sid: str, status: str, reason: str) -> None:
    """Append one discovery QC row (UIDs in ``reason`` become pseudonyms) and log it."""
    disc.qc.append(qc_row(pid, sid, STAGE_DISCOVERY, status, reason))
    (log.warning if status == "excluded" else log.info)("discovery %s: %s", status, disc.qc[-1]["reason"])


@dataclass
class _Found:
    """What the headers hold once grouped: image series, contour objects and truncated files."""

    series: dict[str, ImageSeries] = field(default_factory=dict)
    contours: list[ContourFile] = field(default_factory=list)
    #: SOP Instance UID -> shown name of the file ignored as truncated
    ignored_sops: dict[str, str] = field(default_factory=dict)


@dataclass
class _Pairing:
    """Contour objects paired with the series they reference, and the QC rows waiting for a scan id."""

    by_series: dict[str, list[ContourFile]] = field(default_factory=lambda: defaultdict(list))
    #: series whose contour objects were all excluded
    rejected: set[str] = field(default_factory=set)
    #: series -> (status, reason) rows reported under the series' scan once it is numbered
    pending: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    #: series -> the one contour object used (the most recent)
    selected: dict[str, ContourFile] = field(default_factory=dict)


# -- read and group the files ---------------------------------------------------------


def _walk(root: Path) -> list[Path]:
    """Every file below ``root``, folders and names in sorted order (the order of the QC rows)."""
    paths: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            paths.append(Path(dirpath) / name)
    return paths


def _collect(disc: Discovery, root: Path, paths: list[Path], examined: list[Examined]) -> _Found:
    """Group the examined files into series and contour objects; QC rows for problem files,
    duplicate instances and (one row) the non-DICOM files."""
    found = _Found()
    non_dicom: list[str] = []
    seen_sops: dict[str, str] = {}
    for path, ex in zip(paths, examined):
        if ex.kind == "non_dicom":
            non_dicom.append(file_pseudonym(rel_path(path, root)))
        elif ex.kind == "contour":
            found.contours.append(ex.contour)
        elif ex.kind in ("qc", "truncated_image"):
            _add_qc(disc, *ex.qc)
            if ex.kind == "truncated_image" and ex.instance.sop_uid:
                found.ignored_sops[ex.instance.sop_uid] = ex.instance.shown
        elif ex.kind == "image":
            inst = ex.instance
            if inst.sop_uid and inst.sop_uid in seen_sops:
                _add_qc(disc, ex.series.patient_id, "", "warning",
                        f"image file {inst.shown} is a duplicate of {seen_sops[inst.sop_uid]} (same SOP Instance "
                        f"UID {inst.sop_uid}); the duplicate is ignored")
                continue
            if inst.sop_uid:
                seen_sops[inst.sop_uid] = inst.shown
            ser = found.series.setdefault(ex.series.series_uid, ex.series)
            ser.instances.append(inst)

    if non_dicom:
        examples = ", ".join(non_dicom[:5]) + (", ..." if len(non_dicom) > 5 else "")
        log.info("ignored %d non-DICOM files (%s)", len(non_dicom), examples)
        _add_qc(disc, "", "", "warning", f"{len(non_dicom)} non-DICOM file(s) ignored: {examples}")
    return found


# -- pair contour objects with the image series they reference -------------------------


def _pair_contours(disc: Discovery, found: _Found) -> _Pairing:
    """Pair every contour object with the image series it references (in file order)."""
    sop_to_series: dict[str, str] = {}
    for ser in found.series.values():
        for inst in ser.instances:
            if inst.sop_uid:
                sop_to_series[inst.sop_uid] = ser.series_uid
    pairing = _Pairing()
    for con in found.contours:
        _pair_contour(disc, con, found, sop_to_series, pairing)
    return pairing


def _choose_series(con: ContourFile, series: dict[str, ImageSeries],
                   sop_to_series: dict[str, str]) -> tuple[str | None, str]:
    """The series ``con`` belongs to (None when none is in the folder) and a warning ('' if none).

    A referenced series that is present wins (several: the one holding most referenced
    images); else the series holding most of its referenced images.
    """
    kind = con.kind
    present = [u for u in con.ref_series if u in series]
    if present:
        if len(present) > 1:
            # several referenced series present: the one holding most referenced images
            present.sort(key=lambda u: -sum(sop_to_series.get(s) == u for s in con.ref_sops))
        return present[0], ""
    counts: dict[str, int] = defaultdict(int)
    for sop in con.ref_sops:
        if sop in sop_to_series:
            counts[sop_to_series[sop]] += 1
    if not counts:
        return None, ""
    chosen = max(sorted(counts), key=lambda u: counts[u])
    if con.ref_series:
        note = (
            f"{kind} {con.shown} references series {', '.join(con.ref_series)} which is "
            f"not in the input folder, but its referenced images belong to series "
            f"{chosen}; using that series"
        )
    else:
        note = (
            f"{kind} {con.shown} names no referenced series; matched to series {chosen} "
            f"through its referenced image UIDs"
        )
    return chosen, note


def _unreferenced_reason(con: ContourFile) -> str:
    """Why a contour object whose referenced series and images are all absent is excluded."""
    if con.ref_series:
        return (
            f"{con.kind} {con.shown} references series {', '.join(con.ref_series)} which is not "
            f"in the input folder"
        )
    return (
        f"{con.kind} {con.shown} does not reference any image series or image instance "
        f"(no referenced series UID and no contour image UIDs)"
    )


def _missing_images_reason(con: ContourFile, chosen: str, missing: list[str], ignored_sops: dict[str, str]) -> str:
    """Why a contour object referencing images absent from its series is excluded."""
    return (
        f"{con.kind} {con.shown} references {len(con.ref_sops)} images of series {chosen}, "
        f"{len(missing)} of which are not in the input folder (series incomplete or "
        f"wrong references, e.g. {missing[0]})"
        + (
            f"; {sum(m in ignored_sops for m in missing)} of them are in file(s) ignored as "
            f"truncated (e.g. {next(ignored_sops[m] for m in missing if m in ignored_sops)})"
            if any(m in ignored_sops for m in missing) else ""
        )
    )


def _pair_contour(disc: Discovery, con: ContourFile, found: _Found, sop_to_series: dict[str, str],
                  pairing: _Pairing) -> None:
    """Pair one contour object with its series, or exclude it with a QC row."""
    kind = con.kind
    if con.n_contours == 0:
        what = "ROIs" if kind == "RTSTRUCT" else "segments"
        _add_qc(disc, con.patient_id, "", "excluded",
                f"{kind} {con.shown} is empty: {con.n_rois} {what} defined but no contour data")
        return
    chosen, note = _choose_series(con, found.series, sop_to_series)
    if chosen is None:
        _add_qc(disc, con.patient_id, "", "excluded", _unreferenced_reason(con))
        return
    ser = found.series[chosen]
    missing = sorted(s for s in con.ref_sops if s not in sop_to_series)
    elsewhere = sorted({sop_to_series[s] for s in con.ref_sops if sop_to_series.get(s, chosen) != chosen})
    if elsewhere and not missing:
        pairing.pending[chosen].append(
            ("warning", f"{kind} {con.shown} also references images of series {', '.join(elsewhere)}; "
                        f"using series {chosen}")
        )
    if missing:
        pairing.rejected.add(chosen)
        _add_qc(disc, con.patient_id or ser.patient_id, "", "excluded",
                _missing_images_reason(con, chosen, missing, found.ignored_sops))
        return
    if any(i.multiframe for i in ser.instances):
        pairing.rejected.add(chosen)
        _add_qc(disc, ser.patient_id, "", "excluded",
                f"series {chosen} referenced by {con.shown} is an enhanced multi-frame image; "
                f"only single-frame series are supported")
        return
    if note:
        pairing.pending[chosen].append(("warning", note))
    if con.patient_id != ser.patient_id:
        pairing.pending[chosen].append(
            ("warning", f"{kind} {con.shown} has PatientID {con.patient_id!r} but its image series "
                        f"{chosen} has {ser.patient_id!r}; using the image's PatientID")
        )
    pairing.by_series[chosen].append(con)


def _select_latest(pairing: _Pairing) -> None:
    """One contour object per series: the most recent; a warning when there were several."""
    for uid, cons in pairing.by_series.items():
        cons.sort(key=lambda c: (c.recency, c.rel))
        pairing.selected[uid] = cons[-1]
        if len(cons) > 1:
            others = ", ".join(c.shown for c in cons[:-1])
            pairing.pending[uid].append(
                ("warning", f"series {uid} has {len(cons)} contour objects ({others}, {cons[-1].shown}); "
                            f"using the most recent one, {cons[-1].shown}, and ignoring the others")
            )


def _report_unpaired_series(disc: Discovery, series: dict[str, ImageSeries], pairing: _Pairing) -> None:
    """A warning for every series that no contour object references (in series UID order)."""
    for uid, ser in sorted(series.items()):
        if uid in pairing.rejected:
            continue  # its contour object's exclusion row already names this series
        if uid not in pairing.selected and uid not in pairing.pending:
            kind = " localizer" if ser.localizer else ""
            why = (
                "has no usable RTSTRUCT or SEG (its contour objects were excluded, see above)"
                if uid in pairing.rejected
                else "has no RTSTRUCT or SEG referencing it"
            )
            _add_qc(disc, ser.patient_id, "", "warning",
                    f"{ser.modality}{kind} series {uid} ({len(ser.instances)} images, e.g. "
                    f"{ser.instances[0].shown}) {why}: not analysable")


# -- number sessions per patient --------------------------------------------------------


def _number_sessions(disc: Discovery, root: Path, series: dict[str, ImageSeries], pairing: _Pairing,
                     retest_max_days: int) -> None:
    """The scans of every patient (in PatientID order), numbered in time order.

    Series without a PatientID, and patients whose file-name-safe id collides with
    another's, are excluded.
    """
    per_patient: dict[str, list[str]] = defaultdict(list)
    for uid in pairing.selected:
        per_patient[series[uid].patient_id].append(uid)
    used_ids: dict[str, str] = {}
    for pid in sorted(per_patient):
        if not pid:
            for uid in per_patient[pid]:
                _add_qc(disc, "", "", "excluded", f"series {uid} has no PatientID; cannot be assigned to a patient")
            continue
        spid = safe(pid)
        if spid in used_ids and used_ids[spid] != pid:
            _add_qc(disc, pid, "", "excluded",
                    f"PatientID {pid!r} gives the same file-name-safe id {spid!r} as PatientID "
                    f"{used_ids[spid]!r}; rename one of them")
            continue
        used_ids[spid] = pid
        _patient_scans(disc, root, pid, per_patient[pid], series, pairing, retest_max_days)


def _patient_scans(disc: Discovery, root: Path, pid: str, patient_uids: list[str],
                   series: dict[str, ImageSeries], pairing: _Pairing, retest_max_days: int) -> None:
    """Append one patient's scans (``{safe(pid)}_S1``, ...) and the QC rows waiting for their ids."""
    spid = safe(pid)
    uids = sorted(patient_uids, key=lambda u: _series_when(series[u]))
    whens = {u: _series_when(series[u]) for u in uids}
    first_dt = whens[uids[0]][1]
    undated = [u for u in uids if whens[u][1] is None]
    study_numbers: dict[str, int] = {}
    for uid in uids:  # studies numbered by their first scan in time
        study_numbers.setdefault(series[uid].study_uid or uid, len(study_numbers) + 1)
    for n, uid in enumerate(uids, start=1):
        ser = series[uid]
        con = pairing.selected[uid]
        scan_id = f"{spid}_S{n}"
        when = whens[uid][1]
        dated = when is not None and first_dt is not None
        days = (when.date() - first_dt.date()).days if dated else 0
        hours = round((when - first_dt).total_seconds() / 3600.0, 2) if dated else 0.0
        insts = sorted(ser.instances, key=_instance_sort_key)
        disc.scans.append(
            ScanRecord(
                scan_id=scan_id,
                patient_id=pid,
                session=n,
                days_from_first=int(days),
                modality=ser.modality,
                series_uid=uid_pseudonym(uid),
                study_uid=uid_pseudonym(ser.study_uid),
                n_images=len(insts),
                image_files=[str(i.path) for i in insts],
                contour_file=str(con.path.resolve()),
                contour_type=con.kind,
                cohort_root=str(root.resolve()),
                hours_from_first=float(hours),
                study_number=study_numbers[ser.study_uid or uid],
                label=scan_label(n, int(days), retest_max_days, dated or n == 1),
            )
        )
        if undated and len(uids) > 1 and uid in undated:
            _add_qc(disc, pid, scan_id, "warning",
                    f"series {uid} has no study or acquisition date: session order, "
                    f"days_from_first (set to 0) and the retest/follow-up label are uncertain")
        for status, reason in pairing.pending.get(uid, []):
            _add_qc(disc, pid, scan_id, status, reason)
    log.info("patient %s: %d scan(s)", pid, len(uids))


def _exclude_patients_without_scans(disc: Discovery, series: dict[str, ImageSeries]) -> None:
    """One ``excluded`` row for each patient with images but no analysable scan (and no exclusion yet)."""
    excluded_pids = {q["patient_id"] for q in disc.qc if q["status"] == "excluded"}
    with_scans = {sc.patient_id for sc in disc.scans}
    by_pid: dict[str, list[ImageSeries]] = defaultdict(list)
    for ser in series.values():
        by_pid[ser.patient_id].append(ser)
    for pid in sorted(by_pid):
        if not pid or pid in with_scans or pid in excluded_pids:
            continue
        sers = sorted(by_pid[pid], key=lambda x: x.series_uid)
        listing = "; ".join(
            f"{x.modality}{' localizer' if x.localizer else ''} series {x.series_uid} "
            f"({len(x.instances)} images)" for x in sers
        )
        _add_qc(disc, pid, "", "excluded",
                f"patient {pid} has no analysable scan: no RTSTRUCT or SEG in the input folder "
                f"references any of its {len(sers)} image series ({listing})")


def _series_when(ser: ImageSeries) -> tuple[Any, ...]:
    """Sort key of a series in time: (undated, acquisition datetime, series number, uid).

    The acquisition start (earliest AcquisitionDate/Time of its images) is used
    when present, else SeriesTime, else StudyDate/StudyTime: two acquisitions of
    one study (a same-visit repeat) are thereby told apart and ordered.
    """
    acq = [(i.acquisition_date or ser.date, i.acquisition_time) for i in ser.instances if i.acquisition_time]
    when = None
    if acq:
        when = min((w for w in (date_time(d, t) for d, t in acq) if w is not None), default=None)
    if when is None:
        when = date_time(ser.date, ser.series_time or ser.time)
    return (
        when is None,
        when or _dt.datetime.min,
        ser.series_number if ser.series_number is not None else 1 << 30,
        ser.series_uid,
    ), when


def _instance_sort_key(inst: ImageFile) -> tuple[Any, ...]:
    """Sort key of an image in its series: position along the slice normal, else InstanceNumber."""
    if inst.position is not None and inst.orientation is not None and len(inst.orientation) == 6:
        normal = np.cross(inst.orientation[:3], inst.orientation[3:])
        return (0, float(np.dot(inst.position, normal)), inst.rel)
    return (1, inst.instance_number if inst.instance_number is not None else 0, inst.rel)
