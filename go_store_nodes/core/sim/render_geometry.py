"""Vectorised ray casting for the camera renderer: pixel rays, screen rectangles, hits.

Rays are cast from a pinhole camera's optical centre through pixel centres (OpenCV
convention: the centre of pixel (col, row) is at u = col, v = row). Directions are unit
vectors in map; ``z_per_t`` turns a distance along a ray into the depth along the optical
axis (what a depth camera reports). Misses are ``inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..store import Intrinsics
from ..transforms import Transform

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Nearest distance along the optical axis at which anything is drawn (metres).
NEAR_M = 0.02


@dataclass(frozen=True, eq=False)
class RayGrid:
    """Unit pixel rays of one image stream, in map."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    origin: FloatArray        # (3,) optical centre in map
    rotation: FloatArray      # (3, 3) R_map_optical
    directions: FloatArray    # (H * W, 3) unit directions in map, row-major pixels
    z_per_t: FloatArray       # (H * W,) optical-axis depth per metre along the ray
    dx: NDArray[np.float32]   # (H * W,) the directions' components, contiguous float32
    dy: NDArray[np.float32]
    dz: NDArray[np.float32]

    @property
    def pixel_count(self) -> int:
        """Return the number of pixels (H * W)."""
        return self.width * self.height

    def to_optical(self, points: FloatArray) -> FloatArray:
        """Express map points (N, 3) in the optical frame."""
        return np.asarray((np.asarray(points) - self.origin) @ self.rotation, dtype=np.float64)

    def sub_pixel_directions(self, cols: FloatArray, rows: FloatArray) -> FloatArray:
        """Return unit map directions (N, 3) through arbitrary (sub-)pixel positions."""
        x = (np.asarray(cols, dtype=np.float64) - self.cx) / self.fx
        y = (np.asarray(rows, dtype=np.float64) - self.cy) / self.fy
        local = np.stack([x, y, np.ones_like(x)], axis=-1)
        local /= np.linalg.norm(local, axis=-1, keepdims=True)
        return np.asarray(local @ self.rotation.T, dtype=np.float64)


def make_ray_grid(intrinsics: Intrinsics, t_map_optical: Transform) -> RayGrid:
    """Build the rays of a pinhole stream (no distortion) posed at ``t_map_optical``."""
    if any(abs(c) > 1e-12 for c in intrinsics.d):
        raise ValueError('the renderer models undistorted pinhole cameras only; '
                         f'got distortion {intrinsics.d}')
    cols, rows = np.meshgrid(np.arange(intrinsics.width, dtype=np.float64),
                             np.arange(intrinsics.height, dtype=np.float64))
    x = ((cols - intrinsics.cx) / intrinsics.fx).ravel()
    y = ((rows - intrinsics.cy) / intrinsics.fy).ravel()
    norm = np.sqrt(x * x + y * y + 1.0)
    local = np.stack([x / norm, y / norm, 1.0 / norm], axis=1)
    rotation = np.array(t_map_optical.rotation, dtype=np.float64)
    directions = np.ascontiguousarray(local @ rotation.T)
    return RayGrid(intrinsics.width, intrinsics.height, intrinsics.fx, intrinsics.fy,
                   intrinsics.cx, intrinsics.cy,
                   np.array(t_map_optical.translation, dtype=np.float64), rotation,
                   directions, 1.0 / norm,
                   *(np.ascontiguousarray(directions[:, i], dtype=np.float32)
                     for i in range(3)))


def sphere_rects(grid: RayGrid, centers: FloatArray, radii: FloatArray) -> IntArray:
    """Return pixel rectangles (K, 4: col0, col1, row0, row1, end-exclusive) over spheres.

    A sphere wholly behind the camera gets an empty rectangle; one that reaches the
    camera plane gets the whole image. Rectangles are clipped to the image.
    """
    p = grid.to_optical(np.asarray(centers, dtype=np.float64).reshape(-1, 3))
    r = np.asarray(radii, dtype=np.float64).reshape(-1)
    z_near = p[:, 2] - r
    in_front = z_near > NEAR_M
    z_lo = np.where(in_front, z_near, 1.0)
    z_hi = p[:, 2] + r
    # x / z over the sphere's bounding box is extreme at the box corners (z > 0).
    xs = np.stack([(p[:, 0] - r) / z_lo, (p[:, 0] - r) / z_hi,
                   (p[:, 0] + r) / z_lo, (p[:, 0] + r) / z_hi])
    ys = np.stack([(p[:, 1] - r) / z_lo, (p[:, 1] - r) / z_hi,
                   (p[:, 1] + r) / z_lo, (p[:, 1] + r) / z_hi])
    with np.errstate(invalid='ignore', over='ignore'):
        c0 = np.ceil(grid.cx + grid.fx * xs.min(axis=0))
        c1 = np.floor(grid.cx + grid.fx * xs.max(axis=0)) + 1
        r0 = np.ceil(grid.cy + grid.fy * ys.min(axis=0))
        r1 = np.floor(grid.cy + grid.fy * ys.max(axis=0)) + 1
    rects = np.stack([np.clip(c0, 0, grid.width), np.clip(c1, 0, grid.width),
                      np.clip(r0, 0, grid.height), np.clip(r1, 0, grid.height)], axis=1)
    straddles = ~in_front & (z_hi > NEAR_M)
    rects[straddles] = (0, grid.width, 0, grid.height)
    rects[z_hi <= NEAR_M] = 0
    return rects.astype(np.int64)


def capsule_rects(grid: RayGrid, a: FloatArray, b: FloatArray, radii: FloatArray) -> IntArray:
    """Return pixel rectangles covering capsules (the union of their end spheres' ones).

    The projection of a capsule in front of the camera is the convex hull of the
    projections of its end spheres, so the union of their bounding boxes covers it.
    """
    ra = sphere_rects(grid, a, radii)
    rb = sphere_rects(grid, b, radii)
    empty_a = (ra[:, 0] >= ra[:, 1]) | (ra[:, 2] >= ra[:, 3])
    empty_b = (rb[:, 0] >= rb[:, 1]) | (rb[:, 2] >= rb[:, 3])
    rects = np.stack([np.minimum(ra[:, 0], rb[:, 0]), np.maximum(ra[:, 1], rb[:, 1]),
                      np.minimum(ra[:, 2], rb[:, 2]), np.maximum(ra[:, 3], rb[:, 3])], axis=1)
    rects[empty_a & ~empty_b] = rb[empty_a & ~empty_b]
    rects[empty_b & ~empty_a] = ra[empty_b & ~empty_a]
    rects[empty_a & empty_b] = 0
    # One end off the side of the image and the other behind the camera: the segment can
    # still cross the view, so fall back to the whole image when an end is behind.
    pa = grid.to_optical(np.asarray(a, dtype=np.float64).reshape(-1, 3))[:, 2]
    pb = grid.to_optical(np.asarray(b, dtype=np.float64).reshape(-1, 3))[:, 2]
    r = np.asarray(radii, dtype=np.float64).reshape(-1)
    crossing = ((pa - r <= NEAR_M) != (pb - r <= NEAR_M))
    rects[crossing] = (0, grid.width, 0, grid.height)
    return rects


def rect_pixels(rects: IntArray, width: int) -> tuple[IntArray, IntArray]:
    """Flatten rectangles into (owner index, flat pixel index) pairs, one per covered pixel."""
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    widths = np.maximum(rects[:, 1] - rects[:, 0], 0)
    heights = np.maximum(rects[:, 3] - rects[:, 2], 0)
    counts = widths * heights
    total = int(counts.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    owner = np.repeat(np.arange(len(rects), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(total, dtype=np.int64) - starts[owner]
    w = widths[owner]
    rows = rects[owner, 2] + local // w
    cols = rects[owner, 0] + local % w
    return owner, rows * width + cols


@dataclass(frozen=True, eq=False)
class CapsuleBatch:
    """Per-capsule constants of the ray-capsule test for rays from one origin (float32)."""

    ba: NDArray[np.float32]     # (3, K) b - a, one row per component
    oa: NDArray[np.float32]     # (3, K) origin - a
    ob: NDArray[np.float32]     # (3, K) origin - b
    baba: NDArray[np.float32]   # (K,) |b - a|^2
    baoa: NDArray[np.float32]   # (K,) (b - a) . (origin - a)
    qc: NDArray[np.float32]     # (K,) |ba|^2 |oa|^2 - (ba . oa)^2 - r^2 |ba|^2
    sca: NDArray[np.float32]    # (K,) |oa|^2 - r^2
    scb: NDArray[np.float32]    # (K,) |ob|^2 - r^2


def capsule_batch(origin: FloatArray, a: FloatArray, b: FloatArray,
                  radii: FloatArray) -> CapsuleBatch:
    """Precompute what the ray-capsule test needs per capsule (rays share ``origin``)."""
    ba = b - a
    oa = origin - a
    ob = origin - b
    baba = np.einsum('ij,ij->i', ba, ba)
    baoa = np.einsum('ij,ij->i', ba, oa)
    oaoa = np.einsum('ij,ij->i', oa, oa)
    r2 = radii * radii

    def f32(v: FloatArray) -> NDArray[np.float32]:
        return np.ascontiguousarray(v, dtype=np.float32)

    return CapsuleBatch(f32(ba.T), f32(oa.T), f32(ob.T), f32(baba), f32(baoa),
                        f32(baba * oaoa - baoa * baoa - r2 * baba), f32(oaoa - r2),
                        f32(np.einsum('ij,ij->i', ob, ob) - r2))


def intersect_capsules(grid: RayGrid, batch: CapsuleBatch, owner: IntArray,
                       pix: IntArray) -> tuple[IntArray, FloatArray]:
    """Intersect pixel rays ``pix`` with capsules ``owner``, element by element.

    Return the elements that hit and their distances along the ray. A sphere is a
    capsule with a == b. Analytic (after I. Quilez): the infinite cylinder first, then
    the end sphere on the near side; float32, only per-capsule scalars gathered, and
    elements that miss the infinite cylinder dropped early.
    """
    dx, dy, dz = grid.dx[pix], grid.dy[pix], grid.dz[pix]

    def dot(v: NDArray[np.float32], who: IntArray, x: NDArray[np.float32],
            y: NDArray[np.float32], z: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.asarray(x * v[0][who] + y * v[1][who] + z * v[2][who])

    bard = dot(batch.ba, owner, dx, dy, dz)
    rdoa = dot(batch.oa, owner, dx, dy, dz)
    baba = batch.baba[owner]
    baoa = batch.baoa[owner]
    qa = baba - bard * bard
    qb = baba * rdoa - baoa * bard
    h = qb * qb - qa * batch.qc[owner]
    keep = np.nonzero(h >= 0.0)[0]
    owner = owner[keep]
    bard, rdoa, baba, baoa = bard[keep], rdoa[keep], baba[keep], baoa[keep]
    qa, qb, h = qa[keep], qb[keep], h[keep]
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        t_body = (-qb - np.sqrt(h)) / qa
        y = baoa + t_body * bard
        body = (y > 0.0) & (y < baba) & (qa > 1e-9)
        # End sphere on the near side of the body (the a end when y <= 0). A ray parallel
        # to the axis (qa ~ 0) or a sphere (baba = 0) gives y = nan and meets only caps.
        use_a = ~(y > 0.0)
        rdob = dot(batch.ob, owner, dx[keep], dy[keep], dz[keep])
        sb = np.where(use_a, rdoa, rdob)
        sh = sb * sb - np.where(use_a, batch.sca[owner], batch.scb[owner])
        t_cap = -sb - np.sqrt(np.maximum(sh, 0.0))
        t = np.where(body, t_body, np.where(sh >= 0.0, t_cap, np.inf))
    hit = np.nonzero((t > 0.0) & (t < np.inf))[0]
    return keep[hit], t[hit].astype(np.float64)


def capsule_normals(points: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """Return unit outward normals at points (N, 3) on capsules a-b (paired by row)."""
    ba = b - a
    baba = np.einsum('ij,ij->i', ba, ba)
    with np.errstate(divide='ignore', invalid='ignore'):
        s = np.where(baba > 0.0, np.einsum('ij,ij->i', points - a, ba) / baba, 0.0)
    s = np.clip(s, 0.0, 1.0)
    n = points - a - ba * s[:, None]
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.asarray(n / np.maximum(norm, 1e-12), dtype=np.float64)


_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0)
                          for sz in (-1.0, 1.0)])


def box_rects(grid: RayGrid, centers: FloatArray, rotations: FloatArray,
              half: FloatArray) -> IntArray:
    """Return pixel rectangles (K, 4) covering oriented boxes (their projected corners).

    A box with every corner behind the camera gets an empty rectangle; one with some
    corners behind gets the whole image.
    """
    local = _CORNER_SIGNS[None, :, :] * half[:, None, :]                 # (K, 8, 3)
    corners = centers[:, None, :] + np.einsum('kij,kcj->kci', rotations, local)
    p = (corners - grid.origin) @ grid.rotation                    # (K, 8, 3) optical
    z = p[..., 2]
    in_front = z > NEAR_M
    all_front = in_front.all(axis=1)
    zs = np.where(in_front, z, 1.0)
    u = grid.cx + grid.fx * p[..., 0] / zs
    v = grid.cy + grid.fy * p[..., 1] / zs
    with np.errstate(invalid='ignore', over='ignore'):
        rects = np.stack([np.clip(np.ceil(u.min(axis=1)), 0, grid.width),
                          np.clip(np.floor(u.max(axis=1)) + 1, 0, grid.width),
                          np.clip(np.ceil(v.min(axis=1)), 0, grid.height),
                          np.clip(np.floor(v.max(axis=1)) + 1, 0, grid.height)], axis=1)
    rects[~all_front & in_front.any(axis=1)] = (0, grid.width, 0, grid.height)
    rects[~in_front.any(axis=1)] = 0
    return rects.astype(np.int64)


@dataclass(frozen=True)
class BoxHits:
    """Where rays hit oriented boxes: distances, box-frame points and face normals."""

    t: FloatArray            # (N,) distance along the ray, inf on a miss
    local: FloatArray        # (N, 3) hit point in the box frame (centre at origin)
    axis: IntArray           # (N,) 0, 1, 2: which face pair was hit
    normal: FloatArray       # (N, 3) unit outward normal in map


def intersect_boxes(grid: RayGrid, centers: FloatArray, rotations: FloatArray,
                    half: FloatArray, owner: IntArray, pix: IntArray) -> BoxHits:
    """Intersect pixel rays ``pix`` with boxes ``owner`` element by element (slab method)."""
    o_box = np.einsum('kj,kji->ki', grid.origin - centers, rotations)    # (K, 3) box frame
    r = rotations[owner]                                                # (N, 3, 3)
    dx, dy, dz = grid.dx[pix], grid.dy[pix], grid.dz[pix]
    d = np.stack([dx * r[:, 0, i] + dy * r[:, 1, i] + dz * r[:, 2, i] for i in range(3)],
                 axis=1)
    o = o_box[owner]
    h = half[owner]
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / d
        t1 = (-h - o) * inv
        t2 = (h - o) * inv
    t_near = np.fmin(t1, t2)           # fmin/fmax drop the nan of 0 * inf
    t_far = np.fmax(t1, t2)
    axis = np.argmax(np.where(np.isnan(t_near), -np.inf, t_near), axis=1)
    rows = np.arange(len(d))
    t_in = t_near[rows, axis]
    t_out = np.min(np.where(np.isnan(t_far), np.inf, t_far), axis=1)
    hit = (t_in <= t_out) & (t_in > 0.0)
    t = np.where(hit, t_in, np.inf)
    local = o + d * np.where(hit, t_in, 0.0)[:, None]
    normal_local = np.zeros_like(d)
    normal_local[rows, axis] = -np.sign(d[rows, axis])
    normal = np.einsum('nij,nj->ni', r, normal_local)
    return BoxHits(t, local, axis, normal)


def intersect_plane(origin: FloatArray, directions: FloatArray, point: FloatArray,
                    normal: FloatArray) -> FloatArray:
    """Return the distance along unit rays to a plane; inf when parallel or behind."""
    denom = directions @ normal
    with np.errstate(divide='ignore', invalid='ignore'):
        t = float(np.dot(point - origin, normal)) / denom
    t[~(t > 0.0) | ~np.isfinite(t)] = np.inf
    return np.asarray(t, dtype=np.float64)


# Solid kinds drawn inside an oriented box (its half extents scale a unit primitive).
SOLID_BOX = 0
SOLID_CYLINDER = 1      # axis along box z, elliptic when half x != half y
SOLID_ELLIPSOID = 2


def intersect_solids(grid: RayGrid, centers: FloatArray, rotations: FloatArray,
                     half: FloatArray, kind: IntArray, owner: IntArray,
                     pix: IntArray) -> BoxHits:
    """Intersect pixel rays with boxes, vertical-in-frame cylinders and ellipsoids.

    Each solid is inscribed in its oriented box; ``kind`` (``SOLID_*`` per solid) picks
    the primitive. In the box frame scaled by the half extents every solid is a unit one
    (cube, cylinder |xy| <= 1 and |z| <= 1, sphere), so the distance along the ray is the
    same as in map. ``axis`` is 2 on cylinder caps and ellipsoid points facing +-z by more
    than 45 degrees, 0 elsewhere on the round solids.
    """
    hits = intersect_boxes(grid, centers, rotations, half, owner, pix)
    round_ = np.nonzero((kind[owner] != SOLID_BOX) & np.isfinite(hits.t))[0]
    if len(round_) == 0:
        return hits
    who = owner[round_]
    r = rotations[who]
    o_box = np.einsum('nj,nji->ni', grid.origin - centers[who], r)
    p = pix[round_]
    d = np.stack([grid.dx[p] * r[:, 0, i] + grid.dy[p] * r[:, 1, i] + grid.dz[p] * r[:, 2, i]
                  for i in range(3)], axis=1).astype(np.float64)
    h = half[who]
    os_, ds = o_box / h, d / h
    t = np.full(len(round_), np.inf)
    n_s = np.zeros((len(round_), 3))
    cyl = kind[who] == SOLID_CYLINDER
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        # Cylinder side, then the cap facing the ray.
        a = ds[:, 0] ** 2 + ds[:, 1] ** 2
        b = os_[:, 0] * ds[:, 0] + os_[:, 1] * ds[:, 1]
        c = os_[:, 0] ** 2 + os_[:, 1] ** 2 - 1.0
        disc = b * b - a * c
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        z_side = os_[:, 2] + t_side * ds[:, 2]
        side = cyl & (disc >= 0.0) & (a > 1e-12) & (np.abs(z_side) <= 1.0) & (t_side > 0.0)
        cap_sign = -np.sign(ds[:, 2])
        t_cap = (cap_sign - os_[:, 2]) / ds[:, 2]
        xc = os_[:, 0] + t_cap * ds[:, 0]
        yc = os_[:, 1] + t_cap * ds[:, 1]
        cap = cyl & ~side & (xc * xc + yc * yc <= 1.0) & (t_cap > 0.0)
        t = np.where(side, t_side, np.where(cap, t_cap, t))
        # Ellipsoid.
        ell = kind[who] == SOLID_ELLIPSOID
        a3 = np.einsum('ij,ij->i', ds, ds)
        b3 = np.einsum('ij,ij->i', os_, ds)
        c3 = np.einsum('ij,ij->i', os_, os_) - 1.0
        disc3 = b3 * b3 - a3 * c3
        t_ell = (-b3 - np.sqrt(np.maximum(disc3, 0.0))) / a3
        on_ell = ell & (disc3 >= 0.0) & (t_ell > 0.0)
        t = np.where(on_ell, t_ell, t)
    at = os_ + ds * np.where(np.isfinite(t), t, 0.0)[:, None]
    n_s[side, 0:2] = at[side, 0:2]
    n_s[cap, 2] = cap_sign[cap]
    n_s[on_ell] = at[on_ell]
    n_local = n_s / h
    n_local /= np.maximum(np.linalg.norm(n_local, axis=1, keepdims=True), 1e-12)
    axis = np.where(cap | (on_ell & (np.abs(n_local[:, 2]) > 0.7071)), 2, 0)
    t_all, local, axis_all, normal = hits.t.copy(), hits.local.copy(), hits.axis.copy(), \
        hits.normal.copy()
    t_all[round_] = t
    local[round_] = at * h
    axis_all[round_] = axis
    normal[round_] = np.einsum('nij,nj->ni', r, n_local)
    return BoxHits(t_all, local, axis_all, normal)
