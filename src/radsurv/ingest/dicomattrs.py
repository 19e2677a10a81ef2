"""Small readers of DICOM attribute values: text, numbers, dates and times.

Shared by discovery (:mod:`radsurv.ingest.headers`, :mod:`radsurv.ingest.discovery`),
image reading (:mod:`radsurv.ingest.images`), PET SUV (:mod:`radsurv.ingest.pet`) and
contour reading. Dates and times read here order sessions and compute decay times;
they are never written out.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pydicom


def attr_str(ds: pydicom.Dataset, keyword: str, default: str = "") -> str:
    """A DICOM attribute as a stripped string ('' when absent or empty)."""
    value = ds.get(keyword, None)
    if value is None:
        return default
    text = str(value).strip()
    return text if text else default


def int_or_none(value: Any) -> int | None:
    """``int(value)``, or None when it has no integer value."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def float_tuple(value: Any) -> tuple[float, ...] | None:
    """A multi-valued attribute as a tuple of floats, or None when absent, empty or not numeric."""
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out or None


def norm_time(value: str) -> str:
    """Pad a DICOM TM so that lexicographic order is time order."""
    digits = value.replace(":", "")
    head, _, frac = digits.partition(".")
    return head.ljust(6, "0") + "." + frac.ljust(6, "0")


def parse_date(value: str) -> _dt.date | None:
    """A DICOM DA (``YYYYMMDD``) as a date, or None."""
    try:
        return _dt.datetime.strptime(value[:8], "%Y%m%d").date()
    except (TypeError, ValueError):
        return None


def date_time(date: str, time: str) -> _dt.datetime | None:
    """A DICOM DA + TM as a naive datetime (midnight without a readable time), or None without a date."""
    day = parse_date(date)
    if day is None:
        return None
    t = norm_time(time) if time else "000000.000000"
    try:
        clock = _dt.datetime.strptime(t[:13], "%H%M%S.%f").time()
    except ValueError:
        clock = _dt.time()
    return _dt.datetime.combine(day, clock)


def dicom_datetime(dt_value: str = "", date: str = "", time: str = "") -> _dt.datetime | None:
    """A DICOM DT (``YYYYMMDDHHMMSS.ffffff&ZZXX``) or DA + TM as a naive datetime."""
    if dt_value:
        text = re.split(r"[+-]", dt_value.strip(), maxsplit=1)[0]
        return date_time(text[:8], text[8:])
    if date and time:
        return date_time(date, time)
    return None
