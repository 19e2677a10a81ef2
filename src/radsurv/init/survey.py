"""What ``radsurv init`` reads from a DICOM folder, and the ROI, site and robustness it proposes.

:func:`survey_dicom` runs the workflow's own discovery (:func:`radsurv.ingest.discovery.discover`)
and summarises it in a :class:`DicomSurvey`: modalities, ROI names with the number of
patients having each, repeat scans (days between a patient's scans) and the discovery QC
findings. :func:`propose_roi`, :func:`propose_site` and :func:`propose_robustness` turn
that into ``cohort.roi_pattern`` / ``cohort.roi_policy``, ``site`` and ``robustness.method``,
each with its explanation and what it could not decide.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from radsurv.schema import default

__all__ = ["DicomSurvey", "propose_robustness", "propose_roi", "propose_site", "roi_names", "survey_dicom"]

#: Defaults of the schema that the proposals compare against.
RETEST_MAX_DAYS, MIN_PAIRS = default("robustness", "retest_max_days"), default("robustness", "min_pairs")

_TUMOUR = re.compile(r"gtv|tumou?r|lesion|primary|mass|nodule|itv|igtv", re.I)
_NODE = re.compile(r"gtv[-_ .]?n(\d|$|[-_ .])|node|nodal|\bln\b|lymph", re.I)
_SITE_HINTS = {
    "hn_ct": re.compile(r"parotid|submandib|mandible|larynx|laryn|pharyn|oral|cochlea|brainstem|"
                        r"constrictor|tongue|head|neck|hn\b|glott", re.I),
    "lung_ct": re.compile(r"lung|heart|oesophag|esophag|trachea|bronch|chest|thorax|pulm", re.I),
}



@dataclass
class DicomSurvey:
    """What discovery and the contour headers say about a DICOM folder."""

    n_patients: int
    n_scans: int
    modalities: Counter[str]
    #: ROI name (as spelled most often) -> number of patients having it
    roi_patients: Counter[str]
    #: per scan: the ROI names of its contour object
    scan_rois: dict[str, list[str]]
    body_parts: Counter[str]
    #: per patient with >1 scan: days of each later scan after the first
    repeat_days: dict[str, list[int]]
    qc_counts: Counter[str]
    qc_patients: int
    patient_ids: list[str]
    #: scan id -> its patient's id
    scan_patient: dict[str, str] = field(default_factory=dict)


def _contour_path(scan_file: str, root: Path) -> Path:
    p = Path(scan_file)
    return p if p.is_absolute() else root / p


def roi_names(path: Path, kind: str) -> list[str]:
    """ROI names of an RTSTRUCT (ROIName) or DICOM-SEG (SegmentLabel) file; [] if unreadable."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                             specific_tags=["StructureSetROISequence", "SegmentSequence"])
    except Exception:  # noqa: BLE001 - an unreadable contour is a discovery/conversion QC matter
        return []
    if kind == "SEG":
        return [str(s.get("SegmentLabel", "")).strip() for s in ds.get("SegmentSequence", []) or []]
    return [str(r.get("ROIName", "")).strip() for r in ds.get("StructureSetROISequence", []) or []]


def _body_part(path: str) -> str:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["BodyPartExamined"])
    except Exception:  # noqa: BLE001
        return ""
    return str(ds.get("BodyPartExamined", "") or "").strip().upper()


def survey_dicom(dicom_dir: Path, retest_max_days: int = RETEST_MAX_DAYS, workers: int = 1) -> DicomSurvey:
    """Discover the scans of ``dicom_dir`` and summarise them (see :class:`DicomSurvey`)."""
    from radsurv.ingest.discovery import discover

    root = Path(dicom_dir)
    disc = discover(root, retest_max_days=retest_max_days, workers=workers)
    spelling: dict[str, Counter[str]] = defaultdict(Counter)
    per_patient: dict[str, set[str]] = defaultdict(set)
    scan_rois: dict[str, list[str]] = {}
    body: Counter[str] = Counter()
    days: dict[str, list[int]] = defaultdict(list)
    for sc in disc.scans:
        names = roi_names(_contour_path(sc.contour_file, root), sc.contour_type)
        scan_rois[sc.scan_id] = names
        for n in names:
            spelling[n.lower()][n] += 1
            per_patient[n.lower()].add(sc.patient_id)
        if sc.session == 1 and sc.image_files:
            body[_body_part(sc.image_files[0]) or "(not recorded)"] += 1
        if sc.session > 1:
            days[sc.patient_id].append(int(sc.days_from_first))
    roi_patients = Counter({spelling[k].most_common(1)[0][0]: len(v) for k, v in per_patient.items()})
    qc_counts = Counter(q["status"] for q in disc.qc)
    return DicomSurvey(
        n_patients=len({sc.patient_id for sc in disc.scans}),
        n_scans=len(disc.scans),
        modalities=Counter(sc.modality for sc in disc.scans),
        roi_patients=roi_patients,
        scan_rois=scan_rois,
        body_parts=body,
        repeat_days=dict(days),
        qc_counts=qc_counts,
        qc_patients=len({q["patient_id"] for q in disc.qc if q["patient_id"]}),
        patient_ids=sorted({sc.patient_id for sc in disc.scans}),
        scan_patient={sc.scan_id: sc.patient_id for sc in disc.scans},
    )



# --------------------------------------------------------------------------- the ROI
#: ROI names that are organs or outlines, never proposed as the tumour
_NOT_TUMOUR = re.compile(r"body|external|skin|couch|lung|heart|cord|bone|oesoph|esoph|"
                         r"brain|eye|lens|parotid|kidney|liver", re.I)


def _patients_by_name(s: DicomSurvey) -> dict[str, set[str]]:
    """Lower-cased ROI name -> the patients having it."""
    by_name: dict[str, set[str]] = defaultdict(set)
    for scan_id, names in s.scan_rois.items():
        pid = s.scan_patient.get(scan_id, scan_id)
        for n in names:
            by_name[n.lower()].add(pid)
    return by_name


def _cover(candidates: list[str], by_name: dict[str, set[str]]) -> tuple[list[str], set[str]]:
    """The candidates, in order, that each add patients not yet covered; and the patients covered."""
    chosen: list[str] = []
    covered: set[str] = set()
    for n in candidates:
        new = by_name[n.lower()] - covered
        if new:
            chosen.append(n)
            covered |= new
    return chosen, covered


def _roi_pattern(chosen: list[str], all_names: list[str]) -> str:
    """``^GTV`` when that matches exactly the chosen names (case ignored), else their exact names."""
    gtv_names = {n.lower() for n in all_names if n.lower().startswith("gtv")}
    if all(n.lower().startswith("gtv") for n in chosen) and gtv_names == {n.lower() for n in chosen}:
        return "^GTV"
    return "^(" + "|".join(re.escape(n).replace("\\-", "-") for n in chosen) + ")$"


def _roi_policy(s: DicomSurvey, rx: re.Pattern[str]) -> tuple[str, str, list[str]]:
    """``(roi_policy, explanation, undecided)``: ``error`` when a scan has several matching ROIs."""
    multi = sum(1 for names in s.scan_rois.values() if sum(bool(rx.search(n)) for n in names) > 1)
    if not multi:
        return "first", "every scan has at most one matching ROI, so roi_policy first never has to choose", []
    return "error", (f"{multi} scan(s) have several ROIs matching: roi_policy error excludes and lists them "
                     "rather than guess"), [f"{multi} scan(s) have several matching ROIs: choose roi_policy "
                                            "largest or union if that is what the study means"]


def propose_roi(s: DicomSurvey) -> tuple[str, str, list[str], list[str]]:
    """``(roi_pattern, roi_policy, explanation, undecided)``.

    Tumour-like names (GTV, tumour, lesion, ...; nodal GTVs excluded) are taken in
    order of how many patients have them, as long as each adds patients not yet
    covered (so ``GTV-2`` beside ``GTV-1`` is not added, while a ``Tumour`` used
    instead of ``GTV-1`` is). The pattern is ``^GTV`` when that matches exactly the
    chosen names, else their exact names.
    """
    why: list[str] = []
    todo: list[str] = []
    tumour = [n for n, _ in s.roi_patients.most_common() if _TUMOUR.search(n) and not _NODE.search(n)]
    by_name = _patients_by_name(s)
    chosen, covered = _cover(tumour, by_name)
    if not chosen:
        others = [n for n, _ in s.roi_patients.most_common() if not _NOT_TUMOUR.search(n)]
        if not others:
            todo.append("no ROI name looks like a tumour: set cohort.roi_pattern by hand")
            return "^GTV", "error", ["placeholder ^GTV: no tumour ROI found"], todo
        chosen = [others[0]]
        covered = by_name[others[0].lower()]
        todo.append(f"no ROI name looks like a tumour (GTV, tumour, lesion); proposed the most frequent "
                    f"other ROI '{others[0]}': check cohort.roi_pattern")
    pattern = _roi_pattern(chosen, list(s.roi_patients))
    why.append(f"tumour ROI(s) {', '.join(repr(n) for n in chosen)} cover {len(covered)} of "
               f"{s.n_patients} patients with scans (matching ignores case)")
    left = s.n_patients - len(covered)
    if left:
        todo.append(f"{left} patient(s) have no ROI matched by {pattern}: they will be excluded at conversion")
    for n in chosen[1:]:
        only = len(by_name[n.lower()] - by_name[chosen[0].lower()])
        todo.append(f"ROI '{n}' is used instead of '{chosen[0]}' by {only} "
                    f"patient(s) and is included in roi_pattern; remove it if it is not the same structure")
    skipped = [n for n in tumour if n not in chosen]
    if skipped:
        why.append(f"not included: {', '.join(repr(n) for n in skipped)} (only in patients already covered "
                   f"or nodal)")
    policy, policy_why, policy_todo = _roi_policy(s, re.compile(pattern, re.I))
    return pattern, policy, [*why, policy_why], todo + policy_todo


# --------------------------------------------------------------------------- site and robustness
def propose_site(s: DicomSurvey) -> tuple[str, str, list[str]]:
    """``(site, explanation, undecided)`` from the modality, ROI names and BodyPartExamined."""
    modality = s.modalities.most_common(1)[0][0] if s.modalities else "CT"
    todo: list[str] = []
    if len(s.modalities) > 1:
        todo.append(f"several image modalities ({dict(s.modalities)}): one site preset applies to all; "
                    "split the cohort by modality if needed")
    if modality == "MR":
        return "brain_mr", "MR images: the brain MR preset (N4, z-score, 32 bins); change for other MR sites", todo
    if modality in ("PT", "PET"):
        return "fdg_pet", "PET images: the FDG PET preset (SUV, 0.25 SUV bins)", todo
    if modality != "CT":
        todo.append(f"modality {modality}: no shipped preset; lung_ct proposed as a placeholder")
        return "lung_ct", f"no preset for {modality}", todo
    words = " ".join(list(s.roi_patients) + list(s.body_parts))
    hits = {site: len(rx.findall(words)) for site, rx in _SITE_HINTS.items()}
    if hits["hn_ct"] > hits["lung_ct"]:
        return "hn_ct", "CT with head-and-neck ROI names / body part: head-and-neck CT preset", todo
    if hits["lung_ct"]:
        return "lung_ct", "CT with thoracic ROI names / body part (lung, heart, chest): lung CT preset", todo
    todo.append("CT without ROI names or body part that tell the tumour site: lung_ct proposed; use hn_ct "
                "or your own preset (config/README.md 'Adding a tumour site') if it is another site")
    return "lung_ct", "CT; nothing tells the site (no organ ROI, no BodyPartExamined): lung CT preset", todo


def propose_robustness(s: DicomSurvey, retest_max_days: int = RETEST_MAX_DAYS,
                       min_pairs: int = MIN_PAIRS) -> tuple[str, str]:
    """``(method, explanation)``: test-retest with at least ``min_pairs`` retest patients."""
    pairs = sum(1 for d in s.repeat_days.values() if d and min(d) <= retest_max_days)
    later = sum(1 for d in s.repeat_days.values() if d and min(d) > retest_max_days)
    if s.n_patients < min_pairs:
        return "test-retest", (f"only {s.n_patients} patient(s) (< min_pairs {min_pairs}): no robustness "
                               "analysis is possible, every feature is kept and the report says so; "
                               "test-retest costs no extra job (perturbation would add 10 per scan)")
    if pairs >= min_pairs:
        return "test-retest", (f"{pairs} patients have a second scan within {retest_max_days} days "
                               f"(>= min_pairs {min_pairs}): test-retest ICC")
    return "perturbation", (f"only {pairs} patient(s) with a second scan within {retest_max_days} days "
                            f"(< min_pairs {min_pairs}; {later} with a later follow-up scan): "
                            "perturbation ICC (Zwanenburg 2019) on each patient's first scan")

