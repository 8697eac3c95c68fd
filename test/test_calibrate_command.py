"""`go-store calibrate` on a rendered store: poses to 2 cm / 0.5 deg, depth check, bad input.

Each camera of the reference store sees a 9x6 chessboard (0.2 m squares) at two floor
marks; its colour image is rendered through the camera's true colour pose by the
board-plane homography, with sensor noise, and its depth image is the floor seen from
the true depth pose with D435-like noise. The tool starts from the description's poses
only as the place to write to: it estimates every pose from the images alone.
"""

import math
import shutil

import cv2
import numpy as np
import pytest
import yaml

from go_store_nodes.cli import main as go_store
from go_store_nodes.core.calibration.depth_check import render_floor_depth
from go_store_nodes.core.calibration.session import color_camera_model, depth_camera_model
from go_store_nodes.core.calibration.targets import BoardPlacement, ChessboardTarget
from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.transforms import rotation_angle_rad, rotation_from_rpy, Transform

TARGET = ChessboardTarget(cols=9, rows=6, square_m=0.2)
PX_PER_M = 400  # board texture resolution


def _board_texture():
    """Board image with a one-square white margin; the origin corner's square is black."""
    squares_x, squares_y = TARGET.cols + 1, TARGET.rows + 1
    side = int(TARGET.square_m * PX_PER_M)
    texture = np.full(((squares_y + 2) * side, (squares_x + 2) * side), 255, np.uint8)
    for j in range(squares_y):
        for i in range(squares_x):
            if (i + j) % 2 == 0:
                texture[(j + 1) * side:(j + 2) * side, (i + 1) * side:(i + 2) * side] = 0
    # Texture pixel (u, v) <-> board point ((u / PX_PER_M) - 2 squares, (v / PX_PER_M) - 2 sq)
    return texture, 2 * TARGET.square_m


def _render_color(camera_model, t_map_color, placement, rng):
    texture, offset_m = _board_texture()
    t_cam_board = np.linalg.inv(t_map_color.matrix()) @ placement.map_from_board
    k = camera_model.camera_matrix
    board_from_texture = np.array([[1 / PX_PER_M, 0, -offset_m], [0, 1 / PX_PER_M, -offset_m],
                                   [0, 0, 1]])
    homography = k @ t_cam_board[:3, [0, 1, 3]] @ board_from_texture
    floor = np.full((camera_model.height, camera_model.width), 170, np.uint8)
    board = cv2.warpPerspective(texture, homography, (camera_model.width, camera_model.height),
                                flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=170)
    mask = cv2.warpPerspective(np.full_like(texture, 255), homography,
                               (camera_model.width, camera_model.height)) > 127
    gray = np.where(mask, board, floor).astype(np.float64)
    gray += rng.normal(0.0, 2.0, gray.shape)
    return cv2.cvtColor(np.clip(gray, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _render_depth(store, camera_id, t_map_depth, rng):
    model = depth_camera_model(store, camera_id)
    depth = render_floor_depth(model, t_map_depth.matrix()).astype(np.float64)
    z_m = depth / 1000.0
    fx = model.camera_matrix[0, 0]
    sigma_m = z_m ** 2 * 0.08 / (fx * 0.050)  # D435 RMS depth error
    noisy = np.where(depth > 0, (z_m + rng.normal(0.0, 1.0, z_m.shape) * sigma_m) * 1000, 0)
    return np.clip(np.round(noisy), 0, 65535).astype(np.uint16)


@pytest.fixture(scope='module')
def captured(tmp_path_factory, store_path):
    """Render a calibration session from the true camera poses, with a store copy."""
    folder = tmp_path_factory.mktemp('calibration')
    store_copy = folder / 'store.yaml'
    shutil.copy(store_path, store_copy)
    store = load_store_description(store_copy)
    session = folder / 'session'
    session.mkdir()
    rng = np.random.default_rng(7)
    placements, images = [], []
    board_w = (TARGET.cols - 1) * TARGET.square_m
    board_h = (TARGET.rows - 1) * TARGET.square_m
    for camera in store.cameras:
        cx, cy = camera.t_map_color.translation[:2]
        for index, (dx, dy, yaw) in enumerate([(-0.15, 0.05, 0.0), (0.2, -0.05, 180.0)]):
            # Board centre near the camera's view centre: origin corner offset by half the
            # board along its axes (x along yaw, y along yaw - 90).
            yaw_rad = math.radians(yaw)
            ax = np.array([math.cos(yaw_rad), math.sin(yaw_rad)])
            ay = np.array([math.sin(yaw_rad), -math.cos(yaw_rad)])
            origin = np.array([cx + dx, cy + dy]) - ax * board_w / 2 - ay * board_h / 2
            name = f'{camera.camera_id}_P{index}'
            placement = BoardPlacement.on_floor(name, float(origin[0]), float(origin[1]), yaw)
            placements.append({'id': name, 'x_m': float(origin[0]), 'y_m': float(origin[1]),
                               'yaw_deg': yaw})
            color = _render_color(color_camera_model(store, camera.camera_id),
                                  camera.t_map_color, placement, rng)
            depth = _render_depth(store, camera.camera_id, camera.t_map_depth, rng)
            cv2.imwrite(str(session / f'{name}.png'), color)
            cv2.imwrite(str(session / f'{name}_depth.png'), depth)
            images.append({'camera': camera.camera_id, 'placement': name,
                           'color': f'{name}.png', 'depth': f'{name}_depth.png'})
    (session / 'session.yaml').write_text(yaml.safe_dump({
        'target': {'type': 'chessboard', 'cols': TARGET.cols, 'rows': TARGET.rows,
                   'square_m': TARGET.square_m},
        'placements': placements, 'images': images}))
    return store, store_copy, session


def test_calibrate_recovers_every_camera_within_2cm_and_half_a_degree(captured, capsys):
    truth, store_copy, session = captured
    out = store_copy.parent / 'extrinsics.yaml'
    assert go_store(['calibrate', str(session), '--store', str(store_copy),
                     '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    document = yaml.safe_load(out.read_text())
    assert set(document['cameras']) == {c.camera_id for c in truth.cameras}
    # Publish through the description, as the calibration node would.
    data = yaml.safe_load(store_copy.read_text())
    data['extrinsics_file'] = 'extrinsics.yaml'
    for camera in data['cameras']:
        camera.pop('pose')
    calibrated_store = store_copy.parent / 'calibrated_store.yaml'
    calibrated_store.write_text(yaml.safe_dump(data))
    calibrated = load_store_description(calibrated_store)
    worst_m, worst_deg = 0.0, 0.0
    for camera in truth.cameras:
        estimate = calibrated.camera(camera.camera_id)
        error_m = float(np.linalg.norm(estimate.t_map_depth.translation
                                       - camera.t_map_depth.translation))
        error_deg = math.degrees(rotation_angle_rad(
            estimate.t_map_depth.rotation.T @ camera.t_map_depth.rotation))
        worst_m, worst_deg = max(worst_m, error_m), max(worst_deg, error_deg)
        assert error_m < 0.02 and error_deg < 0.5, (camera.camera_id, error_m, error_deg)
        quality = calibrated.calibration_quality[camera.camera_id]
        assert quality['reprojection_rms_px'] < 1.0
        assert abs(quality['floor_height_error_m']) < 0.03
        assert calibrated.extrinsics_source[camera.camera_id].endswith('extrinsics.yaml')
    print(f'\nworst camera error: {worst_m * 100:.2f} cm, {worst_deg:.3f} deg\n{printed}')


def test_depth_check_flags_the_camera_whose_description_is_10cm_off(captured, capsys):
    _, store_copy, session = captured
    data = yaml.safe_load(store_copy.read_text())
    data['cameras'][4]['pose']['translation_m'][2] += 0.10  # cam_05 written 10 cm too high
    data['cameras'][7]['pose']['rotation'] = {'matrix': (rotation_from_rpy(
        math.radians(182.0), 0.0, 0.0)).tolist()}  # cam_08 written tilted by 2 degrees
    wrong = store_copy.parent / 'wrong_store.yaml'
    wrong.write_text(yaml.safe_dump(data))
    assert go_store(['calibrate', str(session), '--store', str(wrong), '--check-depth']) == 1
    printed = capsys.readouterr().out
    assert 'depth check failed for cam_05, cam_08' in printed
    assert 'cam_05: depth check FAILED: floor seen at +0.1' in printed
    assert 'cam_08: depth check FAILED' in printed and 'tilted 2.' in printed
    assert printed.count('depth check passed') == 2 * 10
    # The true description passes everywhere.
    assert go_store(['calibrate', str(session), '--store', str(store_copy),
                     '--check-depth']) == 0


def test_a_camera_that_never_sees_the_target_leaves_the_calibration_untouched(
        captured, tmp_path, capsys):
    _, store_copy, session = captured
    blind = tmp_path / 'session'
    shutil.copytree(session, blind)
    for name in ('cam_03_P0', 'cam_03_P1'):
        cv2.imwrite(str(blind / f'{name}.png'), np.full((240, 424, 3), 170, np.uint8))
    out = tmp_path / 'extrinsics.yaml'
    out.write_text('cameras: {}\n')
    assert go_store(['calibrate', str(blind), '--store', str(store_copy),
                     '--out', str(out)]) == 2
    captured_err = capsys.readouterr()
    assert 'cam_03' in captured_err.out and 'existing calibration is left untouched' in \
        captured_err.err
    assert out.read_text() == 'cameras: {}\n'


def test_bad_sessions_are_refused_with_a_clear_message(captured, tmp_path, capsys):
    _, store_copy, session = captured
    assert go_store(['calibrate', str(tmp_path / 'nowhere'), '--store', str(store_copy)]) == 2
    assert 'calibration session not found' in capsys.readouterr().err
    data = yaml.safe_load((session / 'session.yaml').read_text())
    data['images'][0]['camera'] = 'cam_99'
    (tmp_path / 'session.yaml').write_text(yaml.safe_dump(data))
    assert go_store(['calibrate', str(tmp_path), '--store', str(store_copy)]) == 2
    assert "camera 'cam_99' is not in the store description" in capsys.readouterr().err


def test_transform_helpers_agree_with_the_calibration_matrices():
    t = Transform(rotation_from_rpy(0.1, -0.2, 0.3), [1.0, 2.0, 3.0])
    assert Transform.from_matrix(t.matrix()).is_close(t)
