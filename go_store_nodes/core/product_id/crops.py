"""Where a bin appears in a colour image, and which of its pixels changed.

Frames: the bin box is given in its shelf frame (x along the front, y into the shelf,
z up, metres); cameras by the pose of their colour optical frame in map (z along the
view, x right, y down) and pinhole intrinsics (px). Lens distortion is not applied: the
bin region is grown by a margin, which covers the few pixels a RealSense colour lens bends.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from ..coverage import blocked_by_shelves, visible
from ..store import Bin, Intrinsics, Shelf
from ..transforms import Transform

NEAR_M = 0.05          # corners closer to the camera than this (or behind it): no window
MIN_COMPONENT_PX = 3   # changed blobs smaller than this are sensor noise


def bin_corners_map(bin_: Bin, t_map_shelf: Transform, margin_m: float) -> NDArray[np.float64]:
    """Return the 8 corners (8 x 3, map m) of the bin box grown by ``margin_m``."""
    low = np.asarray(bin_.min_m, dtype=float) - margin_m
    high = np.asarray(bin_.max_m, dtype=float) + margin_m
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1])
                        for z in (low[2], high[2])])
    return t_map_shelf.apply(corners)


def sees_bin_front(bin_: Bin, t_map_shelf: Transform, t_map_color: Transform) -> bool:
    """Whether the camera is in front of the bin's front face (the side hands reach in)."""
    camera_in_shelf = t_map_shelf.inverse().apply(np.asarray(t_map_color.translation)[None])
    return bool(camera_in_shelf[0, 1] < bin_.min_m[1])


def bin_window(bin_: Bin, t_map_shelf: Transform, t_map_color: Transform,
               intrinsics: Intrinsics, margin_m: float, min_size_px: int = 1
               ) -> tuple[int, int, int, int] | None:
    """Return the pixel rectangle (col0, row0, width, height) the grown bin box covers.

    Clipped to the image; None when a corner lies behind the camera or the visible part
    is smaller than ``min_size_px`` on a side.
    """
    corners = t_map_color.inverse().apply(bin_corners_map(bin_, t_map_shelf, margin_m))
    if np.any(corners[:, 2] < NEAR_M):
        return None
    u = intrinsics.fx * corners[:, 0] / corners[:, 2] + intrinsics.cx
    v = intrinsics.fy * corners[:, 1] / corners[:, 2] + intrinsics.cy
    col0 = max(0, int(np.floor(u.min())))
    row0 = max(0, int(np.floor(v.min())))
    col1 = min(intrinsics.width, int(np.ceil(u.max())) + 1)
    row1 = min(intrinsics.height, int(np.ceil(v.max())) + 1)
    if col1 - col0 < min_size_px or row1 - row0 < min_size_px:
        return None
    return col0, row0, col1 - col0, row1 - row0


def changed_mask(before: NDArray[np.uint8], after: NDArray[np.uint8],
                 threshold_dn: float) -> NDArray[np.bool_]:
    """Pixels whose largest channel difference exceeds ``threshold_dn``, without specks.

    Both images HxWx3 uint8 of the same size; blobs under MIN_COMPONENT_PX pixels (8-
    connected) are dropped as sensor noise.
    """
    if before.shape != after.shape or before.ndim != 3:
        raise ValueError(f'before and after must be HxWx3 of one size, got {before.shape} '
                         f'and {after.shape}')
    difference = np.abs(before.astype(np.int16) - after.astype(np.int16)).max(axis=2)
    mask = (difference > threshold_dn).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= MIN_COMPONENT_PX
    return keep[labels]


INSIDE_M = 0.03        # sample plane this far behind the bin's front: the front units
SAMPLE_STEP_M = 0.05   # grid of sample points on that plane


def visible_share(bin_: Bin, shelf: Shelf, t_map_color: Transform, intrinsics: Intrinsics,
                  others: Sequence[Shelf]) -> float:
    """Share of a bin's front units a camera sees (0..1).

    Points on a plane INSIDE_M behind the bin's front (where the front units stand) count
    when they project into the image, the ray to them enters the shelf through the bin's
    opening (the front face of the bin box: not through the board above or below it),
    and no other shelf (a solid box) is in the way.
    """
    low, high = np.asarray(bin_.min_m, float), np.asarray(bin_.max_m, float)
    nx = max(1, int(np.ceil((high[0] - low[0]) / SAMPLE_STEP_M)))
    nz = max(1, int(np.ceil((high[2] - low[2]) / SAMPLE_STEP_M)))
    xs = low[0] + (np.arange(nx) + 0.5) * (high[0] - low[0]) / nx
    zs = low[2] + (np.arange(nz) + 0.5) * (high[2] - low[2]) / nz
    gx, gz = np.meshgrid(xs, zs)
    local = np.column_stack([gx.ravel(), np.full(gx.size, low[1] + INSIDE_M), gz.ravel()])
    points = shelf.t_map_shelf.apply(local)
    seen = visible(t_map_color, intrinsics, points)
    camera = shelf.t_map_shelf.inverse().apply(
        np.asarray(t_map_color.translation, float)[None])[0]
    direction = local - camera
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (low[1] - camera[1]) / direction[:, 1]        # where the ray meets the front
    hit = camera + t[:, None] * direction
    seen &= (t > 0) & (t < 1) & (hit[:, 0] >= low[0]) & (hit[:, 0] <= high[0]) \
        & (hit[:, 2] >= low[2]) & (hit[:, 2] <= high[2])
    if seen.any() and others:
        index = np.flatnonzero(seen)
        seen[index] = ~blocked_by_shelves(t_map_color.translation, points[index], others)
    return float(seen.mean())
