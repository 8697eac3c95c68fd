"""Extrinsic calibration of ceiling cameras in the store's map frame, from target images.

Typical use::

    target = ChessboardTarget(cols=9, rows=6, square_m=0.1)
    placements = [BoardPlacement.on_floor('P1', x_m=1.0, y_m=2.0, yaw_deg=0.0)]
    observations = [observe(image, 'cam_01', 'img_001', 'P1', target), ...]
    result = calibrate({'cam_01': camera_model}, observations, placements, target)
    result.cameras['cam_01'].map_from_camera  # T_map_camera, optical frame
    check_floor(depth_mm, camera_model, result.cameras['cam_01'].map_from_camera)
"""

from .depth_check import (
    back_project,
    check_floor,
    DepthCheckConfig,
    DepthCheckResult,
    fit_floor_plane,
    render_floor_depth,
)
from .estimate import (
    aruco_available,
    BoardPose,
    calibrate_intrinsics,
    CalibrationError,
    CalibrationIssue,
    CameraModel,
    detect_charuco,
    detect_chessboard,
    detect_target,
    Detection,
    DetectionConfig,
    estimate_board_pose,
    IntrinsicsResult,
    ISSUE_KINDS,
    map_from_camera_from_view,
    Observation,
    observe,
    reprojection_errors_px,
)
from .refine import (
    average_relative_pose,
    calibrate,
    CalibrationConfig,
    CalibrationResult,
    CameraCalibration,
    refine,
    relative_pose,
)
from .targets import (
    average_transforms,
    BoardPlacement,
    CharucoTarget,
    ChessboardTarget,
    invert_transform,
    make_transform,
    rotation_angle_deg,
    rvec_tvec_from_transform,
    Target,
    transform_from_rvec_tvec,
    transform_points,
    xyz_quaternion_from_transform,
)

__all__ = [
    'aruco_available', 'average_relative_pose', 'average_transforms', 'back_project',
    'BoardPlacement', 'BoardPose', 'calibrate', 'calibrate_intrinsics', 'CalibrationConfig',
    'CalibrationError', 'CalibrationIssue', 'CalibrationResult', 'CameraCalibration',
    'CameraModel', 'ChessboardTarget', 'CharucoTarget', 'check_floor', 'DepthCheckConfig',
    'DepthCheckResult', 'detect_charuco', 'detect_chessboard', 'detect_target', 'Detection',
    'DetectionConfig', 'estimate_board_pose', 'fit_floor_plane', 'IntrinsicsResult',
    'invert_transform', 'ISSUE_KINDS', 'make_transform', 'map_from_camera_from_view',
    'Observation', 'observe', 'refine', 'relative_pose', 'render_floor_depth',
    'reprojection_errors_px', 'rotation_angle_deg', 'rvec_tvec_from_transform', 'Target',
    'transform_from_rvec_tvec', 'transform_points', 'xyz_quaternion_from_transform',
]
