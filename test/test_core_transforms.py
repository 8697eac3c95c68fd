"""Transforms: quaternion order, composition, inversion, rejection of non-rotations."""

import math

import numpy as np
import pytest

from go_store_nodes.core.transforms import (
    check_rotation_matrix,
    quaternion_xyzw_from_rotation,
    rotation_from_quaternion_xyzw,
    rotation_from_rpy,
    rpy_from_rotation,
    Transform,
)


def test_quaternion_is_ros_order_xyzw():
    # 90 degrees about z: x, y, z, w = 0, 0, sin 45, cos 45
    q = [0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]
    rotation = rotation_from_quaternion_xyzw(q)
    np.testing.assert_allclose(rotation @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(quaternion_xyzw_from_rotation(rotation), q, atol=1e-12)


@pytest.mark.parametrize('seed', range(20))
def test_quaternion_and_rpy_round_trip(seed):
    rng = np.random.default_rng(seed)
    roll, yaw = rng.uniform(-math.pi, math.pi, 2)
    pitch = rng.uniform(-1.5, 1.5)
    rotation = rotation_from_rpy(roll, pitch, yaw)
    np.testing.assert_allclose(rotation_from_rpy(*rpy_from_rotation(rotation)), rotation,
                               atol=1e-9)
    q = quaternion_xyzw_from_rotation(rotation)
    np.testing.assert_allclose(rotation_from_quaternion_xyzw(q), rotation, atol=1e-9)


def test_compose_and_inverse():
    t_a_b = Transform(rotation_from_rpy(0.1, 0.2, 0.3), [1.0, 2.0, 3.0])
    t_b_c = Transform(rotation_from_rpy(-0.4, 0.0, 1.2), [0.5, -1.0, 0.0])
    point_c = np.array([0.3, 0.2, 0.1])
    np.testing.assert_allclose((t_a_b @ t_b_c).apply(point_c),
                               t_a_b.apply(t_b_c.apply(point_c)), atol=1e-12)
    assert (t_a_b @ t_a_b.inverse()).is_close(Transform.identity(), 1e-12, 1e-9)
    np.testing.assert_allclose(Transform.from_matrix(t_a_b.matrix()).matrix(), t_a_b.matrix())


def test_rejects_non_rotations():
    with pytest.raises(ValueError, match='not orthonormal'):
        check_rotation_matrix([[1.0, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match='reflection'):
        check_rotation_matrix(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match='3x3'):
        check_rotation_matrix(np.eye(4))
    with pytest.raises(ValueError, match='unit length'):
        rotation_from_quaternion_xyzw([0.0, 0.0, 0.0, 2.0])
    with pytest.raises(ValueError, match='translation'):
        Transform(np.eye(3), [0.0, float('nan'), 0.0])
