"""Per camera: a background learned from the frames, the foreground, and its map points.

The background of a pixel is the far side of what it has seen (depth in metres along the
optical axis). Depth within the noise band of it refines it slowly; depth farther away
for ``reveal_after_s`` replaces it (what stood there has left); depth nearer and steady
for ``absorb_after_s`` joins it (stock, a basket put down), except where the locator
found a person (``protect``): those pixels restart their clock every time.
The band follows the D435 error model, RMS = Z^2 * subpixel / (f_px * baseline).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from ..store import Intrinsics
from ..transforms import Transform
from .config import LocatorConfig
from .frames import CameraObservation, DepthFrame, FrameRejectedError


@dataclass(frozen=True)
class FloorGrid:
    """A rectangle of the floor (map x, y) cut into square cells, row-major by y."""

    min_x_m: float
    min_y_m: float
    cell_m: float
    nx: int
    ny: int

    @classmethod
    def covering(cls, min_xy_m: tuple[float, float], max_xy_m: tuple[float, float],
                 cell_m: float) -> FloorGrid:
        """Return a grid covering the rectangle from ``min_xy_m`` to ``max_xy_m``."""
        if not (max_xy_m[0] > min_xy_m[0] and max_xy_m[1] > min_xy_m[1]):
            raise ValueError(f'floor rectangle {min_xy_m} .. {max_xy_m} is empty')
        nx = int(np.ceil((max_xy_m[0] - min_xy_m[0]) / cell_m))
        ny = int(np.ceil((max_xy_m[1] - min_xy_m[1]) / cell_m))
        return cls(float(min_xy_m[0]), float(min_xy_m[1]), float(cell_m), nx, ny)

    def cells_of(self, x: NDArray, y: NDArray) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Flat cell index of map points and whether each lies on the grid."""
        ix = np.floor((x - self.min_x_m) / self.cell_m).astype(np.int64)
        iy = np.floor((y - self.min_y_m) / self.cell_m).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return iy * self.nx + ix, inside

    def centres(self, rows: NDArray, cols: NDArray) -> tuple[NDArray, NDArray]:
        """Map x, y of cell centres."""
        return (self.min_x_m + (cols + 0.5) * self.cell_m,
                self.min_y_m + (rows + 0.5) * self.cell_m)


def in_view(points: NDArray, intrinsics: Intrinsics, t_map_depth: Transform,
            margin_px: float = 1.0) -> NDArray[np.bool_]:
    """Whether map points (K, 3) project into the image (pinhole, ``margin_px`` inside)."""
    camera = t_map_depth.inverse().apply(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    z = camera[:, 2]
    ahead = z > 1e-3
    safe = np.where(ahead, z, 1.0)
    u = intrinsics.fx * camera[:, 0] / safe + intrinsics.cx
    v = intrinsics.fy * camera[:, 1] / safe + intrinsics.cy
    return ahead & (u >= margin_px - 0.5) & (u <= intrinsics.width - 0.5 - margin_px) & (
        v >= margin_px - 0.5) & (v <= intrinsics.height - 0.5 - margin_px)


def noise_rms_m(depth_m: NDArray, fx_px: float, config: LocatorConfig) -> NDArray:
    """RMS depth error of a stereo depth camera at depth Z (m): Z^2 * subpixel / (f * b)."""
    scale = np.float32(config.depth_subpixel_rms / (fx_px * config.stereo_baseline_m))
    return depth_m * depth_m * scale


class BackgroundModel:
    """Per-pixel background depth of one camera (see the module docstring)."""

    def __init__(self, shape: tuple[int, int], config: LocatorConfig) -> None:
        """Start with no background: the first valid depth of each pixel becomes it."""
        self.config = config
        self.depth_m = np.zeros(shape, np.float32)        # 0 = not seen yet
        # Streaks of far / near depth: whether the pixel is in one, and since when (s since
        # the first frame; float32 keeps ms over days of running). Only the pixels in a
        # streak are touched per frame, so the cost follows the foreground, not the image.
        self._origin_s: float | None = None
        self._far = np.zeros(shape[0] * shape[1], bool)
        self._far_since_s = np.zeros(shape[0] * shape[1], np.float32)
        self._near = np.zeros(shape[0] * shape[1], bool)
        self._near_since_s = np.zeros(shape[0] * shape[1], np.float32)
        self._near_ref_m = np.zeros(shape[0] * shape[1], np.float32)

    def _time(self, t_s: float) -> np.float32:
        if self._origin_s is None:
            self._origin_s = t_s
        return np.float32(t_s - self._origin_s)

    def update(self, depth_m: NDArray[np.float32], band_m: NDArray[np.float32],
               t_s: float) -> NDArray[np.bool_]:
        """Learn from one frame at time ``t_s``; return its foreground mask.

        ``band_m`` is the per-pixel noise band; zero depth (no data) changes nothing.
        """
        cfg = self.config
        t = self._time(t_s)
        bg = self.depth_m
        valid = depth_m > 0.0
        known = bg > 0.0
        np.copyto(bg, depth_m, where=valid & ~known)
        seen = valid & known
        diff = depth_m - bg
        near = seen & (diff < -band_m)
        far = seen & (diff > band_m)
        inside = seen & ~(near | far)
        bg += diff * inside.astype(np.float32) * np.float32(cfg.background_rate)
        flat_depth = depth_m.reshape(-1)
        flat_bg = bg.reshape(-1)
        # Farther than the background: what stood there left, once it lasts.
        index = np.flatnonzero(far)
        since = np.where(self._far[index], self._far_since_s[index], t)
        self._far_since_s[index] = since
        reveal = index[t - since >= cfg.reveal_after_s]
        flat_bg[reveal] = flat_depth[reveal]
        self._far = far.reshape(-1)
        self._far[reveal] = False
        # Nearer: foreground; absorbed once it has stayed put (within the band) long enough.
        # A pixel without data keeps its streak.
        index = np.flatnonzero(near)
        depth = flat_depth[index]
        steady = self._near[index] & (
            np.abs(depth - self._near_ref_m[index]) <= band_m.reshape(-1)[index])
        since = np.where(steady, self._near_since_s[index], t)
        self._near_since_s[index] = since
        self._near_ref_m[index] = np.where(steady, self._near_ref_m[index], depth)
        absorbed = t - since >= cfg.absorb_after_s
        absorb = index[absorbed]
        flat_bg[absorb] = flat_depth[absorb]
        self._near = near.reshape(-1) | (self._near & ~valid.reshape(-1))
        self._near[absorb] = False
        foreground = near.reshape(-1).copy()
        foreground[absorb] = False
        return foreground.reshape(near.shape)

    def protect(self, flat_pixels: NDArray[np.int64], t_s: float) -> None:
        """Restart the absorption clock of pixels where a person was located at ``t_s``."""
        t = self._time(t_s)
        pixels = flat_pixels[self._near[flat_pixels]]
        self._near_since_s[pixels] = np.maximum(self._near_since_s[pixels], t)


class CameraFrameLocator:
    """Background, foreground and map points of one camera's depth frames."""

    def __init__(self, camera_id: str, grid: FloorGrid, config: LocatorConfig) -> None:
        """Prepare for frames of ``camera_id``; the grid defines the floor cells."""
        self.camera_id = camera_id
        self.grid = grid
        self.config = config
        self.background: BackgroundModel | None = None
        self._intrinsics: Intrinsics | None = None
        self._rays: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None
        self._sideways_map: tuple[Transform, NDArray[np.float32]] | None = None
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))

    def _prepare(self, intrinsics: Intrinsics) -> None:
        """(Re)build the pixel rays; a new image geometry restarts the background."""
        if intrinsics == self._intrinsics:
            return
        h, w = intrinsics.height, intrinsics.width
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        if any(intrinsics.d):
            pixels = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
            normalised = cv2.undistortPoints(pixels, intrinsics.k(),
                                             np.asarray(intrinsics.d)).reshape(h, w, 2)
            rx, ry = normalised[..., 0], normalised[..., 1]
        else:
            rx = (u - intrinsics.cx) / intrinsics.fx
            ry = (v - intrinsics.cy) / intrinsics.fy
        self._rays = (rx.astype(np.float32).ravel(), ry.astype(np.float32).ravel())
        self._intrinsics = intrinsics
        self.background = BackgroundModel((h, w), self.config)

    def process(self, frame: DepthFrame) -> CameraObservation:
        """Update the background with one frame; return its foreground in map."""
        cfg = self.config
        depth = frame.depth_m
        if depth.shape != (frame.intrinsics.height, frame.intrinsics.width):
            raise FrameRejectedError(
                'wrong_size', f'depth image {depth.shape[1]}x{depth.shape[0]} does not match '
                'its camera_info')
        depth = depth * ((depth >= cfg.min_depth_m) & (depth <= cfg.max_depth_m))
        valid_fraction = float(np.count_nonzero(depth)) / depth.size
        if valid_fraction < cfg.min_valid_fraction:
            raise FrameRejectedError(
                'no_depth', f'only {100.0 * valid_fraction:.1f} % of the depth pixels hold '
                f'data (need {100.0 * cfg.min_valid_fraction:.0f} %)')
        self._prepare(frame.intrinsics)
        assert self.background is not None and self._rays is not None
        background = self.background
        # Band at the background's depth (pixels without background yet learn regardless).
        band = noise_rms_m(background.depth_m, frame.intrinsics.fx, cfg) * np.float32(
            cfg.foreground_sigmas) + np.float32(cfg.foreground_min_band_m)
        foreground = background.update(depth, band, frame.stamp_ns * 1e-9)
        # Lone pixels are noise or mixed pixels at depth edges.
        mask = cv2.morphologyEx(foreground.view(np.uint8), cv2.MORPH_OPEN, self._kernel)
        pixels = np.flatnonzero(mask)
        z = depth.reshape(-1)[pixels]
        rx, ry = self._rays
        camera_points = np.stack([rx[pixels] * z, ry[pixels] * z, z], axis=1)
        rotation = frame.t_map_depth.rotation.astype(np.float32)
        translation = frame.t_map_depth.translation.astype(np.float32)
        points = camera_points @ rotation.T + translation
        cells, inside = self.grid.cells_of(points[:, 0], points[:, 1])
        keep = inside & (points[:, 2] >= cfg.min_point_height_m)
        z = z[keep]
        rms = noise_rms_m(z, frame.intrinsics.fx, cfg)
        # A depth error moves the point along its ray: sideways by the ray's horizontal part.
        ray = np.stack([rx[pixels[keep]], ry[pixels[keep]], np.ones_like(z)], axis=1) @ rotation.T
        sideways = rms * np.hypot(ray[:, 0], ray[:, 1])
        # Two RMS errors: the points of a cell's top surface (see blobs.height_maps).
        bands = rms * np.float32(2.0)
        return CameraObservation(
            camera_id=self.camera_id, stamp_ns=frame.stamp_ns, points=points[keep],
            pixels=pixels[keep].astype(np.int64), cells=cells[keep], bands_m=bands,
            sideways_m=sideways.astype(np.float32),
            sideways_map_m=self.sideways_map(frame.intrinsics, frame.t_map_depth),
            foreground_pixels=int(keep.size), intrinsics=frame.intrinsics,
            t_map_depth=frame.t_map_depth)

    @property
    def last_sideways_map(self) -> NDArray[np.float32] | None:
        """The sideways error map of the camera's latest pose (None before a frame)."""
        return None if self._sideways_map is None else self._sideways_map[1]

    def sideways_map(self, intrinsics: Intrinsics, t_map_depth: Transform) -> NDArray[np.float32]:
        """Per floor cell, the RMS sideways error of a point at standing height; inf unseen.

        Depends on the camera's pose and intrinsics only, so it is computed once per pose.
        """
        cached = self._sideways_map
        if cached is not None and (cached[0] is t_map_depth or (
                np.array_equal(cached[0].rotation, t_map_depth.rotation)
                and np.array_equal(cached[0].translation, t_map_depth.translation))):
            return cached[1]
        rows, cols = np.divmod(np.arange(self.grid.nx * self.grid.ny), self.grid.nx)
        x, y = self.grid.centres(rows.astype(np.float64), cols.astype(np.float64))
        points = np.stack([x, y, np.full(x.shape, self.config.standing_height_m)], axis=1)
        seen = in_view(points, intrinsics, t_map_depth)
        camera = t_map_depth.inverse().apply(points)
        depth = np.where(camera[:, 2] > 1e-3, camera[:, 2], 1.0)
        ray = camera / depth[:, None]          # (x/z, y/z, 1) in the optical frame
        horizontal = np.hypot(*(ray @ np.asarray(t_map_depth.rotation).T)[:, :2].T)
        error = noise_rms_m(depth, intrinsics.fx, self.config) * horizontal
        result = np.where(seen, error, np.inf).astype(np.float32)
        self._sideways_map = (t_map_depth, result)
        return result

    def protect(self, flat_pixels: NDArray[np.int64], stamp_ns: int) -> None:
        """Keep these pixels (a located person) from joining the background."""
        if self.background is not None and flat_pixels.size:
            self.background.protect(flat_pixels, stamp_ns * 1e-9)
