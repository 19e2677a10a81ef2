"""Assign each scan of a longitudinal cohort to a configured time point (planning, fx5, ... post).

The configured time points (:class:`TimePoint`) are matched by one of three rules
(:class:`TimePointSettings.assign_by`):

* ``days``: days from the patient's first scan (``days_from_first`` of discovery or the
  image sheet) inside the time point's window ``[first, last]`` (inclusive);
* ``fraction``: the scan's fraction number (column ``fraction_column``) inside the
  time point's fraction range ``[first, last]``;
* ``session``: the value of a session column of the image sheet (``session_column``)
  equals one of the time point's names / aliases.

Never a guess: a scan that fits no time point, or a scan whose time point already holds
another scan of that patient (two scans in one window), becomes a QC row (every scan of
the clash, since none is more plausible than another). A test-retest scan (the patient's
second scan, at most ``retest_max_days`` after the first and before any later time point's
window opens) stays a retest: it is paired with the planning scan for the repeatability
coefficient and takes no time point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from radsurv.qc import qc_frame, qc_row
from radsurv.schema import default

__all__ = [
    "ASSIGN_BY",
    "STAGE_TIMEPOINTS",
    "TimePoint",
    "TimePointSettings",
    "assign_timepoints",
    "retest_pairs_longitudinal",
]

ASSIGN_BY = ("days", "fraction", "session")
STAGE_TIMEPOINTS = "longitudinal_timepoints"
ASSIGNMENT_COLUMNS = ["scan_id", "patient_id", "timepoint", "timepoint_index", "role", "days_from_first"]


@dataclass(frozen=True)
class TimePoint:
    """One configured time point: its name, and its window in days or fractions, or its session labels.

    ``days`` / ``fractions`` are inclusive ranges ``(first, last)``; ``sessions`` the session
    column values that mean this time point (the name itself always counts).
    """

    name: str
    days: tuple[int, int] | None = None
    fractions: tuple[int, int] | None = None
    sessions: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any] | None) -> TimePoint:
        """From a config entry ``{days: [a, b], fractions: [a, b], sessions: [...]}``."""
        cfg = cfg or {}

        def rng(key: str) -> tuple[int, int] | None:
            v = cfg.get(key)
            if v is None:
                return None
            lo, hi = (int(v[0]), int(v[1])) if isinstance(v, Sequence) else (int(v), int(v))
            if lo > hi:
                raise ValueError(f"time point {name!r}: {key} range [{lo}, {hi}] is empty (first > last)")
            return lo, hi

        return cls(name, rng("days"), rng("fractions"), tuple(str(s) for s in cfg.get("sessions", ())))


@dataclass(frozen=True)
class TimePointSettings:
    """How scans become time points (the ``longitudinal`` config block; defaults from the config schema).

    The first time point is the baseline (planning); ``landmark`` names the time point a
    landmark survival analysis starts from.
    """

    timepoints: tuple[TimePoint, ...]
    assign_by: str = default("longitudinal", "assign_by")
    session_column: str = default("longitudinal", "session_column")
    fraction_column: str = default("longitudinal", "fraction_column")
    retest_max_days: int = default("longitudinal", "retest_max_days")

    def __post_init__(self) -> None:
        if self.assign_by not in ASSIGN_BY:
            raise ValueError(f"longitudinal.assign_by must be one of {ASSIGN_BY}, got {self.assign_by!r}")
        if len(self.timepoints) < 2:
            raise ValueError("longitudinal.timepoints needs at least two time points (a baseline and one more)")
        names = [t.name for t in self.timepoints]
        if len(set(names)) != len(names):
            raise ValueError(f"longitudinal.timepoints: duplicate names in {names}")
        key = {"days": "days", "fraction": "fractions"}.get(self.assign_by)
        if key is not None:
            self._check_ranges(key)

    def _check_ranges(self, key: str) -> None:
        """Every time point has a range of ``key``; ranges neither overlap nor go back in time."""
        ranges = []
        for t in self.timepoints:
            r = getattr(t, key)
            if r is None:
                raise ValueError(f"time point {t.name!r} has no '{key}' range but assign_by is {self.assign_by!r}")
            ranges.append((t.name, r))
        for (n1, r1), (n2, r2) in zip(ranges, ranges[1:]):
            if r2[0] <= r1[1]:
                raise ValueError(f"time points {n1!r} {list(r1)} and {n2!r} {list(r2)}: {key} ranges overlap or "
                                 "are out of order; a scan must fit one window only")

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.timepoints]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TimePointSettings:
        """From the ``longitudinal`` config block (``timepoints`` is a name -> rule mapping)."""
        tps = tuple(TimePoint.from_config(str(n), r) for n, r in (cfg.get("timepoints") or {}).items())
        extra = {k: cfg[k] for k in ("assign_by", "session_column", "fraction_column", "retest_max_days") if k in cfg}
        return cls(tps, **extra)


def _candidates(row: Mapping[str, Any], settings: TimePointSettings) -> list[str]:
    """Names of the time points this scan's value fits."""
    if settings.assign_by == "session":
        v = row.get(settings.session_column)
        if v is None or pd.isna(v):
            return []
        return [t.name for t in settings.timepoints if str(v) == t.name or str(v) in t.sessions]
    if settings.assign_by == "days":
        v, key = row.get("days_from_first"), "days"
    else:
        v, key = row.get(settings.fraction_column), "fractions"
    if v is None or pd.isna(v):
        return []
    out = []
    for t in settings.timepoints:
        lo, hi = getattr(t, key)
        if lo <= float(v) <= hi:
            out.append(t.name)
    return out


def _why_no_window(row: Mapping[str, Any], settings: TimePointSettings) -> str:
    if settings.assign_by == "session":
        return (f"session value {row.get(settings.session_column)!r} (column {settings.session_column!r}) "
                f"names none of the time points {settings.names}")
    if settings.assign_by == "days":
        wins = ", ".join(f"{t.name} {list(t.days or ())}" for t in settings.timepoints)
        return f"scanned {row.get('days_from_first')} days after the first scan: fits no time-point window ({wins})"
    wins = ", ".join(f"{t.name} {list(t.fractions or ())}" for t in settings.timepoints)
    return f"fraction {row.get(settings.fraction_column)!r} fits no time-point fraction range ({wins})"


def _is_retest(row: Mapping[str, Any], rank: int, cands: list[str], settings: TimePointSettings) -> bool:
    """The patient's second scan, within ``retest_max_days`` of the first, before any later window."""
    if rank != 2:
        return False
    if settings.assign_by == "session":
        return str(row.get(settings.session_column)) == "retest"
    label = row.get("label")
    if label is not None and not pd.isna(label) and str(label) not in ("retest", "repeat"):
        return False
    days = row.get("days_from_first")
    if days is None or pd.isna(days) or float(days) > settings.retest_max_days:
        return False
    baseline = settings.timepoints[0].name
    return all(c == baseline for c in cands)


def assign_timepoints(scans: pd.DataFrame, settings: TimePointSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign every scan to a time point, a retest, or a QC row.

    Args:
        scans: one row per scan with ``scan_id``, ``patient_id``, ``days_from_first`` (and
            ``session``, ``label`` of discovery when present; the fraction or session column
            when ``assign_by`` needs it).
        settings: the time points and the rule.

    Returns:
        ``(assigned, qc)``: ``assigned`` has :data:`ASSIGNMENT_COLUMNS`, one row per scan that
        got a time point (``role`` ``timepoint``) or is a retest of the planning scan
        (``role`` ``retest``, ``timepoint`` the baseline's name); ``qc`` one row per scan that
        fits no time point or shares its time point with another scan of the patient.
    """
    order = {n: i for i, n in enumerate(settings.names)}
    sort = ["patient_id", "session"] if "session" in scans.columns else ["patient_id", "days_from_first", "scan_id"]
    rows, qc = [], []
    for pid, grp in scans.sort_values(sort, kind="stable").groupby("patient_id", sort=True):
        chosen: dict[str, list[dict[str, Any]]] = {}
        for rank, row in enumerate(grp.to_dict("records"), start=1):
            cands = _candidates(row, settings)
            base = {"scan_id": row["scan_id"], "patient_id": pid, "days_from_first": row.get("days_from_first")}
            if _is_retest(row, rank, cands, settings):
                rows.append({**base, "timepoint": settings.names[0], "timepoint_index": 0, "role": "retest"})
            elif not cands:
                qc.append(qc_row(str(pid), str(row["scan_id"]), STAGE_TIMEPOINTS, "excluded",
                                 _why_no_window(row, settings)))
            else:  # validated settings: windows do not overlap, so one candidate
                chosen.setdefault(cands[0], []).append(base)
        for tp, found in chosen.items():
            if len(found) > 1:
                ids = ", ".join(str(f["scan_id"]) for f in found)
                for f in found:
                    qc.append(qc_row(str(pid), str(f["scan_id"]), STAGE_TIMEPOINTS, "excluded",
                                     f"{len(found)} scans ({ids}) fall in time point {tp!r}: "
                                     "which one is meant cannot be decided; none is used"))
                continue
            rows.append({**found[0], "timepoint": tp, "timepoint_index": order[tp], "role": "timepoint"})
    out = pd.DataFrame(rows, columns=ASSIGNMENT_COLUMNS)
    out = out.sort_values(["patient_id", "timepoint_index", "days_from_first"], kind="stable").reset_index(drop=True)
    return out, qc_frame(qc)


def retest_pairs_longitudinal(assigned: pd.DataFrame) -> pd.DataFrame:
    """The test-retest pairs among the assigned scans: planning scan and its retest, per patient."""
    base = assigned[(assigned["role"] == "timepoint") & (assigned["timepoint_index"] == 0)]
    ret = assigned[assigned["role"] == "retest"]
    pairs = base[["patient_id", "scan_id"]].merge(ret[["patient_id", "scan_id"]], on="patient_id",
                                                   suffixes=("_test", "_retest"))
    return pairs.rename(columns={"scan_id_test": "test_scan", "scan_id_retest": "retest_scan"})
