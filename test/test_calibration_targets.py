"""Calibration targets, placements, rigid-transform helpers and corner detection."""

import math

import numpy as np
import pytest

MISSING = 'needs opencv-python-headless and scipy, which requirements.txt does not list yet'
pytest.importorskip('cv2', reason=MISSING)
pytest.importorskip('scipy', reason=MISSING)

import cv2  # noqa: E402

from go_store_nodes.core.calibration import (  # noqa: E402
    aruco_available,
    average_transforms,
    BoardPlacement,
    CameraModel,
    CharucoTarget,
    ChessboardTarget,
    detect_chessboard,
    detect_target,
    Detection,
    estimate_board_pose,
    invert_transform,
    make_transform,
    observe,
    rotation_angle_deg,
    rvec_tvec_from_transform,
    transform_from_rvec_tvec,
    xyz_quaternion_from_transform,
)
from go_store_nodes.core.calibration.targets import (  # noqa: E402
    quaternion_from_rotation,
    rotation_from_quaternion,
)

TARGET = ChessboardTarget(cols=9, rows=6, square_m=0.03)


def render_board(target: ChessboardTarget, square_px: int = 40, margin_px: int = 40):
    """Return a white-margined board image (origin square black) and its corner pixels."""
    w = (target.cols + 1) * square_px + 2 * margin_px
    h = (target.rows + 1) * square_px + 2 * margin_px
    img = np.full((h, w), 255, np.uint8)
    for r in range(target.rows + 1):
        for c in range(target.cols + 1):
            if (r + c) % 2 == 0:
                y0, x0 = margin_px + r * square_px, margin_px + c * square_px
                img[y0:y0 + square_px, x0:x0 + square_px] = 0
    idx = np.arange(target.point_count)
    corners = np.stack([margin_px + (idx % target.cols + 1) * square_px - 0.5,
                        margin_px + (idx // target.cols + 1) * square_px - 0.5], axis=1)
    return img, corners


def warp(img, corners, homography, size):
    """Warp an image and its corner pixels by a homography."""
    out = cv2.warpPerspective(img, homography, size, flags=cv2.INTER_LINEAR,
                              borderValue=200)
    pts = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), homography).reshape(-1, 2)
    return out, pts


def test_object_points_follow_opencv_order():
    pts = TARGET.object_points()
    assert pts.shape == (54, 3)
    assert np.allclose(pts[0], [0, 0, 0])
    assert np.allclose(pts[1], [0.03, 0, 0])
    assert np.allclose(pts[9], [0, 0.03, 0])
    assert np.allclose(pts[-1], [0.24, 0.15, 0])
    assert TARGET.pattern_size == (9, 6)


@pytest.mark.parametrize('kwargs, match', [
    ({'cols': 2, 'rows': 5, 'square_m': 0.1}, 'at least 3x3'),
    ({'cols': 8, 'rows': 6, 'square_m': 0.1}, 'symmetric'),
    ({'cols': 9, 'rows': 6, 'square_m': 0.0}, 'square_m'),
    ({'cols': 9, 'rows': 6, 'square_m': float('nan')}, 'square_m'),
])
def test_chessboard_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChessboardTarget(**kwargs)


def test_placement_on_floor_axes():
    p = BoardPlacement.on_floor('P1', 2.0, 3.0, yaw_deg=90.0)
    r = p.map_from_board[:3, :3]
    assert np.allclose(r[:, 0], [0, 1, 0], atol=1e-12)  # board x along map y
    assert np.allclose(r[:, 1], [1, 0, 0], atol=1e-12)  # board y at yaw - 90 = map x
    assert np.allclose(r[:, 2], [0, 0, -1])  # into the floor
    assert np.allclose(p.map_from_board[:3, 3], [2, 3, 0])
    assert p.fixed
    with pytest.raises(ValueError, match='rotation'):
        BoardPlacement('bad', np.diag([1.0, 1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match='name'):
        BoardPlacement.on_floor('', 0.0, 0.0)
    with pytest.raises(ValueError):
        p.map_from_board[0, 0] = 5.0  # read-only


def test_rotation_conversions_round_trip_near_180_degrees():
    rng = np.random.default_rng(3)
    for angle in (0.0, 1e-9, 0.3, math.pi - 1e-7, math.pi):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        t = transform_from_rvec_tvec(axis * angle, [1, 2, 3])
        rvec, tvec = rvec_tvec_from_transform(t)
        assert np.allclose(transform_from_rvec_tvec(rvec, tvec), t, atol=1e-9)
        r_cv, _ = cv2.Rodrigues(axis * angle)
        assert np.allclose(t[:3, :3], r_cv, atol=1e-9)
        q = quaternion_from_rotation(t[:3, :3])
        assert np.allclose(rotation_from_quaternion(q), t[:3, :3], atol=1e-9)
    t = make_transform(cv2.Rodrigues(np.array([0.1, -0.2, 0.3]))[0], [1, 2, 3])
    assert np.allclose(invert_transform(t) @ t, np.eye(4))
    xyz, quat = xyz_quaternion_from_transform(t)
    assert xyz == (1.0, 2.0, 3.0) and len(quat) == 4


def test_average_transforms_ignores_outlier():
    base = make_transform(np.eye(3), [1.0, 2.0, 3.0])
    rng = np.random.default_rng(0)
    ts = []
    for _ in range(7):
        ts.append(transform_from_rvec_tvec(rng.normal(0, 0.002, 3),
                                           base[:3, 3] + rng.normal(0, 0.003, 3)))
    ts.append(transform_from_rvec_tvec([0.5, 0, 0], [1.5, 2.0, 3.0]))
    avg = average_transforms(ts)
    assert np.linalg.norm(avg[:3, 3] - base[:3, 3]) < 0.005
    assert rotation_angle_deg(avg[:3, :3]) < 0.3


def test_camera_model_from_camera_info_and_validation():
    cam = CameraModel.from_camera_info(
        'cam_01', [600, 0, 320, 0, 600, 240, 0, 0, 1], [0.1, -0.05, 0, 0, 0], 640, 480)
    assert cam.camera_matrix[0, 2] == 320 and cam.dist_coeffs.shape == (5,)
    with pytest.raises(ValueError, match='9 values'):
        CameraModel.from_camera_info('c', [1, 2, 3], [], 640, 480)
    with pytest.raises(ValueError, match='dist_coeffs'):
        CameraModel('c', np.eye(3), np.zeros(3), 640, 480)
    with pytest.raises(ValueError, match='fx, fy'):
        CameraModel('c', np.diag([-1.0, 1.0, 1.0]), np.zeros(5), 640, 480)


@pytest.mark.parametrize('turned', [False, True])
def test_detects_rendered_board_with_origin_at_black_square(turned):
    img, corners = render_board(TARGET)
    h, w = img.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    dst = np.array([[30, 20], [w + 60, 45], [w + 20, h + 70], [10, h + 40]], dtype=np.float32)
    if turned:  # the board lies the other way round
        dst = dst[[2, 3, 0, 1]]
    hom = cv2.getPerspectiveTransform(src, dst)
    image, expected = warp(img, corners, hom, (w + 100, h + 100))
    det = detect_chessboard(image, TARGET)
    assert det.found, det.reason
    assert det.point_ids.tolist() == list(range(54))
    err = np.linalg.norm(det.image_points - expected, axis=1)
    print(f'rendered board (turned={turned}): corner error mean {err.mean():.3f} px, '
          f'max {err.max():.3f} px')
    assert err.max() < 0.5
    # BGR and uint16 images work too.
    assert detect_chessboard(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), TARGET).found
    assert detect_chessboard(image.astype(np.uint16) * 257, TARGET).found


@pytest.mark.parametrize('image, reason', [
    (None, 'no image'),
    (np.zeros((0, 0), np.uint8), 'empty'),
    (np.zeros((480, 640), np.float32), 'dtype'),
    (np.zeros((8, 8), np.uint8), 'too small'),
    (np.full((480, 640), 128, np.uint8), 'no 9x6 chessboard found'),
])
def test_no_target_gives_a_clear_result(image, reason):
    det = detect_chessboard(image, TARGET)
    assert not det.found
    assert reason in det.reason
    assert det.image_points.shape == (0, 2)
    obs = observe(image, 'cam_03', 'img_7', 'P1', TARGET)
    assert not obs.detection.found and obs.camera == 'cam_03'
    with pytest.raises(ValueError, match='target not found'):
        estimate_board_pose(CameraModel.from_fov('cam_03', 640, 480, 60.0), det, TARGET)


def test_detection_validation():
    with pytest.raises(ValueError, match='reason'):
        Detection(False)
    with pytest.raises(ValueError, match='at least 4'):
        Detection.from_corners(np.zeros((3, 2)))
    with pytest.raises(ValueError, match='point ids'):
        Detection(True, np.zeros((5, 2)), np.arange(4))


def test_pose_from_rendered_board_with_known_camera():
    """A board seen by a known pinhole camera: PnP gives back the pose used to draw it."""
    cam = CameraModel.from_fov('cam', 640, 480, 70.0)
    camera_from_board = make_transform(cv2.Rodrigues(np.array([0.25, -0.2, 0.1]))[0],
                                       [-0.1, -0.05, 0.6])
    img, corners = render_board(TARGET)
    sq_px = 40
    # Board pixel (u, v) -> board metres: ((u + 0.5 - margin - sq) / sq * square_m, ...).
    s = TARGET.square_m / sq_px
    off = -(40 + sq_px - 0.5) * s
    board_from_px = np.array([[s, 0, off], [0, s, off], [0, 0, 1.0]])
    k = cam.camera_matrix
    hom = k @ camera_from_board[:3][:, [0, 1, 3]] @ board_from_px
    image = cv2.warpPerspective(img, hom / hom[2, 2], (640, 480), borderValue=200)
    det = detect_chessboard(image, TARGET)
    assert det.found, det.reason
    pose = estimate_board_pose(cam, det, TARGET)
    dist = np.linalg.norm(pose.camera_from_board[:3, 3] - camera_from_board[:3, 3])
    angle = rotation_angle_deg(pose.camera_from_board[:3, :3].T @ camera_from_board[:3, :3])
    print(f'rendered board PnP: {dist * 1000:.2f} mm, {angle:.3f} deg, rms {pose.rms_px:.3f} px')
    assert dist < 0.002 and angle < 0.3 and pose.rms_px < 0.3


@pytest.mark.skipif(not aruco_available(), reason='cv2.aruco CharucoDetector not available')
def test_charuco_board_detection_matches_opencv_layout():
    from go_store_nodes.core.calibration.estimate import charuco_board
    target = CharucoTarget(squares_x=5, squares_y=7, square_m=0.04, marker_m=0.03)
    board = charuco_board(target)
    assert np.allclose(target.object_points(), board.getChessboardCorners())
    image = board.generateImage((500, 700), marginSize=20)
    det = detect_target(image, target)
    assert det.found, det.reason
    assert len(det.point_ids) == target.point_count
    # Generated image: 500 px for 5 squares minus margins -> corners on a regular grid.
    pts = det.image_points[np.argsort(det.point_ids)]
    spacing = np.diff(pts[:4, 0])
    assert np.allclose(spacing, spacing.mean(), atol=0.5)
    partial = image.copy()
    partial[:, 250:] = 255
    part = detect_target(partial, target)
    assert part.found and 4 <= len(part.point_ids) < target.point_count
    assert not detect_target(np.full((300, 300), 255, np.uint8), target).found


def test_charuco_target_validation():
    with pytest.raises(ValueError, match='marker_m'):
        CharucoTarget(5, 7, 0.04, 0.05)
    with pytest.raises(ValueError, match='dictionary'):
        CharucoTarget(5, 7, 0.04, 0.03, dictionary='5X5')
