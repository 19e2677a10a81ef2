"""PET: SUV body-weight factors from the DICOM header (vendor-neutral QIBA/UW pseudo-code).

:func:`pet_suv_factors` turns a PET series' pixel values (after rescale) into SUVbw,
per slice; :func:`radsurv.ingest.images.read_image` applies them. A PET scan in
uncalibrated units is refused (:class:`~radsurv.errors.CaseError`): it must not enter a
radiomics model.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pydicom

from radsurv.errors import CaseError
from radsurv.ingest.dicomattrs import attr_str, dicom_datetime
from radsurv.ingest.records import STAGE_CONVERSION


def pet_suv_factors(headers: list[pydicom.Dataset], series_uid: str) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """Per-slice factors turning PET pixel values (after rescale) into SUV body weight.

    Follows the vendor-neutral SUV calculation of the QIBA/UW PET SUV
    pseudo-code: ``SUVbw = C * weight[g] / (dose * 2**(-t / T_half))`` with C the
    activity concentration (Units BQML), dose the RadionuclideTotalDose (Bq) and
    t the time from RadiopharmaceuticalStartDateTime (or SeriesDate +
    RadiopharmaceuticalStartTime) to the time the image is decay-corrected to:

    * DecayCorrection ``START``: the series start (SeriesDate/Time; the earliest
      AcquisitionDate/Time instead when the series time lies after it, as after
      post-processing);
    * ``ADMIN``: the images are already corrected to the administration time, t = 0;
    * ``NONE``: each slice's own AcquisitionDate/Time (per-slice factors).

    Units ``GML`` are already SUVbw (factor 1); ``CNTS`` with the Philips SUV scale
    factor (7053,1000) use that factor. Anything else (no weight, no dose,
    half-life or start time, other units) raises :class:`CaseError`: a PET scan
    in uncalibrated units must not enter a radiomics model.
    """
    first = headers[0]
    n = len(headers)
    units = attr_str(first, "Units").upper()
    corr = attr_str(first, "DecayCorrection").upper()
    warnings: list[str] = []
    info: dict[str, Any] = {"units": "SUVbw (g/ml)", "source_units": units or "unknown",
                            "decay_correction": corr or "unknown"}
    calibrated = _precalibrated_factors(first, n, units, series_uid, info, warnings)
    if calibrated is not None:
        return calibrated, info, warnings
    weight_kg = _patient_weight_kg(first, series_uid)
    rp, dose, half_life = _radiopharmaceutical(first, series_uid)
    start, time_only = _injection_start(first, rp, series_uid)
    decay = _decay_times(headers, corr, start, series_uid, warnings)
    decay = _checked_decay(decay, time_only, half_life, series_uid, warnings)
    decayed = dose * np.power(2.0, -decay / half_life)
    factors = weight_kg * 1000.0 / decayed
    info.update({
        "suv_factor": float(factors[0]) if np.ptp(factors) == 0 else [float(f) for f in factors],
        "decay_time_s": float(decay[0]) if np.ptp(decay) == 0 else [float(d) for d in decay],
        "half_life_s": half_life,
    })
    return factors, info, warnings


def _fail(series_uid: str, reason: str) -> CaseError:
    """The error refusing a PET series whose SUV cannot be computed."""
    return CaseError(STAGE_CONVERSION, f"PET series {series_uid}: {reason}; SUV cannot be computed")


def _precalibrated_factors(first: pydicom.Dataset, n: int, units: str, series_uid: str,
                           info: dict[str, Any], warnings: list[str]) -> np.ndarray | None:
    """Factors for units that need no decay calculation (GML: 1; CNTS: the Philips SUV scale
    factor), None for BQML; any other units are refused."""
    if units == "GML":
        info["suv_factor"] = 1.0
        return np.ones(n)
    if units == "CNTS":
        philips = first.get(0x70531000, None)
        if philips is not None and philips.value not in (None, ""):
            try:
                f = float(philips.value if not isinstance(philips.value, bytes) else philips.value.decode().strip())
            except ValueError as exc:
                raise _fail(series_uid, "Units are CNTS and the Philips SUV scale factor (7053,1000) is unreadable"
                            ) from exc
            info["suv_factor"] = f
            warnings.append("PET in CNTS converted with the Philips private SUV scale factor (7053,1000)")
            return np.full(n, f)
        raise _fail(series_uid, "Units are CNTS (counts) without a Philips SUV scale factor")
    if units != "BQML":
        raise _fail(series_uid, f"Units are {units or 'missing'!r}, not BQML (Bq/ml)")
    return None


def _patient_weight_kg(first: pydicom.Dataset, series_uid: str) -> float:
    """PatientWeight (kg), refused when missing, unreadable or zero."""
    weight = first.get("PatientWeight", None)
    try:
        weight_kg = float(weight) if weight not in (None, "") else 0.0
    except (TypeError, ValueError):
        weight_kg = 0.0
    if not weight_kg > 0:
        raise _fail(series_uid, "PatientWeight is missing or zero")
    return weight_kg


def _radiopharmaceutical(first: pydicom.Dataset, series_uid: str) -> tuple[pydicom.Dataset, float, float]:
    """The first RadiopharmaceuticalInformationSequence item, its total dose (Bq) and half-life (s)."""
    rp_seq = first.get("RadiopharmaceuticalInformationSequence", None) or []
    if not rp_seq:
        raise _fail(series_uid, "the RadiopharmaceuticalInformationSequence is missing")
    rp = rp_seq[0]
    try:
        dose = float(rp.get("RadionuclideTotalDose", 0) or 0)
        half_life = float(rp.get("RadionuclideHalfLife", 0) or 0)
    except (TypeError, ValueError):
        dose = half_life = 0.0
    if not dose > 0:
        raise _fail(series_uid, "RadionuclideTotalDose is missing or zero")
    if not half_life > 0:
        raise _fail(series_uid, "RadionuclideHalfLife is missing or zero")
    return rp, dose, half_life


def _injection_start(first: pydicom.Dataset, rp: pydicom.Dataset, series_uid: str) -> tuple[_dt.datetime, bool]:
    """The injection time and whether it was built from a time of day alone (SeriesDate +
    RadiopharmaceuticalStartTime, without RadiopharmaceuticalStartDateTime)."""
    start = dicom_datetime(attr_str(rp, "RadiopharmaceuticalStartDateTime"))
    time_only = False
    if start is None:
        start = dicom_datetime("", attr_str(first, "SeriesDate") or attr_str(first, "AcquisitionDate"),
                               attr_str(rp, "RadiopharmaceuticalStartTime"))
        time_only = True
    if start is None:
        raise _fail(series_uid, "the radiopharmaceutical start (injection) time is missing")
    return start, time_only


def _acquisition_time(h: pydicom.Dataset) -> _dt.datetime | None:
    """A slice's acquisition time: AcquisitionDateTime, else AcquisitionDate (or SeriesDate) + AcquisitionTime."""
    return dicom_datetime(attr_str(h, "AcquisitionDateTime"),
                          attr_str(h, "AcquisitionDate") or attr_str(h, "SeriesDate"),
                          attr_str(h, "AcquisitionTime"))


def _series_start(headers: list[pydicom.Dataset], series_uid: str, warnings: list[str]) -> _dt.datetime:
    """The time a ``START``-corrected series is decay-corrected to: SeriesDate/Time, or the
    earliest acquisition when the series time lies after it (or is missing)."""
    first = headers[0]
    ref = dicom_datetime("", attr_str(first, "SeriesDate"), attr_str(first, "SeriesTime"))
    acqs = [t for t in (_acquisition_time(h) for h in headers) if t is not None]
    earliest = min(acqs) if acqs else None
    if ref is None or (earliest is not None and ref > earliest):
        if earliest is None:
            raise _fail(series_uid, "neither SeriesDate/SeriesTime nor AcquisitionDate/Time is present")
        if ref is not None:
            warnings.append("SeriesTime is after the first AcquisitionTime (post-processed series?); "
                            "decay corrected to the earliest acquisition time")
        ref = earliest
    return ref


def _decay_times(headers: list[pydicom.Dataset], corr: str, start: _dt.datetime, series_uid: str,
                 warnings: list[str]) -> np.ndarray:
    """Seconds from injection to the time each slice is decay-corrected to (by DecayCorrection)."""
    n = len(headers)
    if corr == "ADMIN":
        return np.zeros(n)
    if corr in ("START", ""):
        if not corr:
            warnings.append("DecayCorrection missing; assumed START (decay-corrected to the series start)")
        ref = _series_start(headers, series_uid, warnings)
        return np.full(n, (ref - start).total_seconds())
    if corr == "NONE":
        times = [_acquisition_time(h) for h in headers]
        if any(t is None for t in times):
            raise _fail(series_uid, "DecayCorrection is NONE but a slice has no AcquisitionTime")
        decay = np.array([(t - start).total_seconds() for t in times])  # type: ignore[operator]
        warnings.append("PET not decay-corrected (DecayCorrection NONE): dose decayed to each slice's acquisition time")
        return decay
    raise _fail(series_uid, f"DecayCorrection {corr!r} is not START, ADMIN or NONE")


def _checked_decay(decay: np.ndarray, time_only: bool, half_life: float, series_uid: str,
                   warnings: list[str]) -> np.ndarray:
    """Decay times after the injected-before-midnight fix, refused when negative or over 10 half-lives."""
    if time_only and decay.min() < 0 and decay.max() + 86400.0 < 12 * 3600.0:
        decay = decay + 86400.0  # injected before midnight, scanned after it
        warnings.append("injection time is later in the day than the scan: assumed the day before")
    if decay.min() < 0:
        raise _fail(series_uid, f"the injection time is {-decay.min() / 60:.1f} min after the scan start")
    if decay.max() > 10 * half_life:
        raise _fail(series_uid, f"the time from injection to scan ({decay.max() / 3600:.1f} h) exceeds 10 half-lives")
    return decay
