"""Depth check: the floor seen in a synthetic depth image against a calibrated pose."""

import math

import numpy as np
import pytest

MISSING = 'needs opencv-python-headless and scipy, which requirements.txt does not list yet'
pytest.importorskip('cv2', reason=MISSING)
pytest.importorskip('scipy', reason=MISSING)

from go_store_nodes.core.calibration import (  # noqa: E402
    back_project,
    CameraModel,
    check_floor,
    DepthCheckConfig,
    render_floor_depth,
)
from go_store_nodes.core.calibration.targets import transform_points  # noqa: E402


def looking_down(x_m: float, y_m: float, z_m: float, tilt_deg: float = 0.0) -> np.ndarray:
    """Return T_map_camera looking down, tilted about the camera x axis."""
    a = math.radians(tilt_deg)
    down = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    t = np.eye(4)
    t[:3, :3] = down @ rx
    t[:3, 3] = [x_m, y_m, z_m]
    return t


CAMERA = CameraModel.from_fov('cam_07', 424, 240, 87.0)
TRUE_POSE = looking_down(2.0, 3.0, 3.0, tilt_deg=4.0)


@pytest.fixture(scope='module')
def depth_mm():
    """Render a D435-like floor depth image: 1 % noise, a shelf block, 10 % holes."""
    depth = render_floor_depth(CAMERA, TRUE_POSE, noise_fraction=0.01, seed=5)
    depth[60:150, 250:400] = 1600  # a 1.4 m high shelf top in view
    rng = np.random.default_rng(9)
    depth[rng.random(depth.shape) < 0.1] = 0  # 10 % holes
    return depth


def test_rendered_floor_back_projects_onto_the_floor():
    depth = render_floor_depth(CAMERA, TRUE_POSE)
    pts = transform_points(TRUE_POSE, back_project(depth, CAMERA, stride=4))
    assert pts.shape[0] > 5000
    assert np.abs(pts[:, 2]).max() < 0.01  # mm quantisation at up to ~3.5 m


def test_correct_pose_passes(depth_mm):
    result = check_floor(depth_mm, CAMERA, TRUE_POSE)
    print(f'\ncorrect pose: {result.message}')
    assert result.passed
    assert abs(result.height_error_m) < 0.005
    assert result.tilt_deg < 0.2
    assert result.floor_points > 5000


def test_camera_described_10cm_too_low_fails(depth_mm):
    described = TRUE_POSE.copy()
    described[2, 3] -= 0.10  # the camera was knocked up, or the pose is 10 cm low
    result = check_floor(depth_mm, CAMERA, described)
    print(f'\n10 cm low: {result.message}')
    assert not result.passed
    assert result.height_error_m == pytest.approx(-0.10, abs=0.01)
    assert 'calibrate it again' in result.message


def test_camera_described_10cm_too_high_fails(depth_mm):
    described = TRUE_POSE.copy()
    described[2, 3] += 0.10
    result = check_floor(depth_mm, CAMERA, described)
    print(f'\n10 cm high: {result.message}')
    assert not result.passed
    assert result.height_error_m == pytest.approx(0.10, abs=0.01)


def test_tilted_camera_fails(depth_mm):
    described = looking_down(2.0, 3.0, 3.0, tilt_deg=4.0 + 2.0)
    result = check_floor(depth_mm, CAMERA, described)
    print(f'\n2 deg tilt: {result.message}')
    assert not result.passed
    assert result.tilt_deg == pytest.approx(2.0, abs=0.2)


def test_sideways_shift_is_invisible_to_the_floor(depth_mm):
    """Documented limit: the floor cannot see x, y or yaw; the target check does."""
    described = TRUE_POSE.copy()
    described[0, 3] += 0.10
    result = check_floor(depth_mm, CAMERA, described)
    assert result.passed


def test_no_depth_and_no_floor_fail_with_reason():
    empty = np.zeros((240, 424), np.uint16)
    result = check_floor(empty, CAMERA, TRUE_POSE)
    assert not result.passed and 'depth pixels with data' in result.message
    assert math.isnan(result.height_error_m)
    wall = np.full((240, 424), 3000, np.uint16)  # a vertical wall 3 m ahead of a level camera
    level = np.eye(4)
    level[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # optical z along map y: horizontal
    level[2, 3] = 1.5
    result = check_floor(wall, CAMERA, level)
    assert not result.passed and 'no floor found' in result.message


def test_wrong_depth_size_raises():
    with pytest.raises(ValueError, match='424x240'):
        check_floor(np.zeros((480, 640), np.uint16), CAMERA, TRUE_POSE)


def test_config_validation():
    with pytest.raises(ValueError, match='max_tilt_deg'):
        DepthCheckConfig(max_tilt_deg=0.0)
    with pytest.raises(ValueError, match='min_depth_m'):
        DepthCheckConfig(min_depth_m=5.0, max_depth_m=4.0)
