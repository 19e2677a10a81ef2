"""Image series: slice geometry checks and reading a CT/MR/PT series in physical units.

:func:`check_geometry` sorts a scan's files along the slice normal and refuses
series that are not one regular 3D volume (inconsistent orientation, size or
pixel spacing, duplicate slices, gaps, gantry tilt). :func:`read_image` reads the
series with SimpleITK/GDCM and converts it to physical units:

* CT: HU. SimpleITK/GDCM applies RescaleSlope/RescaleIntercept of every file while
  reading; this is verified against pydicom's modality LUT on the first, middle and
  last slice whenever pydicom can decode the pixel data. Pixel padding is set to air.
  CT is stored as int16 when all values are integral and fit, else float32.
* PT: SUV body weight (:func:`radsurv.ingest.pet.pet_suv_factors`).
* MR: the scanner's native units, with the sequence parameters (:func:`mr_sequence`).

DICOM metadata is never carried into the converted image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from radsurv.errors import CaseError
from radsurv.ingest.dicomattrs import attr_str, float_tuple
from radsurv.ingest.pet import pet_suv_factors
from radsurv.ingest.records import STAGE_CONVERSION, ScanRecord, shown_file

log = logging.getLogger(__name__)


@dataclass
class SeriesGeometry:
    """An image series' files in slice order and its checked slice geometry."""

    files: list[str]
    sop_uids: list[str]
    positions: np.ndarray  # along the normal, ascending
    spacing_z: float
    normal: np.ndarray
    first: pydicom.Dataset
    headers: list[pydicom.Dataset] = field(default_factory=list)  # in slice order


def _read_headers(scan: ScanRecord) -> list[tuple[str, pydicom.Dataset]]:
    """``(file, header)`` of every image file of ``scan`` (at least two)."""
    uid = scan.series_uid
    headers: list[tuple[str, pydicom.Dataset]] = []
    for f in scan.image_files:
        try:
            headers.append((f, pydicom.dcmread(f, stop_before_pixels=True, force=True)))
        except Exception as exc:  # noqa: BLE001
            raise CaseError(
                STAGE_CONVERSION,
                f"image file {shown_file(scan, f)} of series {uid} cannot be read ({type(exc).__name__})",
            ) from exc
    if len(headers) < 2:
        raise CaseError(
            STAGE_CONVERSION, f"series {uid} has {len(headers)} image(s); a 3D volume needs at least 2 slices"
        )
    return headers


def _slice_positions(scan: ScanRecord, headers: list[tuple[str, pydicom.Dataset]]
                     ) -> tuple[tuple[float, ...], tuple[float, ...] | None, list[tuple[float, ...]]]:
    """Orientation and pixel spacing of the series and each slice's ImagePositionPatient,
    after checking that all slices share orientation, size and pixel spacing."""
    uid = scan.series_uid
    iop0 = float_tuple(headers[0][1].get("ImageOrientationPatient"))
    if iop0 is None or len(iop0) != 6:
        raise CaseError(STAGE_CONVERSION, f"series {uid} has no ImageOrientationPatient")
    rows0, cols0 = headers[0][1].get("Rows"), headers[0][1].get("Columns")
    ps0 = float_tuple(headers[0][1].get("PixelSpacing"))
    pos = []
    for f, ds in headers:
        iop = float_tuple(ds.get("ImageOrientationPatient"))
        if iop is None or len(iop) != 6 or not np.allclose(iop, iop0, atol=1e-4):
            raise CaseError(
                STAGE_CONVERSION,
                f"series {uid} has inconsistent ImageOrientationPatient (file {shown_file(scan, f)}); "
                f"slices are not parallel",
            )
        if ds.get("Rows") != rows0 or ds.get("Columns") != cols0:
            raise CaseError(STAGE_CONVERSION, f"series {uid} mixes image sizes (file {shown_file(scan, f)})")
        ps = float_tuple(ds.get("PixelSpacing"))
        if ps is None or ps0 is None or not np.allclose(ps, ps0, atol=1e-4):
            raise CaseError(STAGE_CONVERSION, f"series {uid} has missing or inconsistent PixelSpacing")
        ipp = float_tuple(ds.get("ImagePositionPatient"))
        if ipp is None or len(ipp) != 3:
            raise CaseError(STAGE_CONVERSION, f"series {uid}: file {shown_file(scan, f)} has no ImagePositionPatient")
        pos.append(ipp)
    return iop0, ps0, pos


def _check_no_duplicates(scan: ScanRecord, proj: np.ndarray, files: list[str]) -> None:
    """No two slices at the same position along the normal (``proj`` ascending)."""
    dup = np.nonzero(np.diff(proj) < 1e-3)[0]
    if dup.size:
        k = int(dup[0])
        raise CaseError(
            STAGE_CONVERSION,
            f"series {scan.series_uid} has {dup.size + 1} or more images at the same slice position "
            f"z={proj[k]:.2f} mm (duplicate slices, e.g. {shown_file(scan, files[k])} and "
            f"{shown_file(scan, files[k + 1])})",
        )


def _check_gaps(uid: str, proj: np.ndarray) -> float:
    """The slice spacing (median step), after checking that every step equals it (no missing slice)."""
    diffs = np.diff(proj)
    expected = float(np.median(diffs))
    tol = max(0.01, 0.01 * expected)
    for k, d in enumerate(diffs):
        if abs(d - expected) > tol:
            ratio = d / expected
            if ratio > 1.5 and abs(ratio - round(ratio)) * expected <= tol * max(1.0, round(ratio)):
                n_missing = int(round(ratio)) - 1
                what = "a slice is missing" if n_missing == 1 else f"{n_missing} slices are missing"
            else:
                what = "slice spacing is not uniform"
            raise CaseError(
                STAGE_CONVERSION,
                f"series {uid} has a gap between slice positions z={proj[k]:.2f} and "
                f"z={proj[k + 1]:.2f} (spacing {d:.1f} mm where {expected:.1f} expected): {what}",
            )
    return expected


def _check_stacking(uid: str, ipp_arr: np.ndarray, normal: np.ndarray, ps0: tuple[float, ...] | None) -> None:
    """Slices must be stacked along the normal (no gantry tilt / shear)."""
    offsets = ipp_arr - ipp_arr[0]
    inplane = offsets - np.outer(offsets @ normal, normal)
    shear_tol = max(0.05, 0.02 * min(ps0 or (1.0,)))
    if np.abs(inplane).max() > shear_tol:
        raise CaseError(
            STAGE_CONVERSION,
            f"series {uid}: slice positions are not stacked along the slice normal "
            f"(in-plane shift up to {np.abs(inplane).max():.2f} mm; gantry tilt?)",
        )


def check_geometry(scan: ScanRecord) -> SeriesGeometry:
    """Sort the files along the slice normal and check orientation, duplicates and gaps."""
    uid = scan.series_uid
    headers = _read_headers(scan)
    iop0, ps0, pos = _slice_positions(scan, headers)
    row, col = np.array(iop0[:3]), np.array(iop0[3:])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    ipp_arr = np.array(pos)
    proj = ipp_arr @ normal
    order = np.argsort(proj, kind="stable")
    proj = proj[order]
    ipp_arr = ipp_arr[order]
    files = [headers[i][0] for i in order]
    sops = [attr_str(headers[i][1], "SOPInstanceUID") for i in order]
    _check_no_duplicates(scan, proj, files)
    expected = _check_gaps(uid, proj)
    _check_stacking(uid, ipp_arr, normal, ps0)
    return SeriesGeometry(files, sops, proj, expected, normal, headers[order[0]][1], [headers[i][1] for i in order])


def _verify_rescale(image_arr: np.ndarray, geo: SeriesGeometry, uid: str) -> bool:
    """Compare SimpleITK's values with pydicom's modality LUT on a few slices.

    Returns True when verified, False when pydicom could not decode the pixels.
    """
    from pydicom.pixels import apply_modality_lut

    n = len(geo.files)
    for k in sorted({0, n // 2, n - 1}):
        try:
            ds = pydicom.dcmread(geo.files[k], force=True)
            ref = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
        except Exception as exc:  # noqa: BLE001 - pydicom may lack a decoder; not our problem
            log.debug("rescale check skipped for series %s: %s", uid, type(exc).__name__)
            return False
        got = image_arr[k].astype(np.float64)
        if ref.shape != got.shape or not np.allclose(ref, got, atol=1e-3 * max(1.0, np.abs(ref).max()) + 1e-3):
            raise CaseError(
                STAGE_CONVERSION,
                f"series {uid}: pixel values read by SimpleITK differ from RescaleSlope/Intercept-"
                f"applied values on slice {k} (per-slice rescale not handled?)",
            )
    return True


def _read_series(scan: ScanRecord, geo: SeriesGeometry, warnings: list[str]) -> sitk.Image:
    """The series as read by SimpleITK/GDCM (rescaled), without metadata, checked against ``geo``."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(geo.files)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise CaseError(
            STAGE_CONVERSION, f"series {scan.series_uid} cannot be read by SimpleITK/GDCM ({str(exc)[-200:]})"
        ) from exc
    for key in img.GetMetaDataKeys():  # never carry DICOM metadata into NIfTI
        img.EraseMetaData(key)
    direction = np.array(img.GetDirection()).reshape(3, 3)
    if not np.allclose(direction[:, 2], geo.normal, atol=1e-3) or not np.isclose(
        img.GetSpacing()[2], geo.spacing_z, rtol=1e-2, atol=1e-2
    ):
        raise CaseError(
            STAGE_CONVERSION, f"series {scan.series_uid}: SimpleITK geometry disagrees with the DICOM slice positions"
        )
    arr = sitk.GetArrayViewFromImage(img)
    if not _verify_rescale(arr, geo, scan.series_uid):
        warnings.append("rescale slope/intercept could not be verified with pydicom (compressed pixel data)")
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError(STAGE_CONVERSION, f"series {scan.series_uid} is not a greyscale image")
    return img


def _to_units(scan: ScanRecord, geo: SeriesGeometry, img: sitk.Image, warnings: list[str]
              ) -> tuple[sitk.Image, dict[str, Any]]:
    """The image in the modality's units and their provenance: PT SUVbw, CT HU (padding to air), MR native."""
    info: dict[str, Any]
    if scan.modality == "PT":
        factors, info, pet_warn = pet_suv_factors(geo.headers, scan.series_uid)
        warnings.extend(pet_warn)
        suv = sitk.GetArrayFromImage(img).astype(np.float64) * factors[:, None, None]
        out = sitk.GetImageFromArray(suv.astype(np.float32))
        out.CopyInformation(img)
        img = out
    elif scan.modality == "CT":
        img, info = _ct_padding(img, geo, warnings)
    else:
        info = {"units": "native scanner units (MR signal intensity, not quantitative)",
                "sequence": mr_sequence(geo.first)}
        if any(0x2005100E in h for h in geo.headers[:1]):
            warnings.append("Philips private scale slope (2005,100E) present but not applied: "
                            "values are the displayed (rescaled) values")
    return img, info


def storage_pixel_type(scan: ScanRecord, img: sitk.Image) -> int:
    """The pixel type ``img`` is stored as, decided on the whole image: CT as int16 when every value
    is integral and fits, else float32; other float images as float32; otherwise unchanged.

    Conversion casts only what it stores (the ROI's neighbourhood for CT and PET,
    :func:`radsurv.ingest.converted.write_image_and_mask`), with this whole-image decision, so the
    stored voxels and their type are those of :func:`read_image`'s cast of the whole scan."""
    pid = img.GetPixelID()
    if pid in (sitk.sitkFloat64, sitk.sitkFloat32):
        vals = sitk.GetArrayViewFromImage(img)
        if (
            scan.modality == "CT"
            and np.all(np.mod(vals, 1) == 0)
            and vals.min() >= -32768
            and vals.max() <= 32767
        ):
            return sitk.sitkInt16
        return sitk.sitkFloat32
    if scan.modality == "CT" and pid != sitk.sitkInt16:
        vals = sitk.GetArrayViewFromImage(img)
        return sitk.sitkInt16 if vals.min() >= -32768 and vals.max() <= 32767 else sitk.sitkFloat32
    return pid


def _storage_type(scan: ScanRecord, img: sitk.Image) -> sitk.Image:
    """``img`` cast to its :func:`storage_pixel_type`."""
    pid = storage_pixel_type(scan, img)
    return img if pid == img.GetPixelID() else sitk.Cast(img, pid)


def read_image(scan: ScanRecord, geo: SeriesGeometry,
               cast: bool = True) -> tuple[sitk.Image, list[str], dict[str, Any]]:
    """The series as a SimpleITK image in physical units, its warnings and unit provenance.

    CT: HU (padding set to air, see :func:`_ct_padding`); PT: SUVbw (see
    :func:`radsurv.ingest.pet.pet_suv_factors`); MR: the scanner's native units, with the
    sequence parameters recorded (see :func:`mr_sequence`). ``cast``: in its storage type
    (:func:`storage_pixel_type`); ``False`` leaves the cast to the caller (conversion casts only
    the part it stores).
    """
    warnings: list[str] = []
    img = _read_series(scan, geo, warnings)
    img, info = _to_units(scan, geo, img, warnings)
    return (_storage_type(scan, img) if cast else img), warnings, info


def _ct_padding(img: sitk.Image, geo: SeriesGeometry, warnings: list[str]) -> tuple[sitk.Image, dict[str, Any]]:
    """Set CT pixel padding (PixelPaddingValue, outside the reconstructed field of view) to air.

    Padding is stored as a sentinel (often -2000 or -3024 HU after rescale) that
    is not a measurement; it is replaced by -1024 HU and counted
    (``padding_voxels``) so that a mask reaching it can be reported.
    """
    info: dict[str, Any] = {"units": "HU", "padding_voxels": 0}
    first = geo.first
    pad = first.get("PixelPaddingValue", None)
    if pad is None:
        return img, info
    slope = float(first.get("RescaleSlope", 1) or 1)
    intercept = float(first.get("RescaleIntercept", 0) or 0)
    lim = first.get("PixelPaddingRangeLimit", None)
    values = [float(pad) * slope + intercept]
    if lim is not None:
        values.append(float(lim) * slope + intercept)
    lo, hi = min(values), max(values)
    if hi >= -1024:
        return img, info  # the sentinel is a plausible HU value (e.g. air itself): nothing to replace
    arr = sitk.GetArrayFromImage(img)
    padded = (arr >= lo - 1e-3) & (arr <= hi + 1e-3)
    n = int(padded.sum())
    if n:
        arr = arr.copy()
        arr[padded] = -1024
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        img = out
        warnings.append(f"{n} padding voxels (outside the reconstructed field of view, "
                        f"{lo:g}..{hi:g} HU) set to -1024 HU")
    info["padding_voxels"] = n
    info["_padding_mask"] = padded if n else None
    return img, info


def mr_sequence(ds: pydicom.Dataset) -> dict[str, Any]:
    """The MR acquisition parameters worth recording (only those present).

    Structured attributes only: free-text descriptions (SeriesDescription,
    ProtocolName) are left out because sites put names and dates in them.
    """
    keys = ["ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "SequenceName",
            "RepetitionTime", "EchoTime", "InversionTime", "FlipAngle", "EchoTrainLength",
            "MagneticFieldStrength", "ImagedNucleus", "PixelBandwidth"]
    out: dict[str, Any] = {}
    for k in keys:
        v = ds.get(k, None)
        if v is None or str(v).strip() == "":
            continue
        if isinstance(v, pydicom.multival.MultiValue):
            out[k] = "\\".join(str(x) for x in v)
        else:
            try:
                out[k] = float(v) if k in ("RepetitionTime", "EchoTime", "InversionTime", "FlipAngle",
                                           "MagneticFieldStrength", "PixelBandwidth") else str(v).strip()
            except (TypeError, ValueError):
                out[k] = str(v).strip()
    return out
