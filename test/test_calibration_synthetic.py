"""Calibration on synthetic views: corners projected through known ceiling camera poses."""

import math

import numpy as np
import pytest

MISSING = 'needs opencv-python-headless and scipy, which requirements.txt does not list yet'
pytest.importorskip('cv2', reason=MISSING)
pytest.importorskip('scipy', reason=MISSING)

from go_store_nodes.core.calibration import (  # noqa: E402
    BoardPlacement,
    calibrate,
    CalibrationConfig,
    CalibrationError,
    CameraModel,
    ChessboardTarget,
    Detection,
    estimate_board_pose,
    invert_transform,
    map_from_camera_from_view,
    Observation,
    rotation_angle_deg,
)

TARGET = ChessboardTarget(cols=9, rows=6, square_m=0.12)
NOISE_PX = 0.2

def looking_down(x_m: float, y_m: float, z_m: float, yaw_deg: float, tilt_x_deg: float = 0.0,
                 tilt_y_deg: float = 0.0) -> np.ndarray:
    """Return T_map_camera of an optical frame looking straight down, then tilted."""
    yaw = math.radians(yaw_deg)
    x_cam = [math.cos(yaw), math.sin(yaw), 0.0]
    z_cam = [0.0, 0.0, -1.0]
    y_cam = np.cross(z_cam, x_cam)
    r = np.column_stack([x_cam, y_cam, z_cam])
    ax, ay = math.radians(tilt_x_deg), math.radians(tilt_y_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    t = np.eye(4)
    t[:3, :3] = r @ rx @ ry
    t[:3, 3] = [x_m, y_m, z_m]
    return t

def d435(name: str) -> CameraModel:
    """Return a 424x240 camera with fx = 212 / tan(43.5 deg) (87 deg HFOV)."""
    return CameraModel.from_fov(name, 424, 240, 87.0)

TRUE_POSES = {
    'cam_01': looking_down(1.0, 1.0, 3.00, 0.0, 1.5, -2.0),
    'cam_02': looking_down(4.0, 1.2, 3.05, 90.0, -1.0, 0.5),
    'cam_03': looking_down(1.2, 4.0, 2.95, 180.0, 0.0, 3.0),
    'cam_04': looking_down(4.1, 4.1, 3.10, -30.0, 2.5, 1.0),
}

def floor_placements() -> dict[str, BoardPlacement]:
    """Return a grid of surveyed marks on the floor, board turned a different way at each."""
    out = {}
    k = 0
    for x in np.arange(-0.5, 5.6, 0.7):
        for y in np.arange(-0.3, 5.3, 0.7):
            name = f'P{k:02d}'
            out[name] = BoardPlacement.on_floor(name, float(x), float(y), yaw_deg=37.0 * k)
            k += 1
    return out

def synthesize(
    cameras: dict[str, CameraModel], true_poses: dict[str, np.ndarray],
    placements: dict[str, BoardPlacement], noise_px: float = NOISE_PX, seed: int = 1,
) -> list[Observation]:
    """Project the board at every placement into every camera; fully visible = detected."""
    rng = np.random.default_rng(seed)
    obs = []
    obj = TARGET.object_points()
    for cam, model in cameras.items():
        for place in placements.values():
            camera_from_board = invert_transform(true_poses[cam]) @ place.map_from_board
            depth = (camera_from_board[:3, :3] @ obj.T).T[:, 2] + camera_from_board[2, 3]
            px = model.project(camera_from_board, obj)
            inside = ((px[:, 0] > 5) & (px[:, 0] < model.width - 6) & (px[:, 1] > 5)
                      & (px[:, 1] < model.height - 6) & (depth > 0)).all()
            image_id = f'{cam}_{place.name}'
            if inside:
                det = Detection.from_corners(px + rng.normal(0.0, noise_px, px.shape))
            else:
                det = Detection.not_found('no 9x6 chessboard found in the 424x240 image')
            obs.append(Observation(cam, image_id, place.name, det))
    return obs


def pose_error(estimated: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Return (translation error m, rotation error deg)."""
    return (float(np.linalg.norm(estimated[:3, 3] - truth[:3, 3])),
            rotation_angle_deg(estimated[:3, :3].T @ truth[:3, :3]))


@pytest.fixture(scope='module')
def store():
    """Four ceiling cameras, a grid of floor marks, and their synthetic observations."""
    cameras = {name: d435(name) for name in TRUE_POSES}
    placements = floor_placements()
    observations = synthesize(cameras, TRUE_POSES, placements)
    return cameras, placements, observations


def test_focal_length_matches_d435_fov():
    cam = d435('c')
    assert cam.camera_matrix[0, 0] == pytest.approx(212.0 / math.tan(math.radians(43.5)))


def test_every_camera_sees_several_placements(store):
    _, _, observations = store
    for cam in TRUE_POSES:
        seen = [o for o in observations if o.camera == cam and o.detection.found]
        assert len(seen) >= 3, cam


def test_single_view_pose_composes_with_placement(store):
    cameras, placements, observations = store
    obs = next(o for o in observations if o.camera == 'cam_02' and o.detection.found)
    pose = estimate_board_pose(cameras['cam_02'], obs.detection, TARGET)
    est = map_from_camera_from_view(pose.camera_from_board, placements[obs.placement])
    dist_m, angle_deg = pose_error(est, TRUE_POSES['cam_02'])
    print(f'single view {obs.image_id}: {dist_m * 100:.2f} cm, {angle_deg:.3f} deg, '
          f'rms {pose.rms_px:.3f} px')
    assert dist_m < 0.10 and angle_deg < 2.0
    assert pose.rms_px < 0.5


def test_recovers_every_camera_pose(store):
    cameras, placements, observations = store
    result = calibrate(cameras, observations, placements, TARGET)
    print('\n' + result.summary())
    assert result.ok, result.issues
    assert set(result.cameras) == set(TRUE_POSES)
    for name, truth in TRUE_POSES.items():
        cal = result.cameras[name]
        dist_m, angle_deg = pose_error(cal.map_from_camera, truth)
        print(f'{name}: position error {dist_m * 100:.2f} cm, rotation error '
              f'{angle_deg:.3f} deg, rms {cal.rms_px:.3f} px, views {cal.views_used}/'
              f'{cal.views_total}')
        assert dist_m < 0.02
        assert angle_deg < 0.5
        assert cal.rms_px < 2.0 * NOISE_PX
        assert cal.views_used >= 3
    assert not [i for i in result.issues if i.kind == 'view_outlier']


def test_free_placements_are_refined(store):
    cameras, placements, observations = store
    names = sorted(placements)
    # Leave only every third mark surveyed; the others start 15 cm / 5 deg off.
    loose = {}
    for i, name in enumerate(names):
        p = placements[name]
        if i % 3 == 0:
            loose[name] = p
            continue
        off = p.map_from_board.copy()
        off[:3, 3] += [0.15, -0.1, 0.0]
        c, s = math.cos(math.radians(5)), math.sin(math.radians(5))
        off[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ off[:3, :3]
        loose[name] = BoardPlacement(name, off, fixed=False)
    result = calibrate(cameras, observations, loose, TARGET)
    assert result.ok, result.issues
    worst = 0.0
    for name, truth in TRUE_POSES.items():
        dist_m, angle_deg = pose_error(result.cameras[name].map_from_camera, truth)
        worst = max(worst, dist_m)
        assert dist_m < 0.03 and angle_deg < 0.5, name
    seen = {o.placement for o in observations if o.detection.found}
    for name in seen:
        if not loose[name].fixed:
            dist_m, _ = pose_error(result.placements[name].map_from_board,
                                   placements[name].map_from_board)
            assert dist_m < 0.03, name
    print(f'with 2/3 of the marks unsurveyed: worst camera position error {worst * 100:.2f} cm')


def test_camera_that_never_sees_the_target_is_named(store):
    cameras, placements, observations = store
    cams = dict(cameras, cam_05=d435('cam_05'))
    blind = [Observation('cam_05', f'img_{i}', 'P00',
                         Detection.not_found('no 9x6 chessboard found in the 424x240 image'))
             for i in range(6)]
    result = calibrate(cams, list(observations) + blind, placements, TARGET)
    assert not result.ok
    assert 'cam_05' not in result.cameras
    assert set(result.cameras) == set(TRUE_POSES)
    (err,) = result.errors
    assert err.camera == 'cam_05' and err.kind == 'never_saw_target'
    assert err.message.startswith('cam_05 never saw the target in 0 of 6 images: move the '
                                  'board under cam_05 and capture again')
    with pytest.raises(CalibrationError, match='cam_05 never saw'):
        result.raise_for_errors()


def test_camera_without_images_and_too_few_views(store):
    cameras, placements, observations = store
    cams = dict(cameras, cam_06=d435('cam_06'))
    keep_one = [o for o in observations if o.camera != 'cam_01' or o.detection.found][:]
    first = True
    trimmed = []
    for o in keep_one:
        if o.camera == 'cam_01' and o.detection.found:
            if not first:
                continue
            first = False
        trimmed.append(o)
    result = calibrate(cams, trimmed, placements, TARGET)
    kinds = {(i.camera, i.kind) for i in result.errors}
    assert kinds == {('cam_06', 'no_images'), ('cam_01', 'too_few_views')}
    msg = next(i.message for i in result.errors if i.camera == 'cam_01')
    assert 'cam_01 saw the target in only 1 of' in msg and 'capture again' in msg
    assert set(result.cameras) == {'cam_02', 'cam_03', 'cam_04'}


def test_camera_seeing_only_unsurveyed_marks_is_not_anchored():
    cam = d435('cam_09')
    truth = {'cam_09': looking_down(0.0, 0.0, 3.0, 0.0)}
    places = {n: BoardPlacement.on_floor(n, x, y, fixed=False)
              for n, x, y in (('A', -0.6, -0.4), ('B', 0.1, 0.0))}
    obs = synthesize({'cam_09': cam}, truth, places)
    result = calibrate({'cam_09': cam}, obs, places, TARGET)
    (err,) = result.errors
    assert err.kind == 'not_anchored' and 'cam_09' in err.message
    assert result.cameras == {}


def test_moved_board_view_is_dropped_and_reported(store):
    cameras, placements, observations = store
    victim = next(o for o in observations if o.camera == 'cam_03' and o.detection.found)
    bumped = []
    for o in observations:
        if o is victim:
            pts = o.detection.image_points + [9.0, -6.0]
            o = Observation(o.camera, o.image_id, o.placement, Detection.from_corners(pts))
        bumped.append(o)
    result = calibrate(cameras, bumped, placements, TARGET)
    assert result.ok
    warn = [i for i in result.issues if i.kind == 'view_outlier']
    assert [w.image_id for w in warn] == [victim.image_id]
    assert f'not on mark {victim.placement}' in warn[0].message
    cal = result.cameras['cam_03']
    assert cal.views_used == len([o for o in observations
                                  if o.camera == 'cam_03' and o.detection.found]) - 1
    dist_m, angle_deg = pose_error(cal.map_from_camera, TRUE_POSES['cam_03'])
    assert dist_m < 0.02 and angle_deg < 0.5


def test_unknown_names_are_reported_not_raised(store):
    cameras, placements, observations = store
    extra = [Observation('cam_99', 'x1', 'P00', Detection.not_found('nothing')),
             Observation('cam_01', 'x2', 'NOPE', Detection.not_found('nothing'))]
    result = calibrate(cameras, list(observations) + extra, placements, TARGET)
    assert result.ok
    assert {i.kind for i in result.issues} == {'unknown_camera', 'unknown_placement'}


def test_config_validation():
    with pytest.raises(ValueError, match='loss'):
        CalibrationConfig(loss='l2')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='min_views_per_camera'):
        CalibrationConfig(min_views_per_camera=0)
    with pytest.raises(ValueError, match='view_outlier_px'):
        CalibrationConfig(view_outlier_px=0.0)
