"""Rigid transforms in 3D: rotation matrices, quaternions (x, y, z, w as in ROS) and poses.

A ``Transform`` named ``T_a_b`` maps points expressed in frame ``b`` into frame ``a``;
it is also the pose of frame ``b`` in frame ``a``. ROS messages order quaternions
x, y, z, w; transforms3d orders them w, x, y, z: this module uses the ROS order only.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

ORTHONORMAL_TOLERANCE = 1e-3
QUATERNION_NORM_TOLERANCE = 1e-3


def check_rotation_matrix(matrix: ArrayLike, tolerance: float = ORTHONORMAL_TOLERANCE) -> NDArray:
    """Return ``matrix`` as a 3x3 array, or raise ValueError saying why it is no rotation."""
    rotation = np.asarray(matrix, dtype=float)
    if rotation.shape != (3, 3):
        raise ValueError(f'rotation matrix must be 3x3, got shape {rotation.shape}')
    if not np.all(np.isfinite(rotation)):
        raise ValueError('rotation matrix has non-finite entries')
    error = float(np.max(np.abs(rotation @ rotation.T - np.eye(3))))
    if error > tolerance:
        raise ValueError(
            f'rotation matrix is not orthonormal: max |R R^T - I| = {error:.4f} '
            f'(tolerance {tolerance})')
    determinant = float(np.linalg.det(rotation))
    if determinant < 0.0:
        raise ValueError(
            f'rotation matrix has determinant {determinant:.4f}: a reflection, not a rotation')
    return rotation


def rotation_from_quaternion_xyzw(quaternion: ArrayLike,
                                  tolerance: float = QUATERNION_NORM_TOLERANCE) -> NDArray:
    """Rotation matrix of a unit quaternion given as x, y, z, w (ROS order)."""
    q = np.asarray(quaternion, dtype=float)
    if q.shape != (4,):
        raise ValueError(f'quaternion must have 4 elements x, y, z, w; got shape {q.shape}')
    if not np.all(np.isfinite(q)):
        raise ValueError('quaternion has non-finite entries')
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > tolerance:
        raise ValueError(f'quaternion is not unit length: |q| = {norm:.4f}')
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def quaternion_xyzw_from_rotation(rotation: ArrayLike) -> NDArray:
    """Return the unit quaternion x, y, z, w (w >= 0) of a rotation (Shepperd's method)."""
    r = np.asarray(rotation, dtype=float)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0.0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = np.array([(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s,
                      (r[1, 0] - r[0, 1]) / s, 0.25 * s])
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = np.array([0.25 * s, (r[0, 1] + r[1, 0]) / s,
                      (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s])
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = np.array([(r[0, 1] + r[1, 0]) / s, 0.25 * s,
                      (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s])
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = np.array([(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s,
                      0.25 * s, (r[1, 0] - r[0, 1]) / s])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0.0 else q


def rotation_from_rpy(roll: float, pitch: float, yaw: float) -> NDArray:
    """Rotation of fixed-axis roll (x), then pitch (y), then yaw (z), in radians, as URDF."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def rpy_from_rotation(rotation: ArrayLike) -> tuple[float, float, float]:
    """Roll, pitch, yaw in radians (URDF convention) of a rotation matrix."""
    r = np.asarray(rotation, dtype=float)
    pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    if abs(r[2, 0]) < 1.0 - 1e-9:
        roll = math.atan2(r[2, 1], r[2, 2])
        yaw = math.atan2(r[1, 0], r[0, 0])
    else:  # gimbal lock: yaw and roll share one axis; put it all in yaw
        roll = 0.0
        yaw = math.atan2(-r[0, 1], r[1, 1])
    return roll, pitch, yaw


@dataclass(frozen=True)
class Transform:
    """A rigid transform: ``p_parent = rotation @ p_child + translation`` (metres)."""

    rotation: NDArray
    translation: NDArray

    def __post_init__(self) -> None:
        """Validate and freeze the arrays."""
        rotation = check_rotation_matrix(self.rotation)
        translation = np.asarray(self.translation, dtype=float).reshape(-1)
        if translation.shape != (3,) or not np.all(np.isfinite(translation)):
            raise ValueError(f'translation must be 3 finite numbers, got {self.translation!r}')
        rotation = rotation.copy()
        rotation.setflags(write=False)
        translation = translation.copy()
        translation.setflags(write=False)
        object.__setattr__(self, 'rotation', rotation)
        object.__setattr__(self, 'translation', translation)

    @classmethod
    def identity(cls) -> Transform:
        """Return the identity transform."""
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_quaternion_xyzw(cls, quaternion: Sequence[float],
                             translation: Sequence[float]) -> Transform:
        """Build from a quaternion in ROS order (x, y, z, w) and a translation."""
        return cls(rotation_from_quaternion_xyzw(quaternion), np.asarray(translation, float))

    @classmethod
    def from_matrix(cls, matrix: ArrayLike) -> Transform:
        """Build from a 4x4 homogeneous matrix."""
        m = np.asarray(matrix, dtype=float)
        if m.shape != (4, 4):
            raise ValueError(f'homogeneous matrix must be 4x4, got shape {m.shape}')
        if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError(f'last row of a homogeneous matrix must be 0 0 0 1, got {m[3]}')
        return cls(m[:3, :3], m[:3, 3])

    def quaternion_xyzw(self) -> NDArray:
        """Rotation as a unit quaternion in ROS order (x, y, z, w)."""
        return quaternion_xyzw_from_rotation(self.rotation)

    def matrix(self) -> NDArray:
        """Return the 4x4 homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> Transform:
        """Return the inverse transform (``T_b_a`` for ``T_a_b``)."""
        rotation_t = self.rotation.T
        return Transform(rotation_t, -rotation_t @ self.translation)

    def __matmul__(self, other: Transform) -> Transform:
        """Compose: ``T_a_b @ T_b_c`` is ``T_a_c``."""
        return Transform(self.rotation @ other.rotation,
                         self.rotation @ other.translation + self.translation)

    def apply(self, points: ArrayLike) -> NDArray:
        """Map points (shape (3,) or (N, 3)) from the child frame into the parent frame."""
        p = np.asarray(points, dtype=float)
        return p @ self.rotation.T + self.translation

    def is_close(self, other: Transform, translation_m: float = 1e-6,
                 angle_rad: float = 1e-6) -> bool:
        """Whether two transforms agree within a distance and an angle."""
        return (float(np.linalg.norm(self.translation - other.translation)) <= translation_m
                and rotation_angle_rad(self.rotation.T @ other.rotation) <= angle_rad)


def rotation_angle_rad(rotation: ArrayLike) -> float:
    """Angle in radians of a rotation matrix (0 for identity)."""
    r = np.asarray(rotation, dtype=float)
    cos_angle = (float(np.trace(r)) - 1.0) / 2.0
    return math.acos(max(-1.0, min(1.0, cos_angle)))
