"""A calibration session on disk, run against the store description, and its result file.

A session folder holds the captured images and ``session.yaml``::

    target: {type: chessboard, cols: 9, rows: 6, square_m: 0.2}
    placements:            # where the board lay: origin corner and yaw in map
      - {id: P01, x_m: 1.10, y_m: 0.80, yaw_deg: 0.0}
      - {id: P02, x_m: 2.40, y_m: 1.30, yaw_deg: 90.0, fixed: false}   # not surveyed
    images:                # colour image (board) and optional depth image per capture
      - {camera: cam_01, placement: P01, color: cam_01_P01.png, depth: cam_01_P01_depth.png}

Colour images give each camera's colour optical frame in map; the depth optical frame
follows through the camera model's depth-to-colour extrinsic. The result is written as
an extrinsics file that the store description names (``extrinsics_file``).
"""

from __future__ import annotations

from dataclasses import dataclass
import datetime
import math
import os
import pathlib
import tempfile
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import yaml

from ..store import StoreDescription
from ..transforms import Transform
from .depth_check import check_floor, DepthCheckConfig, DepthCheckResult
from .estimate import CameraModel, Observation, observe
from .refine import calibrate, CalibrationConfig, CalibrationResult
from .targets import BoardPlacement, ChessboardTarget, Target


class SessionError(ValueError):
    """The session file is missing something or names what does not exist."""


@dataclass(frozen=True)
class SessionImage:
    """One capture: a camera's colour (and depth) image with the board at a placement."""

    camera_id: str
    placement: str
    color_path: pathlib.Path | None
    depth_path: pathlib.Path | None


@dataclass(frozen=True)
class CalibrationSession:
    """What was captured: the target, where it lay, and the images."""

    path: pathlib.Path
    target: Target
    placements: tuple[BoardPlacement, ...]
    images: tuple[SessionImage, ...]

    def camera_ids(self) -> list[str]:
        """Cameras with at least one image, sorted."""
        return sorted({image.camera_id for image in self.images})


def _need(mapping: Any, key: str, where: str, path: pathlib.Path) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise SessionError(f'{path}: {where}: missing {key!r}')
    return mapping[key]


def load_session(path: str | pathlib.Path, store: StoreDescription) -> CalibrationSession:
    """Read ``session.yaml`` (or the folder holding it) and check it against the store."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / 'session.yaml'
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SessionError(f'{path}: calibration session not found') from None
    except yaml.YAMLError as error:
        raise SessionError(f'{path}: not valid YAML: {error}') from None
    target_data = _need(data, 'target', 'session', path)
    if target_data.get('type', 'chessboard') != 'chessboard':
        raise SessionError(f'{path}: target.type must be chessboard')
    try:
        target = ChessboardTarget(int(_need(target_data, 'cols', 'target', path)),
                                  int(_need(target_data, 'rows', 'target', path)),
                                  float(_need(target_data, 'square_m', 'target', path)))
        placements = tuple(
            BoardPlacement.on_floor(str(_need(p, 'id', f'placements[{i}]', path)),
                                    float(_need(p, 'x_m', f'placements[{i}]', path)),
                                    float(_need(p, 'y_m', f'placements[{i}]', path)),
                                    float(p.get('yaw_deg', 0.0)), float(p.get('z_m', 0.0)),
                                    bool(p.get('fixed', True)))
            for i, p in enumerate(_need(data, 'placements', 'session', path)))
    except (TypeError, ValueError) as error:
        if isinstance(error, SessionError):
            raise
        raise SessionError(f'{path}: {error}') from None
    known_cameras = {c.camera_id for c in store.cameras}
    placement_ids = {p.name for p in placements}
    images = []
    for index, item in enumerate(_need(data, 'images', 'session', path)):
        where = f'images[{index}]'
        camera_id = str(_need(item, 'camera', where, path))
        if camera_id not in known_cameras:
            raise SessionError(f'{path}: {where}: camera {camera_id!r} is not in the store '
                               f'description ({", ".join(sorted(known_cameras))})')
        placement = str(_need(item, 'placement', where, path))
        if placement not in placement_ids:
            raise SessionError(f'{path}: {where}: placement {placement!r} is not defined '
                               'under placements')
        color = path.parent / item['color'] if item.get('color') else None
        depth = path.parent / item['depth'] if item.get('depth') else None
        if color is None and depth is None:
            raise SessionError(f'{path}: {where}: give a color and/or a depth image')
        for image_path in (color, depth):
            if image_path is not None and not image_path.is_file():
                raise SessionError(f'{path}: {where}: image {image_path} not found')
        images.append(SessionImage(camera_id, placement, color, depth))
    if not images:
        raise SessionError(f'{path}: no images')
    return CalibrationSession(path, target, placements, tuple(images))


def color_camera_model(store: StoreDescription, camera_id: str,
                       image_size: tuple[int, int] | None = None) -> CameraModel:
    """Intrinsics of a camera's colour stream, as its camera_info gives them.

    ``image_size`` (width, height) of a capture at another resolution of the same sensor
    (e.g. 848x480 for a store streaming 424x240) scales them; the aspect ratio must match.
    """
    intrinsics = store.camera(camera_id).model.color
    if image_size is not None and image_size != (intrinsics.width, intrinsics.height):
        scale = image_size[0] / intrinsics.width
        if abs(image_size[1] - intrinsics.height * scale) > 0.5:
            raise SessionError(
                f'{camera_id}: colour images of {image_size[0]}x{image_size[1]} do not have '
                f'the aspect ratio of the stream in the store description '
                f'({intrinsics.width}x{intrinsics.height}); give its camera_info instead')
        intrinsics = intrinsics.scaled(scale)
    return CameraModel(camera_id, intrinsics.k(), np.asarray(intrinsics.d or (0.0,) * 5),
                       intrinsics.width, intrinsics.height)


def depth_camera_model(store: StoreDescription, camera_id: str) -> CameraModel:
    """Intrinsics of a camera's depth stream."""
    intrinsics = store.camera(camera_id).model.depth
    return CameraModel(camera_id, intrinsics.k(), np.asarray(intrinsics.d or (0.0,) * 5),
                       intrinsics.width, intrinsics.height)


def run_calibration(session: CalibrationSession, store: StoreDescription,
                    config: CalibrationConfig | None = None) -> CalibrationResult:
    """Detect the board in every colour image and estimate the session's cameras' poses."""
    observations: list[Observation] = []
    sizes: dict[str, set[tuple[int, int]]] = {}
    for image in session.images:
        if image.color_path is None:
            continue
        pixels = cv2.imread(str(image.color_path), cv2.IMREAD_COLOR)
        if pixels is None:
            raise SessionError(f'{image.color_path}: not an image OpenCV can read')
        sizes.setdefault(image.camera_id, set()).add((pixels.shape[1], pixels.shape[0]))
        observations.append(observe(pixels, image.camera_id, image.color_path.name,
                                    image.placement, session.target))
    cameras = {}
    for camera_id in session.camera_ids():
        camera_sizes = sizes.get(camera_id, set())
        if len(camera_sizes) > 1:
            raise SessionError(f'{camera_id}: colour images of different sizes '
                               f'{sorted(camera_sizes)}: capture every image at one resolution')
        cameras[camera_id] = color_camera_model(
            store, camera_id, next(iter(camera_sizes)) if camera_sizes else None)
    return calibrate(cameras, observations, session.placements, session.target,
                     config or CalibrationConfig())


def depth_poses(store: StoreDescription, result: CalibrationResult) -> dict[str, Transform]:
    """T_map_depth of each calibrated camera, from its colour pose and the model extrinsic."""
    poses = {}
    for camera_id, calibration in result.cameras.items():
        t_map_color = Transform.from_matrix(calibration.map_from_camera)
        t_depth_color = store.camera(camera_id).model.t_depth_color
        poses[camera_id] = t_map_color @ t_depth_color.inverse()
    return poses


def run_depth_check(session: CalibrationSession, store: StoreDescription,
                    poses: Mapping[str, Transform],
                    config: DepthCheckConfig | None = None) -> list[DepthCheckResult]:
    """Compare the floor in each camera's depth images with its pose T_map_depth."""
    results = []
    for image in session.images:
        if image.depth_path is None or image.camera_id not in poses:
            continue
        depth = cv2.imread(str(image.depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
            raise SessionError(f'{image.depth_path}: not a 16-bit single-channel depth image '
                               '(millimetres, 0 = no data)')
        results.append(check_floor(depth, depth_camera_model(store, image.camera_id),
                                   poses[image.camera_id].matrix(),
                                   config or DepthCheckConfig()))
    return results


def _pose_document(transform: Transform) -> dict[str, Any]:
    return {'translation_m': [round(float(v), 6) for v in transform.translation],
            'rotation': {'quaternion_xyzw': [round(float(v), 9)
                                             for v in transform.quaternion_xyzw()]}}


def extrinsics_document(existing: Mapping[str, Any] | None, store: StoreDescription,
                        result: CalibrationResult, depth_results: Sequence[DepthCheckResult],
                        source: str) -> dict[str, Any]:
    """Merge this session's cameras into an extrinsics document; others stay as they were."""
    cameras = dict((existing or {}).get('cameras', {}))
    poses = depth_poses(store, result)
    worst_depth: dict[str, DepthCheckResult] = {}
    for check in depth_results:
        kept = worst_depth.get(check.camera)
        if kept is None or not (abs(kept.height_error_m) >= abs(check.height_error_m)):
            worst_depth[check.camera] = check
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    for camera_id, calibration in sorted(result.cameras.items()):
        entry: dict[str, Any] = {
            'pose': _pose_document(poses[camera_id]),
            'reprojection_rms_px': round(float(calibration.rms_px), 4),
            'views_used': int(calibration.views_used),
            'calibrated_at': stamp,
            'session': source,
        }
        worst = worst_depth.get(camera_id)
        if worst is not None and math.isfinite(worst.height_error_m):
            entry['floor_height_error_m'] = round(float(worst.height_error_m), 4)
            entry['floor_tilt_error_deg'] = round(float(worst.tilt_deg), 3)
        cameras[camera_id] = entry
    return {'cameras': cameras}


def write_extrinsics(path: str | pathlib.Path, document: Mapping[str, Any]) -> None:
    """Write the extrinsics file atomically: a reader sees the old file or the new one."""
    path = pathlib.Path(path)
    header = ('# Camera poses (depth optical frame in map) written by `go-store calibrate`.\n'
              '# The store description names this file as extrinsics_file.\n')
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    try:
        with os.fdopen(descriptor, 'w') as stream:
            stream.write(header + yaml.safe_dump(dict(document), sort_keys=True))
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
