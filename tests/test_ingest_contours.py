"""RTSTRUCT rasterisation accuracy against analytic reference masks, and empty/outside ROIs.

A 1 ml sphere contoured slice by slice (its exact cross-sections) must give a
mask whose volume is within a few percent of 1 ml and which agrees with the
analytic reference mask (voxel centres inside the sphere). A rasteriser that
also fills every pixel the outline passes through (the "one-pixel rim" that
outline-drawing libraries add) inflates the same GTV by more than 20 %; the
test computes that rim mask too, so the claim is measured, not assumed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_dicomio import circle, make_ct, make_rtstruct, scan_for, square, z_of

from radsurv.errors import CaseError
from radsurv.ingest.contours import physical_to_continuous_index
from radsurv.ingest.convert import convert_scan

#: Radius (mm) of a 1 ml sphere: (3 * 1000 / (4 pi)) ** (1/3).
R_1ML = (3000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
CENTRE = (0.37, -0.21, 9.3)  # off the voxel grid on purpose (pixels 1 mm, slices 2 mm)


def _sphere_polygons(r: float, centre: tuple[float, float, float], n_slices: int) -> list[np.ndarray]:
    cx, cy, cz = centre
    polys = []
    for k in range(n_slices):
        d = z_of(k) - cz
        if abs(d) < r:
            polys.append(circle(cx, cy, float(np.sqrt(r * r - d * d)), z_of(k), n=256))
    return polys


def _rim_mask(image: sitk.Image, polys: list[np.ndarray], inside: np.ndarray) -> np.ndarray:
    """Centre-inside mask plus every pixel an outline segment passes through (a one-pixel rim)."""
    rim = inside.copy()
    for poly in polys:
        closed = np.vstack([poly, poly[:1]])
        dense = np.concatenate([np.linspace(a, b, 50, endpoint=False) for a, b in zip(closed[:-1], closed[1:])])
        idx = np.rint(physical_to_continuous_index(image, dense)).astype(int)
        rim[idx[:, 2], idx[:, 1], idx[:, 0]] = True
    return rim


def test_one_ml_sphere_volume_and_dice_against_the_analytic_mask(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "ct", n_slices=10)
    polys = _sphere_polygons(R_1ML, CENTRE, 10)
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", polys)])
    prov = convert_scan(scan_for(ct, rs), "gtv", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    mask_img = sitk.ReadImage(str(tmp_path / "m.nii.gz"))
    ours = sitk.GetArrayFromImage(mask_img).astype(bool)

    # reference: voxel centres inside the sphere (1 x 1 x 2 mm voxels)
    zz, yy, xx = np.meshgrid(np.arange(10) * 2.0, np.arange(32) - 16.0, np.arange(32) - 16.0, indexing="ij")
    ref = (xx - CENTRE[0]) ** 2 + (yy - CENTRE[1]) ** 2 + (zz - CENTRE[2]) ** 2 < R_1ML**2
    voxel_ml = 2.0 / 1000.0
    ours_ml, ref_ml = ours.sum() * voxel_ml, ref.sum() * voxel_ml
    dice = 2 * (ours & ref).sum() / (ours.sum() + ref.sum())
    rim_ml = _rim_mask(mask_img, polys, ours).sum() * voxel_ml
    print(f"1 ml sphere: ours {ours_ml:.3f} ml, centre-inside reference {ref_ml:.3f} ml, Dice {dice:.4f}; "
          f"one-pixel-rim rasteriser {rim_ml:.3f} ml")
    assert prov["roi_volume_ml"] == pytest.approx(ours_ml)
    assert abs(ours_ml - 1.0) < 0.05  # well under the 20 % the issue names
    assert dice > 0.97
    # the polygon differs from the sphere's true cross-section only in the xy plane,
    # so slice by slice we must equal the analytic centre-inside mask almost exactly
    assert np.abs(ours.sum(axis=(1, 2)) - ref.sum(axis=(1, 2))).max() <= 2
    assert rim_ml > 1.2 * ours_ml and rim_ml - 1.0 > 0.2  # the rim inflates a 1 ml GTV by > 20 %


def test_ibsi_gtv_volume_against_rim_rasteriser(shared_data: Path, tmp_path: Path) -> None:
    """On the IBSI phantom the reference mask agrees with centre-inside, not with a rim."""
    import pydicom

    from radsurv.ingest.discovery import discover

    root = shared_data / "ibsi" / "ct_phantom"
    scan = discover(root).scans[0]
    convert_scan(scan, "gtv-1", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    mask_img = sitk.ReadImage(str(tmp_path / "m.nii.gz"))
    ours = sitk.GetArrayFromImage(mask_img).astype(bool)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "nifti" / "mask" / "mask.nii.gz"))) > 0
    rs = pydicom.dcmread(scan.contour_file)
    polys = [np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
             for c in rs.ROIContourSequence[0].ContourSequence]
    rim = _rim_mask(mask_img, polys, ours)
    print(f"IBSI GTV-1 voxels: reference {ref.sum()}, ours {ours.sum()}, rim {rim.sum()}")
    assert abs(int(ours.sum()) - int(ref.sum())) <= 0.01 * ref.sum()
    assert rim.sum() > 1.03 * ref.sum()  # a rim would miss the 1 % criterion


def test_empty_roi_and_roi_outside_fov_are_case_errors(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "ct")
    sub_pixel = [square(0.1, 0.4, 0.1, 0.4, z_of(3))]  # contains no pixel centre
    outside_xy = [square(40.5, 50.5, 40.5, 50.5, z_of(3))]  # beside the 32 mm field of view
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV-tiny", sub_pixel), (2, "GTV-none", []),
                                                 (3, "GTV-beside", outside_xy)])
    out = (tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    with pytest.raises(CaseError, match="'GTV-tiny' gives an empty mask"):
        convert_scan(scan_for(ct, rs), "gtv-tiny", *out)
    with pytest.raises(CaseError, match="'GTV-none' matching 'gtv-none' have no contour data"):
        convert_scan(scan_for(ct, rs), "gtv-none", *out)
    with pytest.raises(CaseError, match="'GTV-beside' lies entirely outside the image field of view"):
        convert_scan(scan_for(ct, rs), "gtv-beside", *out)
    assert not out[0].exists()


def test_contour_points_off_plane_are_assigned_to_their_slice(tmp_path: Path) -> None:
    """Points scattered +-0.4 mm (0.2 slice) around the plane, as some TPS exports write them."""
    ct = make_ct(tmp_path / "ct")
    rng = np.random.default_rng(5)
    poly = square(-5.5, 4.5, -5.5, 4.5, z_of(4))
    poly[:, 2] += rng.uniform(-0.4, 0.4, len(poly))
    two_islands_and_hole = [square(-10.5, -1.5, -10.5, -1.5, z_of(6)), square(0.5, 9.5, 0.5, 9.5, z_of(6)),
                            square(2.5, 6.5, 2.5, 6.5, z_of(6))]
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", [poly, *two_islands_and_hole])])
    prov = convert_scan(scan_for(ct, rs), "gtv", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    m = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "m.nii.gz")))
    assert m[4].sum() == 100 and m[3].sum() == 0 and m[5].sum() == 0
    assert m[6].sum() == 81 + 81 - 16  # two islands, one with a 4 x 4 hole (even-odd)
    assert prov["voxel_count"] == 100 + 146
