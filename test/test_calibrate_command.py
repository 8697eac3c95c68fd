"""`go-store calibrate` on the simulated store: poses to 2 cm / 0.5 deg, depth check, bad input.

As docs/calibration.md advises, the board (9x6, 0.1 m squares) is captured in colour at
848x480, twice the 424x240 the store streams. For each camera the test lays the board at
two marks where that camera sees all of it: free floor, or the top of the island under a
camera that sees almost no floor past it. The simulator's renderer draws each capture
through the camera's true colour pose with sensor noise; each depth image (424x240) is
the store without the board (floor, shelves, walls, D435 noise and holes) from the true
depth pose. The tool estimates every pose from the images alone; the description's poses
are only where it writes.
"""

import math
import re
import shutil

import cv2
import numpy as np
import pytest
import yaml

from go_store_nodes.cli import main as go_store
from go_store_nodes.core.calibration.estimate import detect_chessboard
from go_store_nodes.core.calibration.targets import ChessboardTarget
from go_store_nodes.core.sim.render import BOARD_THICKNESS_M, FloorTarget, Renderer
from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.transforms import rotation_angle_rad, rotation_from_rpy, Transform

TARGET = ChessboardTarget(cols=9, rows=6, square_m=0.1)
CAPTURE_SCALE = 2.0  # colour captured at 848x480


def _rectangle_inside(corners, rectangles):
    return all(any(x0 <= x <= x1 and y0 <= y <= y1 for x0, x1, y0, y1 in rectangles)
               for x, y in corners)


def _rectangles_overlap(a, b):
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _footprints(store):
    """Each shelf's map rectangle (x0, x1, y0, y1) and height."""
    result = []
    for shelf in store.shelves:
        length, depth, height = shelf.size_m
        corners = shelf.t_map_shelf.apply(np.array(
            [[-length / 2, 0, 0], [length / 2, 0, 0], [-length / 2, depth, 0],
             [length / 2, depth, 0]]))
        result.append(((corners[:, 0].min(), corners[:, 0].max(), corners[:, 1].min(),
                        corners[:, 1].max()), height))
    return result


def _view_centre(camera):
    """Where the colour optical axis meets the floor (x, y): under a tilted camera too."""
    t = camera.t_map_color
    axis = t.rotation[:, 2]
    reach = -t.translation[2] / axis[2]
    return tuple(float(v) for v in t.translation[:2] + reach * axis[:2])


def _candidate_boards(store, camera):
    """Physically possible board placements in the camera's view, most central first."""
    footprints = _footprints(store)
    width, depth = store.size_m
    cx, cy = _view_centre(camera)
    centres = [(cx + dx, cy + dy, 0.0) for dx in (0.0, 0.4, -0.4, 0.8, -0.8)
               for dy in (0.0, -0.35, 0.35, -0.7, 0.7)]
    for shelf in store.shelves:  # back edge: the middle of a back-to-back island's top
        x, y, _ = shelf.t_map_shelf.apply([0.0, shelf.size_m[1], 0.0])
        centres.append((float(x), float(y), shelf.size_m[2]))
    centres.sort(key=lambda c: math.hypot(c[0] - cx, c[1] - cy))
    outline_w = (TARGET.cols + 1) * TARGET.square_m
    outline_h = (TARGET.rows + 1) * TARGET.square_m
    for x, y, z in centres:
        for yaw in (0.0, 180.0):
            half = (outline_w / 2, outline_h / 2)
            corners = [(x + sx * half[0], y + sy * half[1]) for sx in (-1, 1) for sy in (-1, 1)]
            outline = (x - half[0], x + half[0], y - half[1], y + half[1])
            if not _rectangle_inside(corners, [(0.0, width, 0.0, depth)]):
                continue  # the board lies inside the walls
            if z == 0.0 and any(_rectangles_overlap(outline, r) for r, _ in footprints):
                continue  # a board cannot lie under a shelf
            if z > 0.0 and not _rectangle_inside(corners, [r for r, h in footprints if h == z]):
                continue  # on a shelf top, the whole board must lie on top
            yaw_rad = math.radians(yaw)
            ax = np.array([math.cos(yaw_rad), math.sin(yaw_rad)])
            ay = np.array([math.sin(yaw_rad), -math.cos(yaw_rad)])
            board_w = (TARGET.cols - 1) * TARGET.square_m
            board_h = (TARGET.rows - 1) * TARGET.square_m
            origin = np.array([x, y]) - ax * board_w / 2 - ay * board_h / 2
            yield FloorTarget.on_floor(TARGET.cols, TARGET.rows, TARGET.square_m,
                                       float(origin[0]), float(origin[1]), yaw,
                                       z + BOARD_THICKNESS_M), yaw


@pytest.fixture(scope='module')
def captured(tmp_path_factory, store_path):
    """Render a calibration session with the simulator, with a store copy."""
    folder = tmp_path_factory.mktemp('calibration')
    store_copy = folder / 'store.yaml'
    shutil.copy(store_path, store_copy)
    store = load_store_description(store_copy)
    session = folder / 'session'
    session.mkdir()
    colour_renderer = Renderer(store, image_scale=CAPTURE_SCALE, seed=7)
    depth_renderer = Renderer(store, image_scale=1.0, seed=7)
    placements, images = [], []
    for number, camera in enumerate(store.cameras):
        stamp_ns = 1_700_000_000 * 10**9 + number * 10**9
        depth, _ = depth_renderer.render(camera.camera_id, (), stamp_ns)
        chosen = 0
        for board, yaw in _candidate_boards(store, camera):
            _, color = colour_renderer.render(camera.camera_id, (), stamp_ns + chosen + 1,
                                              extra=(board,))
            if not detect_chessboard(color, TARGET).found:
                continue  # out of view or hidden by a shelf: the integrator moves the board
            name = f'{camera.camera_id}_P{chosen}'
            x, y, z = board.t_map_board.translation
            placements.append({'id': name, 'x_m': float(x), 'y_m': float(y), 'z_m': float(z),
                               'yaw_deg': yaw})
            cv2.imwrite(str(session / f'{name}.png'), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(session / f'{name}_depth.png'), depth)
            images.append({'camera': camera.camera_id, 'placement': name,
                           'color': f'{name}.png', 'depth': f'{name}_depth.png'})
            chosen += 1
            if chosen == 2:
                break
        assert chosen == 2, f'no two board placements visible from {camera.camera_id}'
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
    truth, store_copy, session = captured
    data = yaml.safe_load(store_copy.read_text())
    # cam_08 looks west, so a tilt about map x turns it about its line of sight: the floor
    # it expects leans without moving under the middle of its view. (A camera looking
    # north, as cam_09 over the entrance does, would read that tilt partly as height.)
    high, tilted = truth.camera('cam_02'), truth.camera('cam_08')
    index = {c['id']: i for i, c in enumerate(data['cameras'])}
    data['cameras'][index['cam_02']]['pose']['translation_m'][2] += 0.10  # 10 cm too high
    # Written tilted by a further 2 degrees about map x: the floor it expects leans 2 degrees.
    data['cameras'][index['cam_08']]['pose']['rotation'] = {'matrix': (
        rotation_from_rpy(math.radians(2.0), 0.0, 0.0) @ tilted.t_map_depth.rotation).tolist()}
    wrong = store_copy.parent / 'wrong_store.yaml'
    wrong.write_text(yaml.safe_dump(data))
    assert go_store(['calibrate', str(session), '--store', str(wrong), '--check-depth']) == 1
    printed = capsys.readouterr().out
    assert f'depth check failed for {high.camera_id}, {tilted.camera_id}' in printed
    # Oblique views (30 deg) reach floor 8 m away, where D435 depth is noisy: the fitted
    # floor moves a little less than the fault (measured: 10 cm read as ~9 cm, 2 deg as
    # 1.1 deg), still beyond the limits (3 cm, 1 deg).
    height = re.search(rf'{high.camera_id}: depth check FAILED: floor seen at ([-+.0-9]+) m',
                       printed)
    assert height and 0.07 < float(height.group(1)) < 0.13, printed
    tilt = re.search(rf'{tilted.camera_id}: depth check FAILED: floor seen at ([-+.0-9]+) m '
                     r'\(limit [.0-9]+\) tilted ([.0-9]+) deg', printed)
    assert tilt and abs(float(tilt.group(1))) < 0.03 and 1.0 < float(tilt.group(2)) < 3.0, \
        printed
    assert printed.count('depth check passed') == 2 * (len(truth.cameras) - 2)
    # The true description passes everywhere.
    assert go_store(['calibrate', str(session), '--store', str(store_copy),
                     '--check-depth']) == 0


def test_a_camera_that_never_sees_the_target_leaves_the_calibration_untouched(
        captured, tmp_path, capsys):
    truth, store_copy, session = captured
    blind_id = truth.cameras[2].camera_id
    blind = tmp_path / 'session'
    shutil.copytree(session, blind)
    for name in (f'{blind_id}_P0', f'{blind_id}_P1'):
        cv2.imwrite(str(blind / f'{name}.png'), np.full((480, 848, 3), 170, np.uint8))
    out = tmp_path / 'extrinsics.yaml'
    out.write_text('cameras: {}\n')
    assert go_store(['calibrate', str(blind), '--store', str(store_copy),
                     '--out', str(out)]) == 2
    captured_err = capsys.readouterr()
    assert blind_id in captured_err.out and 'existing calibration is left untouched' in \
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
