"""Image formation of the synthetic demo cohort: CT voxels and ROI polygons from the planted truth.

:func:`render_ct` evaluates every voxel analytically at its centre in patient mm (partial
volume from an error-function ramp at each edge) and adds the scan's noise;
:func:`roi_polygons` gives each structure's exact cross-section with every slice plane.
The model is documented in :mod:`radsurv.synthetic.demo`; the quantities come from
:mod:`radsurv.synthetic.truth`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import erfc

from radsurv.synthetic.grain import Grain, check_texture, draw_grain
from radsurv.synthetic.truth import LUNG_CENTRE, Geometry, PatientTruth, ScanTruth, patient_rng, texture_raw

__all__ = ["render_ct", "roi_polygons"]

# anatomy that is the same for every patient (mm, at anatomy_scale 1)
FAT_MM = 8.0
SPINE_CENTRE = (0.0, 52.0)
SPINE_RADIUS = 12.0
CORTEX_MM = 2.5

HU_AIR, HU_FAT, HU_SOFT, HU_LUNG = -1000.0, -90.0, 40.0, -850.0
HU_CORTEX, HU_MARROW = 650.0, 350.0
TUMOUR_BASE_HU = 30.0
N_VERTICES = 64


def _ellipse_occ(x: np.ndarray, y: np.ndarray, a: float, b: float, dx: float,
                 dy: float) -> np.ndarray:
    """Partial-volume occupancy of an axis-aligned ellipse (2-D)."""
    g = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    gx, gy = x / (a * a), y / (b * b)
    gn = np.maximum(np.sqrt(gx**2 + gy**2), 1e-9)
    d = (g * g - 1.0) / (2.0 * gn)  # F / |grad F| with F = g^2 - 1
    sig = np.maximum(np.sqrt((gx / gn * dx) ** 2 + (gy / gn * dy) ** 2) / math.sqrt(12.0), 1e-6)
    return 0.5 * erfc(d / (math.sqrt(2.0) * sig))


def _ellipsoid_occ(ux: np.ndarray, uy: np.ndarray, uz: np.ndarray, semi: Sequence[float],
                   rot: float, vox: Sequence[float]) -> np.ndarray:
    """Partial-volume occupancy of an ellipsoid; ``u*`` (broadcastable) in its frame.

    The signed distance is approximated by ``F / |grad F|`` and the voxel's
    extent projected on the surface normal sets the width of an erf ramp
    (a sum of three uniform variables has that variance).
    """
    a, b, c = semi
    f = (ux / a) ** 2 + (uy / b) ** 2 + (uz / c) ** 2 - 1.0
    gx, gy, gz = 2 * ux / a**2, 2 * uy / b**2, 2 * uz / c**2
    gn = np.maximum(np.sqrt(gx * gx + gy * gy + gz * gz), 1e-9)
    cr, sr = math.cos(rot), math.sin(rot)
    nx = (cr * gx - sr * gy) * vox[0]
    ny = (sr * gx + cr * gy) * vox[1]
    sig = np.maximum(np.sqrt(nx * nx + ny * ny + (gz * vox[2]) ** 2) / gn, 1e-6)
    return 0.5 * erfc((f / gn) / (math.sqrt(2.0 / 12.0) * sig))


def _to_tumour_frame(p: PatientTruth, X: np.ndarray, Y: np.ndarray, Z: np.ndarray
                     ) -> np.ndarray:
    cx, cy, cz = p.tumour_centre_mm
    cr, sr = math.cos(p.tumour_rotation_rad), math.sin(p.tumour_rotation_rad)
    dx, dy = X - cx, Y - cy
    return np.stack(np.broadcast_arrays(cr * dx + sr * dy, -sr * dx + cr * dy, Z - cz), axis=-1)


def _blob_field(blobs: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Sum of isotropic Gaussian blobs on the grid ``z x y x x`` (separable)."""
    out = np.zeros((z.size, y.size, x.size))
    for bx, by, bz, s, amp in blobs:
        k = -1.0 / (2 * s * s)
        ez = amp * np.exp(k * (z - bz) ** 2)
        out += ez[:, None, None] * np.outer(np.exp(k * (y - by) ** 2), np.exp(k * (x - bx) ** 2))
    return out


def _box(v: np.ndarray, lo: float, hi: float) -> slice:
    idx = np.nonzero((v >= lo) & (v <= hi))[0]
    return slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)



def _add_lungs(img: np.ndarray, patient: PatientTruth, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray,
               k: float, vox: tuple[float, float, float]) -> None:
    """Paint both lungs (ellipsoids with their smooth structure) into ``img`` in place, box by box."""
    dx, dy, dz = vox
    la, lb, lc = patient.lung_semi_mm
    m = 3 * max(dx, dz)
    for sgn in (1.0, -1.0):
        lx, ly, lz = sgn * LUNG_CENTRE[0] * k, LUNG_CENTRE[1] * k, patient.lung_z_mm
        sl = (_box(zs, lz - lc - m, lz + lc + m), _box(ys, ly - lb - m, ly + lb + m),
              _box(xs, lx - la - m, lx + la + m))
        bx, by, bz = xs[sl[2]], ys[sl[1]], zs[sl[0]]
        occ = _ellipsoid_occ((bx - lx)[None, None, :], (by - ly)[None, :, None],
                             (bz - lz)[:, None, None], (la, lb, lc), 0.0, (dx, dy, dz))
        val = HU_LUNG + _blob_field(patient.lung_blobs, bx, by, bz)
        img[sl] = img[sl] * (1 - occ) + val * occ


def _add_spine(img: np.ndarray, X2: np.ndarray, Y2: np.ndarray, k: float, dx: float, dy: float) -> np.ndarray:
    """``img`` with the vertebral body (cortex, then marrow) painted over it (a new array)."""
    spx, spy = SPINE_CENTRE[0] * k, SPINE_CENTRE[1] * k
    sr, mr = SPINE_RADIUS * k, (SPINE_RADIUS - CORTEX_MM) * k
    cort = _ellipse_occ(X2 - spx, Y2 - spy, sr, sr, dx, dy)[None]
    marrow = _ellipse_occ(X2 - spx, Y2 - spy, mr, mr, dx, dy)[None]
    img = img * (1 - cort) + HU_CORTEX * cort
    return img * (1 - marrow) + HU_MARROW * marrow


def _add_tumour(img: np.ndarray, patient: PatientTruth, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray,
                vox: tuple[float, float, float], grain: Grain | None = None) -> None:
    """Paint the textured tumour into ``img`` in place, evaluated in its bounding box only
    (``grain``: the two-phase texture of :mod:`radsurv.synthetic.grain` instead of the blobs)."""
    dx, dy, dz = vox
    cx, cy, cz = patient.tumour_centre_mm
    rmax = max(patient.tumour_semi_axes_mm) + 3 * max(dx, dz)
    ix = np.nonzero(np.abs(xs - cx) <= rmax)[0]
    iy = np.nonzero(np.abs(ys - cy) <= rmax)[0]
    iz = np.nonzero(np.abs(zs - cz) <= rmax)[0]
    if not (ix.size and iy.size and iz.size):
        return
    sl = (slice(iz[0], iz[-1] + 1), slice(iy[0], iy[-1] + 1), slice(ix[0], ix[-1] + 1))
    Xb, Yb, Zb = np.meshgrid(zs[sl[0]], ys[sl[1]], xs[sl[2]], indexing="ij")[::-1]
    u = _to_tumour_frame(patient, Xb, Yb, Zb)
    occ = _ellipsoid_occ(u[..., 0], u[..., 1], u[..., 2], patient.tumour_semi_axes_mm,
                         patient.tumour_rotation_rad, (dx, dy, dz))
    if grain is not None:
        val = grain.values_hu(u, TUMOUR_BASE_HU)
    else:
        tex = texture_raw(u, patient.blob_centres_mm, patient.blob_sigmas_mm, patient.blob_weights)
        val = TUMOUR_BASE_HU + patient.heterogeneity_hu * (tex - patient.texture_mean) / patient.texture_sd
    img[sl] = img[sl] * (1 - occ) + val * occ


def render_ct(patient: PatientTruth, scan: ScanTruth, geometry: Geometry,
              noise: bool = True, seed: int = 0, texture: str = "spread") -> np.ndarray:
    """The scan's HU volume, shape ``(n_slices, rows, cols)`` (z, y, x).

    Every value is evaluated at the voxel centre in patient mm after undoing
    the scan's rigid shift, so anatomy, texture and contours move together.
    ``seed`` is the cohort seed (it selects the noise realisation and the grain texture).
    ``texture``: ``spread`` (the heterogeneity is the SD of the blob texture) or ``grain``
    (the spatial scale of a two-phase texture; :mod:`radsurv.synthetic.grain`).
    """
    check_texture(texture)
    sx, sy, sz = scan.shift_mm
    xs = geometry.x() - sx
    ys = geometry.y() - sy
    zs = geometry.z() - sz
    dx = dy = geometry.dx
    dz = geometry.dz
    X2, Y2 = np.meshgrid(xs, ys)  # (rows, cols)

    # body: air, fat ring, soft tissue with its smooth structure
    k = geometry.anatomy_scale
    A, B = patient.body_semi_mm
    body = _ellipse_occ(X2, Y2, A, B, dx, dy)[None]
    inner = _ellipse_occ(X2, Y2, A - FAT_MM * k, B - FAT_MM * k, dx, dy)[None]
    img = HU_AIR * (1 - body) + HU_FAT * body
    soft = HU_SOFT + _blob_field(patient.tissue_blobs, xs, ys, zs)
    img = img * (1 - inner) + soft * inner

    _add_lungs(img, patient, xs, ys, zs, k, (dx, dy, dz))
    img = _add_spine(img, X2, Y2, k, dx, dy)
    _add_tumour(img, patient, xs, ys, zs, (dx, dy, dz),
                draw_grain(seed, patient) if texture == "grain" else None)

    if noise:
        rng = patient_rng(seed, patient.index, 10 + scan.study)
        img = img + rng.normal(0.0, scan.noise_sigma_hu, img.shape)
    return img


def _ellipse_polygon(cx: float, cy: float, a: float, b: float, rot: float, n: int
                     ) -> np.ndarray:
    t = 2.0 * math.pi * np.arange(n) / n
    ex, ey = a * np.cos(t), b * np.sin(t)
    cr, sr = math.cos(rot), math.sin(rot)
    return np.stack([cx + cr * ex - sr * ey, cy + sr * ex + cr * ey], axis=1)


def roi_polygons(patient: PatientTruth, scan: ScanTruth, geometry: Geometry
                 ) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Analytic contours per ROI: ``{name: [(slice index, (n, 2) xy mm), ...]}``.

    Each polygon is the structure's exact cross-section (an ellipse sampled
    at 64 vertices) with the plane of slice ``k``; the GTV uses the semi-axes
    as contoured on this scan.
    """
    sx, sy, sz = scan.shift_mm
    out: dict[str, list[tuple[int, np.ndarray]]] = {
        "GTV-1": [], "Lung-Left": [], "Lung-Right": [], "Body": []}
    cx, cy, cz = patient.tumour_centre_mm
    ta, tb, tc = scan.gtv_semi_axes_mm
    la, lb, lc = patient.lung_semi_mm
    A, B = patient.body_semi_mm
    scale = geometry.anatomy_scale
    for k, z in enumerate(geometry.z()):
        w = 1.0 - ((z - cz - sz) / tc) ** 2
        if w > 0 and min(ta, tb) * math.sqrt(w) > 0.3:
            s = math.sqrt(w)
            out["GTV-1"].append((k, _ellipse_polygon(cx + sx, cy + sy, ta * s, tb * s,
                                                     patient.tumour_rotation_rad, N_VERTICES)))
        w = 1.0 - ((z - patient.lung_z_mm - sz) / lc) ** 2
        if w > 0:
            s = math.sqrt(w)
            for name, sgn in (("Lung-Left", 1.0), ("Lung-Right", -1.0)):
                out[name].append((k, _ellipse_polygon(sgn * LUNG_CENTRE[0] * scale + sx,
                                                      LUNG_CENTRE[1] * scale + sy, la * s, lb * s,
                                                      0.0, N_VERTICES)))
        out["Body"].append((k, _ellipse_polygon(sx, sy, A, B, 0.0, 2 * N_VERTICES)))
    return out

