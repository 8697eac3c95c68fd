"""Camera models, target detection, per-view board poses and intrinsics from images.

A camera frame is the optical frame: z forward, x right, y down (as in a ROS
CameraInfo). ``camera_from_board`` is T_camera_board and ``map_from_camera`` is T_map_camera.
"""

from dataclasses import dataclass, field
import math
from typing import Optional, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from .targets import (
    BoardPlacement,
    CharucoTarget,
    ChessboardTarget,
    FloatArray,
    invert_transform,
    Target,
    transform_from_rvec_tvec,
)

IntArray = npt.NDArray[np.int64]

_DIST_LENGTHS = (0, 4, 5, 8, 12, 14)

ISSUE_KINDS = (
    'no_images',
    'never_saw_target',
    'too_few_views',
    'not_anchored',
    'unknown_camera',
    'unknown_placement',
    'pose_failed',
    'view_outlier',
    'high_reprojection_error',
    'intrinsics_failed',
)


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Pinhole camera with OpenCV distortion, as given by a ROS CameraInfo message."""

    name: str
    camera_matrix: FloatArray
    dist_coeffs: FloatArray
    width: int
    height: int

    def __post_init__(self) -> None:
        """Validate and freeze the intrinsics."""
        if not self.name:
            raise ValueError('camera name must not be empty')
        k = np.array(self.camera_matrix, dtype=np.float64)
        if k.shape != (3, 3) or not np.all(np.isfinite(k)):
            raise ValueError(f'{self.name}: camera_matrix must be a finite 3x3 matrix')
        if k[0, 0] <= 0.0 or k[1, 1] <= 0.0 or not np.allclose(k[2], [0.0, 0.0, 1.0]):
            raise ValueError(
                f'{self.name}: camera_matrix must have fx, fy > 0 and last row [0, 0, 1]')
        d = np.ravel(np.array(self.dist_coeffs, dtype=np.float64))
        if d.size not in _DIST_LENGTHS or not np.all(np.isfinite(d)):
            raise ValueError(
                f'{self.name}: dist_coeffs must be finite with length in {_DIST_LENGTHS}, '
                f'got {d.size}')
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'{self.name}: width and height must be positive')
        k.setflags(write=False)
        d.setflags(write=False)
        object.__setattr__(self, 'camera_matrix', k)
        object.__setattr__(self, 'dist_coeffs', d)

    @classmethod
    def from_camera_info(
        cls, name: str, k: Sequence[float], d: Sequence[float], width: int, height: int,
    ) -> 'CameraModel':
        """Build from CameraInfo fields: ``k`` row-major 9 values, ``d`` the distortion."""
        if len(k) != 9:
            raise ValueError(f'{name}: CameraInfo k must have 9 values, got {len(k)}')
        return cls(name, np.asarray(k, dtype=np.float64).reshape(3, 3), np.asarray(d),
                   int(width), int(height))

    @classmethod
    def from_fov(cls, name: str, width: int, height: int, hfov_deg: float) -> 'CameraModel':
        """Build an ideal pinhole camera (square pixels, centred, no distortion) from its HFOV."""
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(f'{name}: hfov_deg must be in (0, 180), got {hfov_deg}')
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        k = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0, 0, 1.0]])
        return cls(name, k, np.zeros(5), int(width), int(height))

    def with_intrinsics(self, camera_matrix: FloatArray, dist_coeffs: FloatArray) -> 'CameraModel':
        """Return a copy with other intrinsics."""
        return CameraModel(self.name, camera_matrix, dist_coeffs, self.width, self.height)

    def project(self, camera_from_points: FloatArray, points: FloatArray) -> FloatArray:
        """Project (N, 3) points through the pose T_camera_points; returns (N, 2) pixels."""
        rvec, _ = cv2.Rodrigues(np.ascontiguousarray(camera_from_points[:3, :3]))
        tvec = np.ascontiguousarray(camera_from_points[:3, 3])
        pixels, _ = cv2.projectPoints(
            np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 1, 3), rvec, tvec,
            self.camera_matrix, self.dist_coeffs)
        return np.asarray(pixels, dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True, eq=False)
class Detection:
    """The target corners found in one image, or why none were found.

    ``image_points`` is (N, 2) pixels and ``point_ids`` (N,) indexes the rows of
    ``target.object_points()``; both are empty when ``found`` is False.
    """

    found: bool
    image_points: FloatArray = field(default_factory=lambda: np.zeros((0, 2)))
    point_ids: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    reason: str = ''

    def __post_init__(self) -> None:
        """Validate shapes."""
        pts = np.asarray(self.image_points, dtype=np.float64).reshape(-1, 2)
        ids = np.ravel(np.asarray(self.point_ids, dtype=np.int64))
        if pts.shape[0] != ids.shape[0]:
            raise ValueError(f'{pts.shape[0]} image points but {ids.shape[0]} point ids')
        if self.found and pts.shape[0] < 4:
            raise ValueError('a found detection needs at least 4 points')
        if not self.found and not self.reason:
            raise ValueError('a detection that found nothing must say why (reason)')
        pts.setflags(write=False)
        ids.setflags(write=False)
        object.__setattr__(self, 'image_points', pts)
        object.__setattr__(self, 'point_ids', ids)

    @classmethod
    def from_corners(
        cls, image_points: npt.ArrayLike, point_ids: Optional[npt.ArrayLike] = None,
    ) -> 'Detection':
        """Build a found detection from corners (e.g. from a simulator); ids default to 0..N-1."""
        pts = np.asarray(image_points, dtype=np.float64).reshape(-1, 2)
        ids = np.arange(pts.shape[0]) if point_ids is None else np.asarray(point_ids)
        return cls(True, pts, ids)

    @classmethod
    def not_found(cls, reason: str) -> 'Detection':
        """Build the result for an image in which the target was not found."""
        return cls(False, reason=reason)


@dataclass(frozen=True)
class Observation:
    """One image of one camera, taken while the target lay at ``placement``."""

    camera: str
    image_id: str
    placement: str
    detection: Detection

    def __post_init__(self) -> None:
        """Validate names."""
        if not self.camera or not self.image_id or not self.placement:
            raise ValueError('observation camera, image_id and placement must not be empty')


@dataclass(frozen=True)
class DetectionConfig:
    """Options of the chessboard / ChArUco detector."""

    adaptive_threshold: bool = True
    normalize_image: bool = True
    try_sector_based: bool = True
    max_subpix_half_window_px: int = 11
    fix_orientation: bool = True

    def __post_init__(self) -> None:
        """Validate options."""
        if not 2 <= self.max_subpix_half_window_px <= 31:
            raise ValueError('max_subpix_half_window_px must be in [2, 31]')


@dataclass(frozen=True, eq=False)
class BoardPose:
    """Pose of the target in one camera from one view (PnP)."""

    camera_from_board: FloatArray
    rms_px: float
    point_count: int


@dataclass(frozen=True)
class IntrinsicsResult:
    """Intrinsics estimated by cv2.calibrateCamera from a camera's views."""

    camera: CameraModel
    rms_px: float
    views_used: int


@dataclass(frozen=True)
class CalibrationIssue:
    """A problem found while calibrating, naming the camera and what to do about it."""

    camera: str
    kind: str
    message: str
    severity: str = 'error'
    image_id: str = ''

    def __post_init__(self) -> None:
        """Validate kind and severity."""
        if self.kind not in ISSUE_KINDS:
            raise ValueError(f'unknown issue kind {self.kind!r}, expected one of {ISSUE_KINDS}')
        if self.severity not in ('error', 'warning'):
            raise ValueError(f"severity must be 'error' or 'warning', got {self.severity!r}")


class CalibrationError(RuntimeError):
    """Raised by ``CalibrationResult.raise_for_errors`` when a camera could not be calibrated."""

    def __init__(self, issues: Sequence[CalibrationIssue]) -> None:
        """Keep the issues and use their messages as the exception text."""
        self.issues = list(issues)
        super().__init__('; '.join(i.message for i in self.issues) or 'calibration failed')


def to_gray(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Convert a gray, BGR or BGRA image (uint8 or uint16) into 8-bit gray."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f'image dtype must be uint8 or uint16, got {img.dtype}')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 3:
        return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY), dtype=np.uint8)
    if img.ndim != 2:
        raise ValueError(f'image must be HxW, HxWx3 or HxWx4, got shape {img.shape}')
    return np.ascontiguousarray(img)


def _check_image(image: Optional[npt.NDArray[np.generic]]) -> tuple[
        Optional[npt.NDArray[np.uint8]], str]:
    """Return the gray image, or None and the reason it cannot be used."""
    if image is None:
        return None, 'no image (file missing or unreadable?)'
    if np.asarray(image).size == 0:
        return None, 'image is empty'
    try:
        gray = to_gray(image)
    except ValueError as exc:
        return None, str(exc)
    if min(gray.shape) < 16:
        return None, f'image is too small ({gray.shape[1]}x{gray.shape[0]})'
    return gray, ''


def _patch_mean(gray: npt.NDArray[np.uint8], point: FloatArray) -> float:
    """Return the mean intensity of a 3x3 patch around ``point`` (x, y), clipped to the image."""
    x = int(round(float(point[0])))
    y = int(round(float(point[1])))
    h, w = gray.shape
    x0, x1 = max(0, x - 1), min(w, x + 2)
    y0, y1 = max(0, y - 1), min(h, y + 2)
    if x0 >= x1 or y0 >= y1:
        return float('nan')
    return float(gray[y0:y1, x0:x1].mean())


def chessboard_origin_is_black(
    gray: npt.NDArray[np.uint8], corners: FloatArray, target: ChessboardTarget,
) -> Optional[bool]:
    """Tell whether the squares of the origin's colour are dark, from interior square centres.

    Returns None when the image gives no clear answer. The corners are (cols * rows, 2).
    """
    grid = corners.reshape(target.rows, target.cols, 2)
    even: list[float] = []
    odd: list[float] = []
    for r in range(target.rows - 1):
        for c in range(target.cols - 1):
            centre = grid[r:r + 2, c:c + 2].reshape(-1, 2).mean(axis=0)
            (even if (r + c) % 2 == 0 else odd).append(_patch_mean(gray, centre))
    even_mean = float(np.nanmean(even))
    odd_mean = float(np.nanmean(odd))
    if not (math.isfinite(even_mean) and math.isfinite(odd_mean)):
        return None
    if abs(even_mean - odd_mean) < 10.0:
        return None
    return even_mean < odd_mean


def detect_chessboard(
    image: Optional[npt.NDArray[np.generic]], target: ChessboardTarget,
    config: DetectionConfig = DetectionConfig(),
) -> Detection:
    """Find the chessboard's inner corners (findChessboardCorners + cornerSubPix).

    Never raises for a bad or empty image: the Detection then says why nothing was found.
    With ``config.fix_orientation`` the corner order is reversed when needed so that corner 0
    is the one whose diagonal outer square is black (a board turned by 180 degrees).
    """
    gray, why = _check_image(image)
    if gray is None:
        return Detection.not_found(why)
    flags = 0
    if config.adaptive_threshold:
        flags |= cv2.CALIB_CB_ADAPTIVE_THRESH
    if config.normalize_image:
        flags |= cv2.CALIB_CB_NORMALIZE_IMAGE
    try:
        found, corners = cv2.findChessboardCorners(gray, target.pattern_size, flags=flags)
        refined = bool(found)
        if not found and config.try_sector_based and hasattr(cv2, 'findChessboardCornersSB'):
            found, corners = cv2.findChessboardCornersSB(gray, target.pattern_size)
        if not found or corners is None:
            return Detection.not_found(
                f'no {target.cols}x{target.rows} chessboard found '
                f'in the {gray.shape[1]}x{gray.shape[0]} image')
        pts = np.asarray(corners, dtype=np.float32).reshape(-1, 1, 2)
        if refined:
            d = np.linalg.norm(np.diff(pts.reshape(target.rows, target.cols, 2), axis=1), axis=2)
            half = int(np.clip(0.4 * float(d.min()), 2, config.max_subpix_half_window_px))
            criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
            pts = np.asarray(
                cv2.cornerSubPix(gray, pts, (half, half), (-1, -1), criteria), dtype=np.float32)
    except cv2.error as exc:
        return Detection.not_found(f'OpenCV failed while looking for the chessboard: {exc}')
    xy = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    if xy.shape[0] != target.point_count:
        return Detection.not_found(f'found {xy.shape[0]} corners, expected {target.point_count}')
    if config.fix_orientation and chessboard_origin_is_black(gray, xy, target) is False:
        xy = xy[::-1].copy()
    return Detection.from_corners(xy)


def aruco_available() -> bool:
    """Tell whether this OpenCV has the ChArUco detector API (OpenCV >= 4.7 aruco)."""
    aruco = getattr(cv2, 'aruco', None)
    return aruco is not None and hasattr(aruco, 'CharucoDetector')


def charuco_board(target: CharucoTarget) -> 'cv2.aruco.CharucoBoard':
    """Build the OpenCV CharucoBoard of a target (needs ``aruco_available()``)."""
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, target.dictionary))
    return cv2.aruco.CharucoBoard(
        (target.squares_x, target.squares_y), target.square_m, target.marker_m, dictionary)


def detect_charuco(
    image: Optional[npt.NDArray[np.generic]], target: CharucoTarget,
) -> Detection:
    """Find the ChArUco chessboard corners; partial boards give their visible corners."""
    if not aruco_available():
        return Detection.not_found('cv2.aruco with CharucoDetector (OpenCV >= 4.7) is missing')
    gray, why = _check_image(image)
    if gray is None:
        return Detection.not_found(why)
    try:
        detector = cv2.aruco.CharucoDetector(charuco_board(target))
        corners, ids, _, _ = detector.detectBoard(gray)
    except (cv2.error, AttributeError) as exc:
        return Detection.not_found(f'OpenCV failed while looking for the ChArUco board: {exc}')
    if ids is None or len(ids) < 4:
        n = 0 if ids is None else len(ids)
        return Detection.not_found(f'ChArUco board not found ({n} corners, need at least 4)')
    return Detection.from_corners(np.asarray(corners).reshape(-1, 2), np.ravel(ids))


def detect_target(
    image: Optional[npt.NDArray[np.generic]], target: Target,
    config: DetectionConfig = DetectionConfig(),
) -> Detection:
    """Find ``target`` in ``image`` (dispatches on the target type)."""
    if isinstance(target, ChessboardTarget):
        return detect_chessboard(image, target, config)
    return detect_charuco(image, target)


def observe(
    image: Optional[npt.NDArray[np.generic]], camera: str, image_id: str, placement: str,
    target: Target, config: DetectionConfig = DetectionConfig(),
) -> Observation:
    """Detect the target in one image and wrap the result as an Observation."""
    return Observation(camera, image_id, placement, detect_target(image, target, config))


def reprojection_errors_px(
    camera: CameraModel, camera_from_board: FloatArray, target: Target, detection: Detection,
) -> FloatArray:
    """Return the per-corner reprojection error (pixels) of a detection under a board pose."""
    obj = target.object_points()[detection.point_ids]
    proj = camera.project(camera_from_board, obj)
    return np.asarray(np.linalg.norm(proj - detection.image_points, axis=1), dtype=np.float64)


def estimate_board_pose(camera: CameraModel, detection: Detection, target: Target) -> BoardPose:
    """Estimate T_camera_board from one detection with solvePnP (IPPE, then LM refinement)."""
    if not detection.found:
        raise ValueError(f'{camera.name}: cannot estimate a pose, target not found '
                         f'({detection.reason})')
    obj = np.ascontiguousarray(target.object_points()[detection.point_ids])
    img = np.ascontiguousarray(detection.image_points)
    k, d = camera.camera_matrix, camera.dist_coeffs
    try:
        ok, rvec, tvec = cv2.solvePnP(obj, img, k, d, flags=cv2.SOLVEPNP_IPPE)
        if not ok:
            ok, rvec, tvec = cv2.solvePnP(obj, img, k, d, flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok:
            raise ValueError(f'{camera.name}: solvePnP found no pose')
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, d, rvec, tvec)
    except cv2.error as exc:
        raise ValueError(f'{camera.name}: solvePnP failed: {exc}') from exc
    pose = transform_from_rvec_tvec(rvec, tvec)
    errors = reprojection_errors_px(camera, pose, target, detection)
    return BoardPose(pose, float(np.sqrt(np.mean(errors ** 2))), int(obj.shape[0]))


def map_from_camera_from_view(
    camera_from_board: FloatArray, placement: BoardPlacement,
) -> FloatArray:
    """Compose a placement with a per-view board pose: T_map_camera = T_map_board T_board_cam."""
    return np.asarray(placement.map_from_board @ invert_transform(camera_from_board))


def calibrate_intrinsics(
    camera: CameraModel, detections: Sequence[Detection], target: Target,
    use_guess: bool = True, flags: int = 0,
) -> IntrinsicsResult:
    """Estimate K and distortion with cv2.calibrateCamera from a camera's found detections.

    ``camera`` gives the name, image size and (with ``use_guess``) the starting intrinsics.
    Needs at least 3 views; views of a board always seen square-on (a fixed ceiling camera
    looking at a board on the floor) barely constrain the focal length, so prefer views with
    the board tilted in different directions.
    """
    found = [d for d in detections if d.found]
    if len(found) < 3:
        raise ValueError(f'{camera.name}: intrinsics need at least 3 views with the target, '
                         f'got {len(found)}')
    obj_all = target.object_points()
    obj = [np.ascontiguousarray(obj_all[d.point_ids], dtype=np.float32) for d in found]
    img = [np.ascontiguousarray(d.image_points, dtype=np.float32).reshape(-1, 1, 2)
           for d in found]
    k0 = np.array(camera.camera_matrix)
    d0 = np.zeros(5) if camera.dist_coeffs.size == 0 else np.array(camera.dist_coeffs)
    if use_guess:
        flags |= cv2.CALIB_USE_INTRINSIC_GUESS
    try:
        rms, k, d, _, _ = cv2.calibrateCamera(
            obj, img, (camera.width, camera.height), k0, d0, flags=flags)
    except cv2.error as exc:
        raise ValueError(f'{camera.name}: calibrateCamera failed: {exc}') from exc
    return IntrinsicsResult(
        camera.with_intrinsics(np.asarray(k), np.ravel(d)), float(rms), len(found))
