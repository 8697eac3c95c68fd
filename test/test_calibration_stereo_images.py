"""Calibration on real images: OpenCV's stereo chessboard set, checked against stereoCalibrate.

The images (left01..14.jpg, right01..14.jpg, 9x6 inner corners) ship in Debian's opencv-doc
package under usr/share/doc/opencv-doc/examples/data/. Point GO_STORE_OPENCV_DATA at that
directory; without it these tests are skipped.
"""

import gzip
import os
from pathlib import Path
import re

import numpy as np
import pytest

MISSING = 'needs opencv-python-headless and scipy, which requirements.txt does not list yet'
pytest.importorskip('cv2', reason=MISSING)
pytest.importorskip('scipy', reason=MISSING)

import cv2  # noqa: E402

from go_store_nodes.core.calibration import (  # noqa: E402
    average_relative_pose,
    BoardPlacement,
    calibrate,
    calibrate_intrinsics,
    CalibrationConfig,
    CameraModel,
    ChessboardTarget,
    detect_chessboard,
    Detection,
    estimate_board_pose,
    Observation,
    relative_pose,
    rotation_angle_deg,
)

ENV = 'GO_STORE_OPENCV_DATA'
# The square size of this set is not published; lengths come out in these units.
TARGET = ChessboardTarget(cols=9, rows=6, square_m=0.025)
BASELINE_TOLERANCE = 0.01
ROTATION_TOLERANCE_DEG = 0.5


def read_image(path: Path) -> np.ndarray:
    """Read a gray image, also when Debian shipped it gzip-compressed (.jpg.gz)."""
    if path.suffix == '.gz':
        data = np.frombuffer(gzip.decompress(path.read_bytes()), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    else:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f'cannot read {path}'
    return np.asarray(image)


@pytest.fixture(scope='module')
def stereo_set():
    """Detect the board in every left/right pair; return {number: (left, right)}, size."""
    where = os.environ.get(ENV)
    if not where:
        pytest.skip(f'{ENV} is not set: point it at opencv-doc examples/data (left01.jpg ...)')
    files: dict[str, dict[str, Path]] = {}
    for path in sorted(Path(where).iterdir()):
        m = re.fullmatch(r'(left|right)(\d\d)\.jpg(\.gz)?', path.name)
        if m:
            files.setdefault(m.group(2), {})[m.group(1)] = path
    pairs = {k: v for k, v in files.items() if set(v) == {'left', 'right'}}
    if len(pairs) < 8:
        pytest.fail(f'{ENV}={where} holds {len(pairs)} left/right pairs, expected 13 '
                    '(left01.jpg .. right14.jpg from opencv-doc)')
    detections = {}
    size = None
    for number, paths in sorted(pairs.items()):
        images = {side: read_image(p) for side, p in paths.items()}
        size = images['left'].shape[::-1]
        detections[number] = (detect_chessboard(images['left'], TARGET),
                              detect_chessboard(images['right'], TARGET))
    return detections, size


def intrinsics(name: str, dets: list[Detection], size) -> CameraModel:
    """Calibrate one camera's intrinsics from its detections with the tool."""
    guess = CameraModel.from_fov(name, size[0], size[1], 60.0)
    result = calibrate_intrinsics(guess, dets, TARGET, use_guess=False)
    print(f'{name}: intrinsics from {result.views_used} images, rms {result.rms_px:.3f} px, '
          f'fx {result.camera.camera_matrix[0, 0]:.1f}')
    assert result.rms_px < 0.5
    return result.camera


@pytest.fixture(scope='module')
def calibrated(stereo_set):
    """Intrinsics per camera, both-seen pairs, and stereoCalibrate's answer as the reference."""
    detections, size = stereo_set
    both = {k: v for k, v in detections.items() if v[0].found and v[1].found}
    print(f'\n{len(both)} of {len(detections)} pairs have the board in both images')
    assert len(both) >= 10
    left = intrinsics('left', [d[0] for d in detections.values()], size)
    right = intrinsics('right', [d[1] for d in detections.values()], size)
    obj = [TARGET.object_points().astype(np.float32) for _ in both]
    img_l = [d[0].image_points.astype(np.float32).reshape(-1, 1, 2) for d in both.values()]
    img_r = [d[1].image_points.astype(np.float32).reshape(-1, 1, 2) for d in both.values()]
    rms, _, _, _, _, r_ref, t_ref, _, _ = cv2.stereoCalibrate(
        obj, img_l, img_r, np.array(left.camera_matrix), np.array(left.dist_coeffs),
        np.array(right.camera_matrix), np.array(right.dist_coeffs), size,
        flags=cv2.CALIB_FIX_INTRINSIC,
        criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-9))
    reference = np.eye(4)
    reference[:3, :3] = r_ref
    reference[:3, 3] = np.ravel(t_ref)
    print(f'stereoCalibrate (fixed intrinsics): rms {rms:.3f} px, baseline '
          f'{np.linalg.norm(t_ref) / TARGET.square_m:.4f} squares')
    return left, right, both, reference


def compare(name: str, right_from_left: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Print and return (relative baseline error, rotation difference in degrees)."""
    base = float(np.linalg.norm(right_from_left[:3, 3]))
    base_ref = float(np.linalg.norm(reference[:3, 3]))
    rel = abs(base - base_ref) / base_ref
    rot = rotation_angle_deg(right_from_left[:3, :3].T @ reference[:3, :3])
    direction = float(np.degrees(np.arccos(np.clip(
        right_from_left[:3, 3] @ reference[:3, 3] / (base * base_ref), -1.0, 1.0))))
    print(f'{name}: baseline {base / TARGET.square_m:.4f} vs {base_ref / TARGET.square_m:.4f} '
          f'squares ({rel * 100:.3f} %), rotation differs by {rot:.4f} deg, baseline '
          f'direction by {direction:.4f} deg')
    return rel, rot


def test_joint_refinement_agrees_with_stereo_calibrate(calibrated):
    """Each pair is a placement seen by both cameras; the first one defines the map."""
    left, right, both, reference = calibrated
    names = sorted(both)
    placements = {f'pair{k}': BoardPlacement(f'pair{k}', np.eye(4), fixed=(k == names[0]))
                  for k in names}
    observations = []
    for k in names:
        observations.append(Observation('left', f'left{k}', f'pair{k}', both[k][0]))
        observations.append(Observation('right', f'right{k}', f'pair{k}', both[k][1]))
    result = calibrate({'left': left, 'right': right}, observations, placements, TARGET)
    print(result.summary())
    assert result.ok, result.issues
    for cam in ('left', 'right'):
        assert result.cameras[cam].views_used == len(names)
        assert result.cameras[cam].rms_px < 0.5
    rel, rot = compare('joint refinement', relative_pose(result, 'left', 'right'), reference)
    assert rel < BASELINE_TOLERANCE
    assert rot < ROTATION_TOLERANCE_DEG


def test_robust_average_of_per_pair_poses_agrees_with_stereo_calibrate(calibrated):
    left, right, both, reference = calibrated
    poses_l = [estimate_board_pose(left, d[0], TARGET).camera_from_board for d in both.values()]
    poses_r = [estimate_board_pose(right, d[1], TARGET).camera_from_board
               for d in both.values()]
    rel, rot = compare('robust average over pairs', average_relative_pose(poses_l, poses_r),
                       reference)
    assert rel < BASELINE_TOLERANCE
    assert rot < ROTATION_TOLERANCE_DEG


def test_intrinsics_estimated_inside_calibrate(stereo_set):
    """estimate_intrinsics=True starts from a rough guess and still fits to sub-pixel."""
    detections, size = stereo_set
    cams = {side: CameraModel.from_fov(side, size[0], size[1], 55.0)
            for side in ('left', 'right')}
    names = sorted(detections)
    placements = {f'pair{k}': BoardPlacement(f'pair{k}', np.eye(4), fixed=(k == names[0]))
                  for k in names}
    observations = [Observation(side, f'{side}{k}', f'pair{k}', detections[k][i])
                    for k in names for i, side in enumerate(('left', 'right'))]
    result = calibrate(cams, observations, placements, TARGET,
                       CalibrationConfig(estimate_intrinsics=True))
    assert result.ok, result.issues
    for side in ('left', 'right'):
        cal = result.cameras[side]
        assert cal.intrinsics_rms_px is not None and cal.intrinsics_rms_px < 0.5
        assert cal.rms_px < 0.5
