"""The person locator: depth (and colour) frames of every camera in, people on the floor out.

``PersonLocator.add_depth(frame)`` checks the frame's stamp, runs the camera's
background/foreground/projection (``CameraFrameLocator``) at once and queues the result;
whenever a frame set is complete (``FrameSetAssembler``) its map points are fused into one
height map, split into people (``segment_people``) and each person gets a colour signature
from the colour frames nearest in time. ``flush(now_ns)`` emits sets whose cameras went
quiet; ``check_health(now_ns)`` flags outages. Nothing here knows camera ids, counts or
mounting: each frame brings its intrinsics and pose.
"""

from __future__ import annotations

from collections import deque
import dataclasses
from typing import Mapping

import numpy as np

from .appearance import sample_colors, signature
from .blobs import height_maps, Segment, segment_people
from .camera import CameraFrameLocator, FloorGrid, in_view
from .config import LocatorConfig
from .frames import (
    CameraObservation,
    ColorFrame,
    DepthFrame,
    Detection,
    FrameRejectedError,
    LocatedSet,
)
from .health import HealthMonitor, OutageChange
from .sync import FrameSet, FrameSetAssembler

COLOR_FRAMES_KEPT = 4


class PersonLocator:
    """Locates people from the depth frames of many unsynchronised cameras."""

    def __init__(self, config: LocatorConfig, camera_fps: Mapping[str, float],
                 floor_min_xy_m: tuple[float, float], floor_max_xy_m: tuple[float, float]) -> None:
        """Locate people on the floor rectangle, from the cameras named (id -> nominal fps)."""
        if not camera_fps:
            raise ValueError('the locator needs at least one camera')
        for camera_id, fps in camera_fps.items():
            if not fps > 0.0:
                raise ValueError(f'camera {camera_id!r}: nominal fps must be > 0, got {fps}')
        self.config = config
        self.grid = FloorGrid.covering(floor_min_xy_m, floor_max_xy_m, config.cell_m)
        self.cameras = {c: CameraFrameLocator(c, self.grid, config) for c in camera_fps}
        self.health = HealthMonitor(dict(camera_fps), config.ns('outage_after_s'))
        self.assembler: FrameSetAssembler[CameraObservation] = FrameSetAssembler(
            camera_fps, config.ns('sync_tolerance_s'), config.ns('max_wait_s'),
            config.ns('outage_after_s'))
        self._colors: dict[str, deque[ColorFrame]] = {c: deque(maxlen=COLOR_FRAMES_KEPT)
                                                      for c in camera_fps}
        self.frame_sets = 0
        self.points_blurred = 0        # foreground points dropped by _sharpest

    def add_depth(self, frame: DepthFrame) -> list[LocatedSet]:
        """Take one depth frame; return the frame sets it completed, located.

        Raises FrameRejectedError (reason: unknown_camera, future_stamp, out_of_order, late,
        no_depth, wrong_size), counted in the camera's health, for a frame it drops.
        """
        camera = self.cameras.get(frame.camera_id)
        if camera is None:
            raise FrameRejectedError('unknown_camera', f'camera {frame.camera_id!r} is not in the '
                                'store description')
        try:
            if frame.received_ns is not None and \
                    frame.stamp_ns - frame.received_ns > self.config.ns('max_future_s'):
                raise FrameRejectedError(
                    'future_stamp', f'stamp is {(frame.stamp_ns - frame.received_ns) / 1e9:.3f} '
                    f's after its receive time (allowed {self.config.max_future_s} s)')
            last = self.health.cameras[frame.camera_id].last_stamp_ns
            if last is not None and frame.stamp_ns <= last:
                raise FrameRejectedError(
                    'out_of_order', f'stamp {frame.stamp_ns} is not after the previous frame '
                    f'({last}), {(last - frame.stamp_ns) / 1e6:.1f} ms earlier')
            observation = camera.process(frame)
            sets = self.assembler.add(observation)
        except FrameRejectedError as rejection:
            self.health.rejected(frame.camera_id, rejection.reason, frame.received_ns)
            raise
        self.health.frame(frame.camera_id, frame.stamp_ns, frame.received_ns)
        return [self._locate(s) for s in sets]

    def reject(self, camera_id: str, reason: str, received_ns: int | None) -> None:
        """Count a frame dropped before it reached the locator (e.g. no transform yet)."""
        if camera_id in self.cameras:
            self.health.rejected(camera_id, reason, received_ns)

    def add_color(self, frame: ColorFrame) -> None:
        """Keep a colour frame for the appearance of the frame sets near its stamp."""
        frames = self._colors.get(frame.camera_id)
        if frames is None:
            raise FrameRejectedError('unknown_camera', f'camera {frame.camera_id!r} is not in the '
                                'store description')
        if frame.rgb.ndim != 3 or frame.rgb.shape != (frame.intrinsics.height,
                                                      frame.intrinsics.width, 3):
            raise FrameRejectedError('wrong_size', f'colour image of shape {frame.rgb.shape} does '
                                'not match its camera_info')
        if frames and frame.stamp_ns <= frames[-1].stamp_ns:
            raise FrameRejectedError('out_of_order', 'colour frame not after the previous one')
        frames.append(frame)

    def flush(self, now_ns: int) -> list[LocatedSet]:
        """Locate the frame sets whose wait for missing cameras is over at ``now_ns``."""
        return [self._locate(s) for s in self.assembler.flush(now_ns)]

    def check_health(self, now_ns: int) -> list[OutageChange]:
        """Flag cameras silent for ``outage_after_s``; return the changes."""
        return self.health.check(now_ns)

    def _color_for(self, camera_id: str, stamp_ns: int) -> ColorFrame | None:
        """Return the colour frame nearest ``stamp_ns`` within the set tolerance plus a frame.

        The colour frame of the depth frame that completes a set often arrives just after
        it; the one before (a frame period older at the camera's nominal rate) still shows
        the head and shoulders where they were.
        """
        frames = self._colors[camera_id]
        if not frames:
            return None
        best = min(frames, key=lambda f: abs(f.stamp_ns - stamp_ns))
        limit = self.config.ns('sync_tolerance_s') + self.health.cameras[camera_id].period_ns
        return best if abs(best.stamp_ns - stamp_ns) <= limit else None

    def _locate(self, frame_set: FrameSet[CameraObservation]) -> LocatedSet:
        """Fuse one frame set into people; protect their pixels from the background."""
        self.frame_sets += 1
        observations = frame_set.members
        self.health.frame_set(frame_set.stamp_ns, {o.camera_id: o.stamp_ns for o in observations})
        blur = np.minimum.reduce([o.sideways_map_m for o in observations])
        observations = self._sharpest(observations, self._sharpest_live(observations, blur))
        cells = np.concatenate([o.cells for o in observations])
        heights = np.concatenate([o.points[:, 2] for o in observations])
        bands = np.concatenate([o.bands_m for o in observations])
        top, level = height_maps(cells, heights, bands, self.grid)

        def visible(points: np.ndarray) -> np.ndarray:
            seen = np.zeros(len(points), bool)
            for o in observations:
                seen |= in_view(points, o.intrinsics, o.t_map_depth)
            return seen

        segments, labels = segment_people(top, level, self.grid, self.config, visible,
                                          np.where(np.isfinite(blur), blur, 0.0),
                                          self._main_camera(observations))
        flat_labels = labels.reshape(-1)
        point_labels = [flat_labels[o.cells] for o in observations]
        for observation, owner in zip(observations, point_labels, strict=True):
            self.cameras[observation.camera_id].protect(observation.pixels[owner > 0],
                                                        observation.stamp_ns)
        detections = tuple(
            self._detection(k + 1, segment, observations, point_labels)
            for k, segment in enumerate(segments))
        return LocatedSet(frame_set.stamp_ns, tuple(o.camera_id for o in observations),
                          detections)

    def _main_camera(self, observations: tuple[CameraObservation, ...]) -> np.ndarray:
        """Per floor cell (flat), the index of the camera with most points there; -1: none."""
        size = self.grid.nx * self.grid.ny
        if not observations:
            return np.full(size, -1, np.int64)
        counts = np.stack([np.bincount(o.cells, minlength=size) for o in observations])
        return np.where(counts.max(axis=0) > 0, np.argmax(counts, axis=0), -1)

    def _sharpest_live(self, observations: tuple[CameraObservation, ...], blur: np.ndarray
                       ) -> np.ndarray:
        """Per cell, the least sideways error of the set's cameras and of every live one.

        Cameras are not synchronised, so a frame set often lacks the camera that sees a
        spot best; that camera's own frame set will locate the person there. A live camera
        (not in outage) outside the set therefore still sets the bar, so a far view
        alone in a set does not add a blurred second head beside the person.
        """
        members = {o.camera_id for o in observations}
        live = self.assembler.live_cameras() - members
        maps = [m for c in sorted(live)
                if (m := self.cameras[c].last_sideways_map) is not None]
        return np.minimum.reduce([blur, *maps]) if maps else blur

    def _sharpest(self, observations: tuple[CameraObservation, ...], best: np.ndarray
                  ) -> tuple[CameraObservation, ...]:
        """Drop points blurred sideways far more than a live camera sees there.

        A far, tilted view places a head anywhere along a stretch of its ray; where a
        camera with a steeper or nearer view covers the cell (in this set or in its own),
        the blurred points would only add false maxima beside the head (see
        ``max_sideways_error_m``).
        """
        cfg = self.config
        kept = []
        for o in observations:
            limit = np.maximum(np.float32(cfg.max_sideways_error_m),
                               np.float32(cfg.sideways_error_ratio) * best[o.cells])
            keep = o.sideways_m <= limit
            self.points_blurred += int(keep.size - np.count_nonzero(keep))
            kept.append(o if keep.all() else dataclasses.replace(
                o, points=o.points[keep], pixels=o.pixels[keep], cells=o.cells[keep],
                bands_m=o.bands_m[keep], sideways_m=o.sideways_m[keep]))
        return tuple(kept)

    def _detection(self, label: int, segment: Segment,
                   observations: tuple[CameraObservation, ...],
                   point_labels: list[np.ndarray]) -> Detection:
        cfg = self.config
        hx, hy = segment.head_xy_m
        camera_ids = []
        samples = []
        for observation, owner in zip(observations, point_labels, strict=True):
            mine = owner == label
            if not np.any(mine):
                continue
            camera_ids.append(observation.camera_id)
            points = observation.points[mine]
            near = (points[:, 2] >= segment.top_m - cfg.appearance_depth_m) & (
                np.hypot(points[:, 0] - hx, points[:, 1] - hy) <= cfg.appearance_radius_m)
            color = self._color_for(observation.camera_id, observation.stamp_ns)
            if color is not None and np.any(near):
                samples.append(sample_colors(points[near], color))
        covariance = np.zeros((3, 3))
        covariance[:2, :2] = segment.head_covariance + np.eye(2) * cfg.position_sigma_m ** 2
        covariance[2, 2] = (self.grid.cell_m ** 2) / 12.0     # z: on the floor plane
        appearance = signature(np.concatenate(samples)) if samples else ()
        return Detection(x_m=hx, y_m=hy, height_m=segment.top_m, area_m2=segment.area_m2,
                         confidence=segment.confidence, covariance=covariance,
                         camera_ids=tuple(camera_ids), appearance=appearance)
