"""Check a calibrated camera pose against the floor seen in its depth image.

The depth image (uint16 millimetres, 0 = no data, z-depth along the optical axis) is
back-projected, moved into the map with the calibrated T_map_camera, and the floor plane is
fitted with RANSAC (planes must be roughly level) followed by least squares on the inliers.
With a correct pose the floor lands at ``floor_z_m`` and level; a floor found higher or lower
or tilted means the camera is not where the calibration says. The floor only constrains
height, roll and pitch: a camera slid sideways or turned about the vertical leaves the floor
unchanged and is only caught by the target (reprojection) check.
"""

from dataclasses import dataclass
import math

import cv2
import numpy as np
import numpy.typing as npt

from .estimate import CameraModel
from .targets import FloatArray, transform_points


@dataclass(frozen=True)
class DepthCheckConfig:
    """Options and pass/fail thresholds of ``check_floor``."""

    depth_scale_m: float = 0.001
    min_depth_m: float = 0.3
    max_depth_m: float = 10.0
    floor_z_m: float = 0.0
    # Points within this height of the expected floor are the first RANSAC candidates.
    search_band_m: float = 0.3
    # RANSAC: inlier distance, iterations, and how far from level a floor plane may be.
    ransac_threshold_m: float = 0.03
    ransac_iterations: int = 300
    max_plane_tilt_deg: float = 20.0
    pixel_stride: int = 2
    min_floor_points: int = 500
    # Pass/fail thresholds.
    max_height_error_m: float = 0.03
    max_tilt_deg: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        """Validate the options."""
        positive = ('depth_scale_m', 'search_band_m', 'ransac_threshold_m',
                    'max_height_error_m', 'max_tilt_deg')
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be positive, got {value}')
        if not 0.0 <= self.min_depth_m < self.max_depth_m:
            raise ValueError('need 0 <= min_depth_m < max_depth_m')
        if not math.isfinite(self.floor_z_m):
            raise ValueError('floor_z_m must be finite')
        if not 0.0 < self.max_plane_tilt_deg < 90.0:
            raise ValueError('max_plane_tilt_deg must be in (0, 90)')
        if self.ransac_iterations < 1 or self.pixel_stride < 1 or self.min_floor_points < 3:
            raise ValueError('ransac_iterations and pixel_stride must be >= 1, '
                             'min_floor_points >= 3')


@dataclass(frozen=True, eq=False)
class DepthCheckResult:
    """How the floor seen in depth agrees with a calibrated camera pose.

    ``height_error_m`` is the measured floor height in the map (below the camera) minus
    ``floor_z_m``: negative when the floor is seen lower than expected, i.e. the camera is
    really higher than its calibrated pose. ``tilt_deg`` is the angle between the measured
    floor normal and map z. Both are NaN when no floor was found.
    """

    camera: str
    passed: bool
    height_error_m: float
    tilt_deg: float
    floor_normal_map: FloatArray
    floor_points: int
    valid_points: int
    message: str


def back_project(
    depth: npt.NDArray[np.generic], camera: CameraModel, stride: int = 1,
    depth_scale_m: float = 0.001, min_depth_m: float = 0.0, max_depth_m: float = math.inf,
) -> FloatArray:
    """Back-project a depth image into (N, 3) points in the camera optical frame, metres."""
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f'{camera.name}: depth image must be HxW, got shape {d.shape}')
    if (d.shape[1], d.shape[0]) != (camera.width, camera.height):
        raise ValueError(f'{camera.name}: depth image is {d.shape[1]}x{d.shape[0]} but the '
                         f'intrinsics are for {camera.width}x{camera.height}')
    vs, us = np.mgrid[0:d.shape[0]:stride, 0:d.shape[1]:stride]
    z = d[vs, us].astype(np.float64) * depth_scale_m
    ok = (z > max(min_depth_m, 0.0)) & (z < max_depth_m) & np.isfinite(z)
    u = us[ok].astype(np.float64)
    v = vs[ok].astype(np.float64)
    z = z[ok]
    if camera.dist_coeffs.size and np.any(camera.dist_coeffs != 0.0):
        pix = np.stack([u, v], axis=1).reshape(-1, 1, 2)
        norm = cv2.undistortPoints(pix, camera.camera_matrix, camera.dist_coeffs).reshape(-1, 2)
        xn, yn = norm[:, 0], norm[:, 1]
    else:
        k = camera.camera_matrix
        yn = (v - k[1, 2]) / k[1, 1]
        xn = (u - k[0, 2] - k[0, 1] * yn) / k[0, 0]
    return np.stack([xn * z, yn * z, z], axis=1)


def _fit_plane(points: FloatArray) -> tuple[FloatArray, float]:
    """Least-squares plane through points: unit normal (z >= 0) and offset, n.p + d = 0."""
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[-1]
    if normal[2] < 0.0:
        normal = -normal
    return normal, float(-normal @ centroid)


def fit_floor_plane(
    points_map: FloatArray, config: DepthCheckConfig = DepthCheckConfig(),
) -> tuple[FloatArray, float, npt.NDArray[np.bool_]]:
    """Fit a roughly level plane with RANSAC then least squares; returns (normal, d, inliers).

    The normal points up (z >= 0) and the plane is n.p + d = 0 in the map frame. Raises
    ValueError when fewer than ``config.min_floor_points`` points fit any level plane.
    """
    pts = np.asarray(points_map, dtype=np.float64)
    if pts.shape[0] < config.min_floor_points:
        raise ValueError(f'only {pts.shape[0]} points, need {config.min_floor_points}')
    rng = np.random.default_rng(config.seed)
    idx = rng.integers(0, pts.shape[0], size=(config.ransac_iterations, 3))
    a, b, c = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
    normals = np.cross(b - a, c - a)
    lengths = np.linalg.norm(normals, axis=1)
    good = lengths > 1e-9
    normals[good] /= lengths[good, None]
    normals[normals[:, 2] < 0.0] *= -1.0
    good &= normals[:, 2] >= math.cos(math.radians(config.max_plane_tilt_deg))
    if not np.any(good):
        raise ValueError('no level plane among the RANSAC samples')
    normals, a = normals[good], a[good]
    offsets = -np.einsum('ij,ij->i', normals, a)
    best_count, best = -1, 0
    # Chunks keep the (hypotheses x points) distance matrix small.
    for start in range(0, normals.shape[0], 32):
        dist = np.abs(pts @ normals[start:start + 32].T + offsets[start:start + 32])
        counts = (dist < config.ransac_threshold_m).sum(axis=0)
        k = int(np.argmax(counts))
        if counts[k] > best_count:
            best_count, best = int(counts[k]), start + k
    normal, offset = normals[best], float(offsets[best])
    inliers = np.abs(pts @ normal + offset) < config.ransac_threshold_m
    for _ in range(5):
        if inliers.sum() < config.min_floor_points:
            break
        normal, offset = _fit_plane(pts[inliers])
        # Refit band from the measured noise: a fixed band narrower than the sensor noise
        # (D435: ~6 cm RMS at 3 m at 424 px wide) would keep the sample plane's tilt.
        residuals = pts[inliers] @ normal + offset
        scale = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
        band = max(config.ransac_threshold_m, 3.0 * scale)
        inliers = np.abs(pts @ normal + offset) < band
    if inliers.sum() < config.min_floor_points:
        raise ValueError(f'best level plane has {int(inliers.sum())} points, '
                         f'need {config.min_floor_points}')
    return normal, offset, inliers


def check_floor(
    depth: npt.NDArray[np.generic], camera: CameraModel, map_from_camera: FloatArray,
    config: DepthCheckConfig = DepthCheckConfig(),
) -> DepthCheckResult:
    """Compare the floor in ``depth`` with the calibrated pose T_map_camera of ``camera``.

    ``camera`` must be the intrinsics of the depth image (use the depth stream aligned to
    the colour camera so the colour camera's intrinsics and pose apply).
    """
    nan_normal = np.full(3, np.nan)
    pts_cam = back_project(depth, camera, config.pixel_stride, config.depth_scale_m,
                           config.min_depth_m, config.max_depth_m)
    n_valid = int(pts_cam.shape[0])
    if n_valid < config.min_floor_points:
        return DepthCheckResult(
            camera.name, False, math.nan, math.nan, nan_normal, 0, n_valid,
            f'{camera.name}: only {n_valid} depth pixels with data, need '
            f'{config.min_floor_points}: check the depth stream and that the floor is in view')
    pts = transform_points(map_from_camera, pts_cam)
    near = np.abs(pts[:, 2] - config.floor_z_m) < config.search_band_m
    candidates = pts[near] if near.sum() >= config.min_floor_points else pts
    try:
        normal, offset, inliers = fit_floor_plane(candidates, config)
    except ValueError as exc:
        return DepthCheckResult(
            camera.name, False, math.nan, math.nan, nan_normal, 0, n_valid,
            f'{camera.name}: no floor found in depth ({exc}): the camera may be far out of '
            'place or not looking at the floor; recalibrate it')
    floor = candidates[inliers]
    # Floor height under the centroid of the floor points seen.
    cx, cy = floor[:, 0].mean(), floor[:, 1].mean()
    floor_z = -(normal[0] * cx + normal[1] * cy + offset) / normal[2]
    height_error = float(floor_z - config.floor_z_m)
    tilt = math.degrees(math.acos(float(np.clip(normal[2], -1.0, 1.0))))
    passed = abs(height_error) <= config.max_height_error_m and tilt <= config.max_tilt_deg
    verdict = 'passed' if passed else 'FAILED'
    message = (f'{camera.name}: depth check {verdict}: floor seen at {height_error:+.3f} m '
               f'(limit {config.max_height_error_m:.3f}) tilted {tilt:.2f} deg (limit '
               f'{config.max_tilt_deg:.2f}) from {int(inliers.sum())} floor points')
    if not passed:
        message += ': the camera has moved or its pose is wrong, calibrate it again'
    return DepthCheckResult(camera.name, passed, height_error, tilt, normal,
                            int(inliers.sum()), n_valid, message)


def render_floor_depth(
    camera: CameraModel, map_from_camera: FloatArray, floor_z_m: float = 0.0,
    noise_fraction: float = 0.0, seed: int = 0, max_depth_m: float = 10.0,
) -> npt.NDArray[np.uint16]:
    """Render the uint16 mm depth image of a flat floor seen by a camera (for tests, sims).

    ``noise_fraction`` adds Gaussian noise with sigma = fraction x depth. Pixels whose ray
    misses the floor (or beyond ``max_depth_m``) are 0. Lens distortion is ignored.
    """
    k = camera.camera_matrix
    vs, us = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    yn = (vs - k[1, 2]) / k[1, 1]
    xn = (us - k[0, 2] - k[0, 1] * yn) / k[0, 0]
    rays = np.stack([xn, yn, np.ones_like(xn)], axis=-1)
    r = map_from_camera[:3, :3]
    origin_z = map_from_camera[2, 3]
    ray_z = rays @ r[2]
    with np.errstate(divide='ignore', invalid='ignore'):
        z = (floor_z_m - origin_z) / ray_z
    z[~np.isfinite(z) | (z <= 0.0) | (z > max_depth_m)] = 0.0
    if noise_fraction > 0.0:
        rng = np.random.default_rng(seed)
        z = np.where(z > 0.0, z * (1.0 + noise_fraction * rng.standard_normal(z.shape)), 0.0)
    return np.asarray(np.clip(np.round(z * 1000.0), 0, 65535), dtype=np.uint16)
