"""Calibration targets, board placements on the floor and rigid-transform helpers.

Frames: ``map`` has x, y on the floor and z up, in metres. A board frame has its origin at
the board's first inner corner, x along the columns, y along the rows and z = x cross y;
for a board lying face-up on the floor its z axis therefore points down into the floor.
A 4x4 matrix named ``a_from_b`` maps points given in frame b into frame a (T_a_b).
"""

from dataclasses import dataclass
import math
from typing import Sequence, Union

import numpy as np
import numpy.typing as npt

from ..transforms import (
    quaternion_xyzw_from_rotation,
    rotation_angle_rad,
    rotation_from_quaternion_xyzw,
)

FloatArray = npt.NDArray[np.float64]

# Chessboard targets: the square diagonally outside inner corner 0 is black.
ORIGIN_SQUARE_COLOUR = 'black'


def _frozen(array: npt.ArrayLike, shape: tuple[int, ...], name: str) -> FloatArray:
    """Return a read-only float64 copy of ``array``, checking its shape and finiteness."""
    out = np.array(array, dtype=np.float64)
    if out.shape != shape:
        raise ValueError(f'{name} must have shape {shape}, got {out.shape}')
    if not np.all(np.isfinite(out)):
        raise ValueError(f'{name} must be finite')
    out.setflags(write=False)
    return out


def check_rotation(rotation: npt.ArrayLike, name: str = 'rotation') -> FloatArray:
    """Return ``rotation`` as a 3x3 array, raising ValueError unless it is a proper rotation."""
    r = _frozen(rotation, (3, 3), name)
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0.0:
        raise ValueError(f'{name} must be a proper rotation matrix (orthonormal, det +1)')
    return r


def make_transform(rotation: npt.ArrayLike, translation: npt.ArrayLike) -> FloatArray:
    """Build a 4x4 rigid transform from a 3x3 rotation and a 3-vector translation."""
    t = np.eye(4)
    t[:3, :3] = check_rotation(rotation)
    t[:3, 3] = _frozen(np.ravel(np.asarray(translation, dtype=np.float64)), (3,), 'translation')
    return t


def check_transform(transform: npt.ArrayLike, name: str = 'transform') -> FloatArray:
    """Return ``transform`` as a read-only 4x4 array, raising ValueError unless it is rigid."""
    t = _frozen(transform, (4, 4), name)
    if not np.allclose(t[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f'{name} last row must be [0, 0, 0, 1]')
    check_rotation(t[:3, :3], f'{name} rotation part')
    return t


def invert_transform(transform: npt.ArrayLike) -> FloatArray:
    """Invert a 4x4 rigid transform."""
    t = np.asarray(transform, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = t[:3, :3].T
    out[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return out


def rotation_from_rvec(rvec: npt.ArrayLike) -> FloatArray:
    """Convert a rotation vector (axis times angle, rad) into a 3x3 rotation matrix."""
    w = np.ravel(np.asarray(rvec, dtype=np.float64))
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        k = np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])
        return np.eye(3) + k
    k = np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]]) / theta
    return np.eye(3) + math.sin(theta) * k + (1.0 - math.cos(theta)) * (k @ k)


def rvec_from_rotation(rotation: npt.ArrayLike) -> FloatArray:
    """Convert a 3x3 rotation matrix into a rotation vector (axis times angle, rad)."""
    r = np.asarray(rotation, dtype=np.float64)
    q = quaternion_from_rotation(r)
    sin_half = float(np.linalg.norm(q[:3]))
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * math.atan2(sin_half, q[3])
    return np.asarray(q[:3] / sin_half * angle, dtype=np.float64)


def quaternion_from_rotation(rotation: npt.ArrayLike) -> FloatArray:
    """Convert a 3x3 rotation matrix into a unit quaternion (x, y, z, w) with w >= 0."""
    return np.asarray(quaternion_xyzw_from_rotation(rotation), dtype=np.float64)


def rotation_from_quaternion(quaternion: npt.ArrayLike) -> FloatArray:
    """Convert a quaternion (x, y, z, w) of any non-zero length into a 3x3 rotation matrix."""
    q = np.ravel(np.asarray(quaternion, dtype=np.float64))
    return np.asarray(rotation_from_quaternion_xyzw(q / np.linalg.norm(q)), dtype=np.float64)


def transform_from_rvec_tvec(rvec: npt.ArrayLike, tvec: npt.ArrayLike) -> FloatArray:
    """Build a 4x4 transform from an OpenCV-style rotation vector and translation."""
    t = np.eye(4)
    t[:3, :3] = rotation_from_rvec(rvec)
    t[:3, 3] = np.ravel(np.asarray(tvec, dtype=np.float64))
    return t


def rvec_tvec_from_transform(transform: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Split a 4x4 transform into an OpenCV-style rotation vector and translation."""
    t = np.asarray(transform, dtype=np.float64)
    return rvec_from_rotation(t[:3, :3]), t[:3, 3].copy()


def rotation_angle_deg(rotation: npt.ArrayLike) -> float:
    """Return the angle of a 3x3 rotation (or of the rotation part of a 4x4) in degrees."""
    return math.degrees(rotation_angle_rad(np.asarray(rotation, dtype=np.float64)[:3, :3]))


def transform_points(transform: npt.ArrayLike, points: npt.ArrayLike) -> FloatArray:
    """Apply a 4x4 transform to an (N, 3) array of points."""
    t = np.asarray(transform, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return np.asarray(p @ t[:3, :3].T + t[:3, 3], dtype=np.float64)


def xyz_quaternion_from_transform(
    transform: npt.ArrayLike,
) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """Return ((x, y, z), (qx, qy, qz, qw)) of a 4x4 transform, as a TF message wants them."""
    t = np.asarray(transform, dtype=np.float64)
    q = quaternion_from_rotation(t[:3, :3])
    return (
        (float(t[0, 3]), float(t[1, 3]), float(t[2, 3])),
        (float(q[0]), float(q[1]), float(q[2]), float(q[3])),
    )


@dataclass(frozen=True)
class ChessboardTarget:
    """A chessboard with ``cols`` x ``rows`` inner corners and square side ``square_m``.

    Corners are numbered row by row as OpenCV returns them: corner ``i`` sits at
    ``((i % cols) * square_m, (i // cols) * square_m, 0)`` in the board frame. ``cols + rows``
    must be odd so that a board turned by 180 degrees can be told apart (the square at the
    origin corner is black, the one at the opposite corner is white).
    """

    cols: int
    rows: int
    square_m: float

    def __post_init__(self) -> None:
        """Validate the board geometry."""
        if self.cols < 3 or self.rows < 3:
            raise ValueError(
                f'chessboard needs at least 3x3 inner corners, got {self.cols}x{self.rows}')
        if (self.cols + self.rows) % 2 == 0:
            raise ValueError(
                f'chessboard {self.cols}x{self.rows} inner corners is symmetric under a 180 deg '
                'turn: use one even and one odd count (e.g. 9x6) so the origin is unambiguous')
        if not (math.isfinite(self.square_m) and 0.0 < self.square_m <= 1.0):
            raise ValueError(f'square_m must be in (0, 1] metres, got {self.square_m}')

    @property
    def pattern_size(self) -> tuple[int, int]:
        """Return (cols, rows), the pattern size OpenCV's chessboard functions expect."""
        return (self.cols, self.rows)

    @property
    def point_count(self) -> int:
        """Return the number of inner corners."""
        return self.cols * self.rows

    def object_points(self) -> FloatArray:
        """Return the (cols * rows, 3) inner-corner coordinates in the board frame, metres."""
        idx = np.arange(self.point_count)
        pts = np.zeros((self.point_count, 3))
        pts[:, 0] = (idx % self.cols) * self.square_m
        pts[:, 1] = (idx // self.cols) * self.square_m
        return pts


@dataclass(frozen=True)
class CharucoTarget:
    """A ChArUco board (needs ``cv2.aruco``, OpenCV >= 4.7) of ``squares_x`` x ``squares_y``.

    Its chessboard corner ``i`` sits at ``((i % (squares_x - 1) + 1) * square_m,
    (i // (squares_x - 1) + 1) * square_m, 0)``, i.e. the board frame of a ChArUco board has
    its origin at the outer corner of the board, as OpenCV defines it.
    """

    squares_x: int
    squares_y: int
    square_m: float
    marker_m: float
    dictionary: str = 'DICT_5X5_100'

    def __post_init__(self) -> None:
        """Validate the board geometry."""
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError('ChArUco board needs at least 3x3 squares')
        if not (math.isfinite(self.square_m) and 0.0 < self.square_m <= 1.0):
            raise ValueError(f'square_m must be in (0, 1] metres, got {self.square_m}')
        if not 0.0 < self.marker_m < self.square_m:
            raise ValueError('marker_m must be positive and smaller than square_m')
        if not self.dictionary.startswith('DICT_'):
            raise ValueError(f'dictionary must be an ArUco name like DICT_5X5_100, '
                             f'got {self.dictionary!r}')

    @property
    def point_count(self) -> int:
        """Return the number of chessboard corners (ids 0 .. point_count - 1)."""
        return (self.squares_x - 1) * (self.squares_y - 1)

    def object_points(self) -> FloatArray:
        """Return the (point_count, 3) chessboard-corner coordinates in the board frame."""
        idx = np.arange(self.point_count)
        pts = np.zeros((self.point_count, 3))
        pts[:, 0] = (idx % (self.squares_x - 1) + 1) * self.square_m
        pts[:, 1] = (idx // (self.squares_x - 1) + 1) * self.square_m
        return pts


Target = Union[ChessboardTarget, CharucoTarget]


@dataclass(frozen=True, eq=False)
class BoardPlacement:
    """Where the target lies for some images: ``map_from_board`` is T_map_board (4x4).

    A ``fixed`` placement is surveyed (its pose is trusted and anchors the map); a placement
    that is not fixed is only a first guess and is refined with the cameras.
    """

    name: str
    map_from_board: FloatArray
    fixed: bool = True

    def __post_init__(self) -> None:
        """Validate the name and the transform."""
        if not self.name:
            raise ValueError('placement name must not be empty')
        object.__setattr__(
            self, 'map_from_board',
            check_transform(self.map_from_board, f'placement {self.name} map_from_board'))

    @classmethod
    def from_rotation_translation(
        cls, name: str, rotation: npt.ArrayLike, translation: npt.ArrayLike, fixed: bool = True,
    ) -> 'BoardPlacement':
        """Build a placement from the board's rotation and origin in the map frame."""
        return cls(name, make_transform(rotation, translation), fixed)

    @classmethod
    def on_floor(
        cls, name: str, x_m: float, y_m: float, yaw_deg: float = 0.0, z_m: float = 0.0,
        fixed: bool = True,
    ) -> 'BoardPlacement':
        """Build a placement for a board lying face-up on the floor.

        The board origin (first inner corner) is at (x_m, y_m, z_m); the board x axis (along
        the first row) points ``yaw_deg`` from map x (counter-clockwise seen from above), the
        board y axis (along the first column) points at ``yaw_deg - 90`` and board z points
        down into the floor.
        """
        yaw = math.radians(yaw_deg)
        c, s = math.cos(yaw), math.sin(yaw)
        rotation = np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])
        return cls.from_rotation_translation(name, rotation, [x_m, y_m, z_m], fixed)

    def with_pose(self, map_from_board: npt.ArrayLike) -> 'BoardPlacement':
        """Return a copy of this placement with another pose."""
        return BoardPlacement(self.name, np.asarray(map_from_board), self.fixed)


def average_transforms(
    transforms: Sequence[npt.ArrayLike], max_angle_deg: float = 5.0,
    max_distance_m: float = 0.2,
) -> FloatArray:
    """Average rigid transforms robustly.

    The medoid (the transform closest to all others) is found first; transforms further than
    ``max_angle_deg`` or ``max_distance_m`` from it are dropped, and the rest are averaged
    (quaternion eigen-average for rotation, component-wise median for translation).
    """
    ts = [np.asarray(t, dtype=np.float64) for t in transforms]
    if not ts:
        raise ValueError('average_transforms needs at least one transform')
    n = len(ts)
    angles = np.zeros((n, n))
    dists = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            angles[i, j] = angles[j, i] = rotation_angle_deg(ts[i][:3, :3].T @ ts[j][:3, :3])
            dists[i, j] = dists[j, i] = float(np.linalg.norm(ts[i][:3, 3] - ts[j][:3, 3]))
    score = angles.sum(axis=1) / max(max_angle_deg, 1e-9) + dists.sum(axis=1) / max(
        max_distance_m, 1e-9)
    medoid = int(np.argmin(score))
    keep = [i for i in range(n)
            if angles[medoid, i] <= max_angle_deg and dists[medoid, i] <= max_distance_m]
    ref = quaternion_from_rotation(ts[medoid][:3, :3])
    acc = np.zeros((4, 4))
    for i in keep:
        q = quaternion_from_rotation(ts[i][:3, :3])
        if float(q @ ref) < 0.0:
            q = -q
        acc += np.outer(q, q)
    _, vectors = np.linalg.eigh(acc)
    out = np.eye(4)
    out[:3, :3] = rotation_from_quaternion(vectors[:, -1])
    out[:3, 3] = np.median(np.stack([ts[i][:3, 3] for i in keep]), axis=0)
    return out
