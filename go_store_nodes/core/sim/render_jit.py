"""Compiled (numba) inner loop of the renderer: ray-capsule tests and the z-buffer.

The arithmetic is ``render_geometry.intersect_capsules`` step for step in float32 (same
operations, same order, no fast-math), so the pixels are the ones the vectorised numpy
version gives; one pass over the candidate pixels replaces its ~100 array passes.
Compiled on first use and cached next to this file (``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray


@numba.njit(cache=True, nogil=True, error_model='numpy')
def _sphere_rect(cx_m: float, cy_m: float, cz_m: float, r: float, origin: NDArray[np.float64],
                 rotation: NDArray[np.float64], k: NDArray[np.float64], width: int,
                 height: int, near_m: float) -> tuple[int, int, int, int, float]:
    """``render_geometry.sphere_rects`` of one sphere: (col0, col1, row0, row1, depth)."""
    d0, d1, d2 = cx_m - origin[0], cy_m - origin[1], cz_m - origin[2]
    p0 = d0 * rotation[0, 0] + d1 * rotation[1, 0] + d2 * rotation[2, 0]
    p1 = d0 * rotation[0, 1] + d1 * rotation[1, 1] + d2 * rotation[2, 1]
    p2 = d0 * rotation[0, 2] + d1 * rotation[1, 2] + d2 * rotation[2, 2]
    z_near = p2 - r
    z_hi = p2 + r
    if z_hi <= near_m:
        return 0, 0, 0, 0, p2
    if not z_near > near_m:                   # reaches the camera plane: the whole image
        return 0, width, 0, height, p2
    x_min = min((p0 - r) / z_near, (p0 - r) / z_hi)
    x_max = max((p0 + r) / z_near, (p0 + r) / z_hi)
    y_min = min((p1 - r) / z_near, (p1 - r) / z_hi)
    y_max = max((p1 + r) / z_near, (p1 + r) / z_hi)
    fx, fy, cx, cy = k[0], k[1], k[2], k[3]
    c0 = min(max(math.ceil(cx + fx * x_min), 0.0), float(width))
    c1 = min(max(math.floor(cx + fx * x_max) + 1.0, 0.0), float(width))
    r0 = min(max(math.ceil(cy + fy * y_min), 0.0), float(height))
    r1 = min(max(math.floor(cy + fy * y_max) + 1.0, 0.0), float(height))
    return int(c0), int(c1), int(r0), int(r1), p2


@numba.njit(cache=True, nogil=True, error_model='numpy')
def capsule_zbuffer(origins: NDArray[np.float64], rotations: NDArray[np.float64],
                    intrinsics: NDArray[np.float64], sizes: NDArray[np.int64],
                    offsets: NDArray[np.int64], a: NDArray[np.float64],
                    b: NDArray[np.float64], radius: NDArray[np.float64], near_m: float,
                    dx: NDArray[np.float32], dy: NDArray[np.float32], dz: NDArray[np.float32],
                    z_per_t: NDArray[np.float64], z: NDArray[np.float64],
                    owner: NDArray[np.int64], t_won: NDArray[np.float32],
                    touched: NDArray[np.int64]) -> int:  # pragma: no cover - compiled
    """Z-buffer capsules (K) into streams (S); return how many pixels were won.

    Per stream: ray origin (map), R_map_optical, (fx, fy, cx, cy), (width, height) and the
    first flat pixel in the ray arrays. For each (stream, capsule): the pixel rectangle of
    the end spheres (the whole image when the capsule crosses the camera plane), then per
    row only the columns where the ray meets the infinite cylinder round the axis (a
    quadratic in the normalised x; a sphere: itself), then the exact ray test of
    ``render_geometry.intersect_capsules`` in float32, step for step. A pixel is won when
    a hit is nearer than ``z`` (or ties with another capsule's win there, the later one
    winning). ``owner`` (-1 = none, reset by the caller) gets ``s * K + k``, ``t_won`` the
    ray distance, ``touched`` the won pixels (room for every pixel of the streams).
    """
    count = 0
    n_caps = len(radius)
    tiny = np.float32(1e-9)
    for s in range(len(offsets)):
        origin, rotation, k = origins[s], rotations[s], intrinsics[s]
        width, height = sizes[s, 0], sizes[s, 1]
        fx, fy, cx, cy = k[0], k[1], k[2], k[3]
        for c in range(n_caps):
            r = radius[c]
            ra = _sphere_rect(a[c, 0], a[c, 1], a[c, 2], r, origin, rotation, k, width,
                              height, near_m)
            rb = _sphere_rect(b[c, 0], b[c, 1], b[c, 2], r, origin, rotation, k, width,
                              height, near_m)
            empty_a = ra[0] >= ra[1] or ra[2] >= ra[3]
            empty_b = rb[0] >= rb[1] or rb[2] >= rb[3]
            if empty_a and empty_b:
                c0, c1, r0, r1 = 0, 0, 0, 0
            elif empty_a:
                c0, c1, r0, r1 = rb[0], rb[1], rb[2], rb[3]
            elif empty_b:
                c0, c1, r0, r1 = ra[0], ra[1], ra[2], ra[3]
            else:
                c0, c1 = min(ra[0], rb[0]), max(ra[1], rb[1])
                r0, r1 = min(ra[2], rb[2]), max(ra[3], rb[3])
            # One end off the side and the other behind the camera: the whole image.
            if (ra[4] - r <= near_m) != (rb[4] - r <= near_m):
                c0, c1, r0, r1 = 0, width, 0, height
            if c0 >= c1 or r0 >= r1:
                continue
            # Per-pair constants (CapsuleBatch), float64 then float32.
            ba0, ba1, ba2 = b[c, 0] - a[c, 0], b[c, 1] - a[c, 1], b[c, 2] - a[c, 2]
            oa0, oa1, oa2 = origin[0] - a[c, 0], origin[1] - a[c, 1], origin[2] - a[c, 2]
            ob0, ob1, ob2 = origin[0] - b[c, 0], origin[1] - b[c, 1], origin[2] - b[c, 2]
            baba64 = ba0 * ba0 + ba1 * ba1 + ba2 * ba2
            baoa64 = ba0 * oa0 + ba1 * oa1 + ba2 * oa2
            oaoa64 = oa0 * oa0 + oa1 * oa1 + oa2 * oa2
            r2 = r * r
            qc64 = baba64 * oaoa64 - baoa64 * baoa64 - r2 * baba64
            sca64 = oaoa64 - r2
            bax, bay, baz = np.float32(ba0), np.float32(ba1), np.float32(ba2)
            oax, oay, oaz = np.float32(oa0), np.float32(oa1), np.float32(oa2)
            obx, oby, obz = np.float32(ob0), np.float32(ob1), np.float32(ob2)
            baba, baoa, qc = np.float32(baba64), np.float32(baoa64), np.float32(qc64)
            sca = np.float32(sca64)
            scb = np.float32(ob0 * ob0 + ob1 * ob1 + ob2 * ob2 - r2)
            # Row spans: d(x) = x r0 + q with q = y r1 + r2, |r0| = 1, r0 . q = 0.
            a1 = ba0 * rotation[0, 0] + ba1 * rotation[1, 0] + ba2 * rotation[2, 0]
            b1 = oa0 * rotation[0, 0] + oa1 * rotation[1, 0] + oa2 * rotation[2, 0]
            sphere = baba64 <= 1e-12
            base_pixel = offsets[s]
            owner_id = s * n_caps + c
            for row in range(r0, r1):
                yn = (row - cy) / fy
                q0 = yn * rotation[0, 1] + rotation[0, 2]
                q1 = yn * rotation[1, 1] + rotation[1, 2]
                q2 = yn * rotation[2, 1] + rotation[2, 2]
                e = yn * yn + 1.0
                a0 = ba0 * q0 + ba1 * q1 + ba2 * q2
                b0 = oa0 * q0 + oa1 * q1 + oa2 * q2
                if sphere:
                    qa_ = b1 * b1 - sca64
                    qb_ = 2.0 * b1 * b0
                    qc_ = b0 * b0 - e * sca64
                else:
                    cc1 = baba64 * b1 - baoa64 * a1
                    cc0 = baba64 * b0 - baoa64 * a0
                    qa_ = cc1 * cc1 - qc64 * (baba64 - a1 * a1)
                    qb_ = 2.0 * cc1 * cc0 + 2.0 * qc64 * a1 * a0
                    qc_ = cc0 * cc0 - qc64 * (baba64 * e - a0 * a0)
                lo, hi = c0, c1
                if qa_ < 0.0:
                    disc = qb_ * qb_ - 4.0 * qa_ * qc_
                    if not disc >= 0.0:
                        continue
                    root = math.sqrt(disc)
                    x_lo = (-qb_ + root) / (2.0 * qa_)
                    x_hi = (-qb_ - root) / (2.0 * qa_)
                    # Margin: the exact test below is float32.
                    lo = max(c0, int(min(max(math.ceil(cx + fx * x_lo - 0.25), -1.0),
                                         float(width))))
                    hi = min(c1, int(min(max(math.floor(cx + fx * x_hi + 0.25) + 1.0,
                                             -1.0), float(width))))
                row_pixel = base_pixel + row * width
                for col in range(lo, hi):
                    pix = row_pixel + col
                    x, y, w = dx[pix], dy[pix], dz[pix]
                    bard = x * bax + y * bay + w * baz
                    rdoa = x * oax + y * oay + w * oaz
                    qa = baba - bard * bard
                    qb = baba * rdoa - baoa * bard
                    h = qb * qb - qa * qc
                    if not h >= 0.0:
                        continue
                    t_body = (-qb - np.float32(math.sqrt(h))) / qa
                    along = baoa + t_body * bard
                    if along > 0.0 and along < baba and qa > tiny:
                        t = t_body
                    else:
                        if not along > 0.0:
                            sb, sc = rdoa, sca
                        else:
                            sb, sc = x * obx + y * oby + w * obz, scb
                        sh = sb * sb - sc
                        if not sh >= 0.0:
                            continue
                        t = -sb - np.float32(math.sqrt(max(sh, np.float32(0.0))))
                    if not (t > 0.0 and t < np.inf):
                        continue
                    depth = np.float64(t) * z_per_t[pix]
                    current = z[pix]
                    if depth < current or (depth == current and owner[pix] >= 0):
                        if owner[pix] < 0:
                            touched[count] = pix
                            count += 1
                        z[pix] = depth
                        owner[pix] = owner_id
                        t_won[pix] = t
    return count


@numba.njit(cache=True, nogil=True, error_model='numpy')
def capsule_shade(pix: NDArray[np.int64], owner: NDArray[np.int64],
                  t_won: NDArray[np.float32], dx: NDArray[np.float32],
                  dy: NDArray[np.float32], dz: NDArray[np.float32],
                  origins: NDArray[np.float64], a: NDArray[np.float64],
                  b: NDArray[np.float64], colour: NDArray[np.float64],
                  hair: NDArray[np.float64], head: NDArray[np.bool_],
                  forward: NDArray[np.float64], light: NDArray[np.float64], ambient: float,
                  diffuse: float, rgb: NDArray[np.float32]) -> None:  # pragma: no cover
    """Shade the won pixels: ``capsule_normals``, ``capsule_surface_rgb`` and ``shade``.

    ``owner`` is ``s * K + k`` (``capsule_zbuffer``): ray origin of stream s; capsule k's
    ends (map), colour, hair colour, whether it is a head and the person's facing. A head
    shows hair where its normal points up (z > 0.15) or away from the face (facing < 0.2).
    """
    n_caps = len(a)
    for i in range(len(pix)):
        p = pix[i]
        s, q = owner[i] // n_caps, owner[i] % n_caps
        t = np.float64(t_won[p])
        ax, ay, az = a[q, 0], a[q, 1], a[q, 2]
        bax, bay, baz = b[q, 0] - ax, b[q, 1] - ay, b[q, 2] - az
        px = origins[s, 0] + np.float64(dx[p]) * t
        py = origins[s, 1] + np.float64(dy[p]) * t
        pz = origins[s, 2] + np.float64(dz[p]) * t
        baba = bax * bax + bay * bay + baz * baz
        s = 0.0
        if baba > 0.0:
            s = ((px - ax) * bax + (py - ay) * bay + (pz - az) * baz) / baba
            s = min(max(s, 0.0), 1.0)
        n0 = px - ax - bax * s
        n1 = py - ay - bay * s
        n2 = pz - az - baz * s
        norm = max(math.sqrt(n0 * n0 + n1 * n1 + n2 * n2), 1e-12)
        n0, n1, n2 = n0 / norm, n1 / norm, n2 / norm
        use_hair = False
        if head[q]:
            facing = n0 * forward[q, 0] + n1 * forward[q, 1] + n2 * forward[q, 2]
            use_hair = n2 > 0.15 or facing < 0.2
        lambert = min(max(n0 * light[0] + n1 * light[1] + n2 * light[2], 0.0), 1.0)
        factor = ambient + diffuse * lambert
        for j in range(3):
            rgb[p, j] = np.float32((hair[q, j] if use_hair else colour[q, j]) * factor)


@numba.njit(cache=True, nogil=True, error_model='numpy')
def depth_sensor(z_m: NDArray[np.float64], rgb: NDArray[np.float32],
                 noise: NDArray[np.float32], dark_draw: NDArray[np.float32],
                 flying_draw: NDArray[np.float32], threshold_lut: NDArray[np.float32],
                 fx_baseline: float, near_m: float, far_m: float, jump_m: float,
                 edge_hole_px: int, flying_fraction: float, gain: float
                 ) -> NDArray[np.uint16]:  # pragma: no cover - compiled
    """Turn true optical depth (H, W) into the D435-like uint16 image (mm, 0 = no data).

    ``Renderer._depth_image`` explains the model; this is its per-pixel work in float32:
    range holes, the stereo occlusion shadow (the right imager at +x sees pixel u at
    u - disparity; hidden when a pixel to the right lands on or left of it), holes on the
    far side of jumps, flying pixels on their near side (``flying_draw`` < fraction, mixed
    0.1-0.9 of the way to the far neighbour; last of right, left, below, above wins),
    dropouts where ``dark_draw`` < ``threshold_lut[luma]``, then noise
    ``z + z^2 * gain * noise``. ``noise``, ``dark_draw``, ``flying_draw`` are (H, W) crops.
    """
    h, w = z_m.shape
    jump = np.float32(jump_m)
    half = np.float32(0.5)
    big = np.float32(1e6)
    z = np.empty((h, w), dtype=np.float32)
    zj = np.empty((h, w), dtype=np.float32)
    for v in range(h):
        for u in range(w):
            value = np.float32(z_m[v, u])
            z[v, u] = value
            zj[v, u] = value if value < np.inf else big
    out = np.zeros((h, w), dtype=np.uint16)
    u_right = np.empty(w, dtype=np.float32)
    fxb = np.float32(fx_baseline)
    fraction = np.float32(flying_fraction)
    g = np.float32(gain)
    near, far_range = np.float32(near_m), np.float32(far_m)
    for v in range(h):
        for u in range(w):
            u_right[u] = np.float32(u) - fxb / z[v, u]
        right_min = np.float32(np.inf)
        for u in range(w - 1, -1, -1):
            zu = z[v, u]
            shadow = right_min <= u_right[u] + half or u_right[u] < -half
            right_min = min(right_min, u_right[u])
            valid = zu >= near and zu <= far_range
            if shadow or not valid:
                continue
            edge = False
            for k in range(edge_hole_px):
                if u + k + 1 < w and zj[v, u + k + 1] - zj[v, u + k] < -jump:
                    edge = True
                if u - 1 - k >= 0 and zj[v, u - k] - zj[v, u - 1 - k] > jump:
                    edge = True
            if edge:
                continue
            r, gr, b = rgb[v, u, 0], rgb[v, u, 1], rgb[v, u, 2]
            luma = np.float32(0.299) * r + np.float32(0.587) * gr + np.float32(0.114) * b
            level = int(min(max(luma, np.float32(0.0)), np.float32(255.0)))
            if dark_draw[v, u] < threshold_lut[level]:
                continue
            # Flying pixel: the far neighbour across a jump (must be a surface).
            behind = np.float32(0.0)
            here = zj[v, u]
            if u + 1 < w and zj[v, u + 1] - here > jump and zj[v, u + 1] < 1e5:
                behind = zj[v, u + 1]
            if u >= 1 and here - zj[v, u - 1] < -jump and zj[v, u - 1] < 1e5:
                behind = zj[v, u - 1]
            if v + 1 < h and zj[v + 1, u] - here > jump and zj[v + 1, u] < 1e5:
                behind = zj[v + 1, u]
            if v >= 1 and here - zj[v - 1, u] < -jump and zj[v - 1, u] < 1e5:
                behind = zj[v - 1, u]
            if behind > 0.0 and flying_draw[v, u] < fraction:
                alpha = np.float32(0.1) + np.float32(0.8) * flying_draw[v, u] / fraction
                zu = zu + alpha * (behind - zu)
            noisy = (zu + zu * zu * g * noise[v, u]) * np.float32(1000.0)
            mm = min(max(np.rint(noisy), np.float32(0.0)), np.float32(65535.0))
            out[v, u] = max(np.uint16(mm), np.uint16(1))
    return out


@numba.njit(cache=True, nogil=True, error_model='numpy')
def spheres_in_view(origins: NDArray[np.float64], rotations: NDArray[np.float64],
                    intrinsics: NDArray[np.float64], sizes: NDArray[np.int64],
                    centers: NDArray[np.float64], radius: NDArray[np.float64],
                    near_m: float) -> NDArray[np.bool_]:  # pragma: no cover - compiled
    """Return per stream whether any sphere's pixel rectangle is non-empty (conservative)."""
    seen = np.zeros(len(origins), dtype=np.bool_)
    for s in range(len(origins)):
        for c in range(len(radius)):
            rect = _sphere_rect(centers[c, 0], centers[c, 1], centers[c, 2], radius[c],
                                origins[s], rotations[s], intrinsics[s], sizes[s, 0],
                                sizes[s, 1], near_m)
            if rect[0] < rect[1] and rect[2] < rect[3]:
                seen[s] = True
                break
    return seen
