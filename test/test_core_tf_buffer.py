"""TransformBuffer: lookups across the frame tree, with hand-built transforms."""

import math

import numpy as np
import pytest

from go_store_nodes.core.tf_buffer import FrameLookupError, TransformBuffer
from go_store_nodes.core.transforms import rotation_from_rpy, Transform


def _buffer():
    buffer = TransformBuffer()
    buffer.set_transform('map', 'shelf', Transform(rotation_from_rpy(0, 0, math.pi), [4, 3, 0]))
    buffer.set_transform('map', 'cam', Transform(np.diag([1.0, -1.0, -1.0]), [1, 1, 3]))
    buffer.set_transform('shelf', 'bin', Transform(np.eye(3), [0.5, 0, 1]))
    return buffer


def test_lookup_between_siblings_and_descendants():
    buffer = _buffer()
    # The bin centre in the camera frame: map position (3.5, 3, 1), camera at (1, 1, 3)
    # looking down with y flipped.
    point_in_cam = buffer.lookup('cam', 'bin').apply([0.0, 0.0, 0.0])
    np.testing.assert_allclose(point_in_cam, [2.5, -2.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(buffer.lookup('map', 'bin').translation, [3.5, 3.0, 1.0],
                               atol=1e-12)
    assert buffer.lookup('bin', 'cam').is_close(buffer.lookup('cam', 'bin').inverse())
    assert buffer.lookup('cam', 'cam').is_close(Transform.identity())
    assert buffer.frames() == {'map', 'shelf', 'cam', 'bin'}


def test_unknown_and_disconnected_frames():
    buffer = _buffer()
    buffer.set_transform('odom', 'robot', Transform.identity())
    with pytest.raises(FrameLookupError, match='not connected'):
        buffer.lookup('map', 'robot')
    assert not buffer.can_transform('map', 'nowhere')


def test_rejects_loops_and_self_parents():
    buffer = _buffer()
    with pytest.raises(ValueError, match='loop'):
        buffer.set_transform('bin', 'map', Transform.identity())
    with pytest.raises(ValueError, match='own parent'):
        buffer.set_transform('cam', 'cam', Transform.identity())
