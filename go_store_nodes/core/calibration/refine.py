"""Joint refinement (bundle adjustment) of camera poses in the map, and ``calibrate``.

Parameters are each camera's pose in the map and, optionally, the poses of placements that
are not fixed; the cost is the reprojection error of every detected corner, with a robust
loss. Fixed placements anchor the map frame.
"""

from collections import defaultdict
from dataclasses import dataclass, field
import math
from typing import get_args, Literal, Mapping, Optional, Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix

from .estimate import (
    BoardPose,
    calibrate_intrinsics,
    CalibrationError,
    CalibrationIssue,
    CameraModel,
    estimate_board_pose,
    map_from_camera_from_view,
    Observation,
)
from .targets import (
    average_transforms,
    BoardPlacement,
    FloatArray,
    invert_transform,
    rotation_from_rvec,
    Target,
)

LossName = Literal['linear', 'huber', 'soft_l1', 'cauchy', 'arctan']
_LOSSES = get_args(LossName)


@dataclass(frozen=True)
class CalibrationConfig:
    """Options of ``calibrate``."""

    # A camera needs the target in at least this many images.
    min_views_per_camera: int = 2
    # Robust loss of scipy.optimize.least_squares and its scale (pixels).
    loss: LossName = 'soft_l1'
    loss_scale_px: float = 1.0
    max_function_evals: int = 200
    # Refine placements whose ``fixed`` is False (else they are used as given).
    refine_placements: bool = True
    # Views whose RMS error after refinement exceeds this are dropped and reported.
    view_outlier_px: float = 3.0
    drop_outlier_views: bool = True
    # A camera whose RMS error after refinement exceeds this is reported (warning).
    max_rms_px: float = 1.0
    # Re-estimate each camera's intrinsics from its views (cv2.calibrateCamera) first.
    estimate_intrinsics: bool = False

    def __post_init__(self) -> None:
        """Validate the options."""
        if self.min_views_per_camera < 1:
            raise ValueError('min_views_per_camera must be at least 1')
        if self.loss not in _LOSSES:
            raise ValueError(f'loss must be one of {_LOSSES}, got {self.loss!r}')
        if not (math.isfinite(self.loss_scale_px) and self.loss_scale_px > 0.0):
            raise ValueError('loss_scale_px must be positive')
        if self.max_function_evals < 1:
            raise ValueError('max_function_evals must be at least 1')
        if not (math.isfinite(self.view_outlier_px) and self.view_outlier_px > 0.0):
            raise ValueError('view_outlier_px must be positive')
        if not (math.isfinite(self.max_rms_px) and self.max_rms_px > 0.0):
            raise ValueError('max_rms_px must be positive')


@dataclass(frozen=True, eq=False)
class CameraCalibration:
    """The calibrated pose of one camera and how well it fits its images."""

    name: str
    map_from_camera: FloatArray
    rms_px: float
    max_error_px: float
    views_used: int
    views_total: int
    camera: CameraModel
    view_rms_px: Mapping[str, float] = field(default_factory=dict)
    intrinsics_rms_px: Optional[float] = None


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of ``calibrate``: calibrated cameras, placements used, and issues found."""

    cameras: Mapping[str, CameraCalibration]
    placements: Mapping[str, BoardPlacement]
    issues: Sequence[CalibrationIssue]
    cost: float = 0.0

    @property
    def errors(self) -> list[CalibrationIssue]:
        """Return the issues of severity 'error' (cameras left uncalibrated)."""
        return [i for i in self.issues if i.severity == 'error']

    @property
    def ok(self) -> bool:
        """Tell whether every camera was calibrated."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise CalibrationError if any camera could not be calibrated."""
        if self.errors:
            raise CalibrationError(self.errors)

    def summary(self) -> str:
        """Return a human-readable table of per-camera results and issues."""
        lines = [f'{"camera":<14} {"x_m":>8} {"y_m":>8} {"z_m":>8} {"rms_px":>8} '
                 f'{"max_px":>7}  views']
        for name in sorted(self.cameras):
            c = self.cameras[name]
            x, y, z = c.map_from_camera[:3, 3]
            lines.append(f'{name:<14} {x:8.3f} {y:8.3f} {z:8.3f} {c.rms_px:8.3f} '
                         f'{c.max_error_px:7.2f}  {c.views_used}/{c.views_total}')
        for issue in self.issues:
            lines.append(f'{issue.severity}: {issue.message}')
        return '\n'.join(lines)


@dataclass(frozen=True, eq=False)
class _View:
    """A usable view inside the refinement."""

    obs: Observation
    pose: BoardPose


def _perturb(base: FloatArray, delta: FloatArray) -> FloatArray:
    """Apply a 6-vector (rotation vector, translation) to a pose, in the parent frame."""
    out = np.eye(4)
    out[:3, :3] = rotation_from_rvec(delta[:3]) @ base[:3, :3]
    out[:3, 3] = base[:3, 3] + delta[3:]
    return out


def refine(
    cameras: Mapping[str, CameraModel],
    views: Sequence[Observation],
    target: Target,
    placements: Mapping[str, BoardPlacement],
    initial_map_from_camera: Mapping[str, FloatArray],
    config: CalibrationConfig = CalibrationConfig(),
) -> tuple[dict[str, FloatArray], dict[str, BoardPlacement], dict[int, FloatArray], float]:
    """Bundle-adjust camera poses (and free placements) over all found views.

    Every camera and placement named by ``views`` needs a starting pose (in
    ``initial_map_from_camera`` and ``placements``). Returns the refined T_map_camera per
    camera, the placements (refined where free), the per-corner errors in pixels for each
    view index, and the final robust cost.
    """
    cam_names = sorted({obs.camera for obs in views})
    free = sorted({obs.placement for obs in views
                   if config.refine_placements and not placements[obs.placement].fixed})
    col_of_cam = {name: 6 * i for i, name in enumerate(cam_names)}
    col_of_place = {name: 6 * (len(cam_names) + i) for i, name in enumerate(free)}
    n_params = 6 * (len(cam_names) + len(free))
    obj_all = target.object_points()
    objs = [np.ascontiguousarray(obj_all[obs.detection.point_ids]) for obs in views]
    imgs = [obs.detection.image_points for obs in views]
    rows = np.cumsum([0] + [2 * len(o) for o in objs])

    sparsity = lil_matrix((int(rows[-1]), n_params), dtype=int)
    for v, obs in enumerate(views):
        c0 = col_of_cam[obs.camera]
        sparsity[rows[v]:rows[v + 1], c0:c0 + 6] = 1
        if obs.placement in col_of_place:
            p0 = col_of_place[obs.placement]
            sparsity[rows[v]:rows[v + 1], p0:p0 + 6] = 1

    def poses(x: FloatArray) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
        cams = {n: _perturb(initial_map_from_camera[n], x[col_of_cam[n]:col_of_cam[n] + 6])
                for n in cam_names}
        boards = {n: p.map_from_board for n, p in placements.items()}
        for n in free:
            boards[n] = _perturb(placements[n].map_from_board,
                                 x[col_of_place[n]:col_of_place[n] + 6])
        return cams, boards

    def residuals(x: FloatArray) -> FloatArray:
        cams, boards = poses(x)
        out = np.empty(int(rows[-1]))
        for v, obs in enumerate(views):
            camera_from_board = invert_transform(cams[obs.camera]) @ boards[obs.placement]
            proj = cameras[obs.camera].project(camera_from_board, objs[v])
            out[rows[v]:rows[v + 1]] = (proj - imgs[v]).ravel()
        return out

    solution = least_squares(
        residuals, np.zeros(n_params), jac_sparsity=sparsity, loss=config.loss,
        f_scale=config.loss_scale_px, x_scale='jac', method='trf',
        max_nfev=config.max_function_evals)
    cams, boards = poses(solution.x)
    res = residuals(solution.x)
    errors = {v: np.hypot(res[rows[v]:rows[v + 1]:2], res[rows[v] + 1:rows[v + 1]:2])
              for v in range(len(views))}
    refined_places = {n: (p.with_pose(boards[n]) if n in free else p)
                      for n, p in placements.items()}
    return cams, refined_places, errors, float(solution.cost)


def _outlier_views(
    views: Sequence[_View], view_rms: Mapping[int, float], config: CalibrationConfig,
) -> set[int]:
    """Pick views above ``view_outlier_px``, worst first, keeping each camera's minimum."""
    out: set[int] = set()
    for name in sorted({views[i].obs.camera for i in view_rms}):
        mine = [i for i in view_rms if views[i].obs.camera == name]
        bad = sorted((i for i in mine if view_rms[i] > config.view_outlier_px),
                     key=lambda i: -view_rms[i])
        spare = len(mine) - config.min_views_per_camera
        out.update(bad[:max(0, spare)])
    return out


def _initial_poses(
    views: Sequence[_View], placements: Mapping[str, BoardPlacement], refine_free: bool,
) -> tuple[dict[str, FloatArray], dict[str, BoardPlacement], set[str]]:
    """Initialise camera and free-placement poses by walking out from fixed placements.

    Returns initial T_map_camera for cameras linked to a fixed placement, placements with
    free ones re-estimated from those cameras, and the names of unanchored cameras.
    """
    known_places = {n: p for n, p in placements.items() if p.fixed or not refine_free}
    known_cams: dict[str, FloatArray] = {}
    all_cams = {v.obs.camera for v in views}
    changed = True
    while changed:
        changed = False
        by_cam: dict[str, list[FloatArray]] = defaultdict(list)
        for v in views:
            if v.obs.camera not in known_cams and v.obs.placement in known_places:
                by_cam[v.obs.camera].append(map_from_camera_from_view(
                    v.pose.camera_from_board, known_places[v.obs.placement]))
        for cam, guesses in by_cam.items():
            known_cams[cam] = average_transforms(guesses)
            changed = True
        by_place: dict[str, list[FloatArray]] = defaultdict(list)
        for v in views:
            if v.obs.placement not in known_places and v.obs.camera in known_cams:
                by_place[v.obs.placement].append(
                    known_cams[v.obs.camera] @ v.pose.camera_from_board)
        for place, guesses in by_place.items():
            known_places[place] = placements[place].with_pose(average_transforms(guesses))
            changed = True
    out_places = dict(placements)
    out_places.update(known_places)
    return known_cams, out_places, all_cams - set(known_cams)


def calibrate(
    cameras: Mapping[str, CameraModel],
    observations: Sequence[Observation],
    placements: Mapping[str, BoardPlacement] | Sequence[BoardPlacement],
    target: Target,
    config: CalibrationConfig = CalibrationConfig(),
) -> CalibrationResult:
    """Find every camera's pose T_map_camera from images of a target at known placements.

    ``cameras`` are keyed by camera name (their intrinsics, as from CameraInfo);
    ``observations`` hold one detection per image (found or not); ``placements`` say where
    the target lay. Cameras that cannot be calibrated are left out of ``result.cameras`` and
    named in ``result.issues`` with what to do; this function does not raise for them (call
    ``result.raise_for_errors()`` for that).
    """
    if not isinstance(placements, Mapping):
        placements = {p.name: p for p in placements}
    issues: list[CalibrationIssue] = []
    by_cam: dict[str, list[Observation]] = {name: [] for name in cameras}
    for obs in observations:
        if obs.camera not in cameras:
            issues.append(CalibrationIssue(
                obs.camera, 'unknown_camera', f'image {obs.image_id} is from camera '
                f'{obs.camera}, which has no intrinsics: add {obs.camera} to the camera list',
                'warning', obs.image_id))
            continue
        if obs.placement not in placements:
            issues.append(CalibrationIssue(
                obs.camera, 'unknown_placement', f'{obs.camera} image {obs.image_id} names '
                f'placement {obs.placement}, which is not defined: add it or fix the name',
                'warning', obs.image_id))
            continue
        by_cam[obs.camera].append(obs)

    models = dict(cameras)
    intrinsics_rms: dict[str, float] = {}
    views: list[_View] = []
    totals: dict[str, int] = {}
    for name in sorted(by_cam):
        obs_list = by_cam[name]
        totals[name] = len(obs_list)
        found = [o for o in obs_list if o.detection.found]
        if not obs_list:
            issues.append(CalibrationIssue(
                name, 'no_images', f'{name} has no images: place the board under {name} '
                'and capture again'))
            continue
        if not found:
            reasons = sorted({o.detection.reason for o in obs_list})
            issues.append(CalibrationIssue(
                name, 'never_saw_target', f'{name} never saw the target in 0 of '
                f'{len(obs_list)} images: move the board under {name} and capture again '
                f'({"; ".join(reasons)})'))
            continue
        if config.estimate_intrinsics:
            try:
                intr = calibrate_intrinsics(models[name], [o.detection for o in found], target)
                models[name] = intr.camera
                intrinsics_rms[name] = intr.rms_px
            except ValueError as exc:
                issues.append(CalibrationIssue(
                    name, 'intrinsics_failed', f'{exc}: kept the given intrinsics of {name}',
                    'warning'))
        cam_views: list[_View] = []
        for o in found:
            try:
                cam_views.append(_View(o, estimate_board_pose(models[name], o.detection, target)))
            except ValueError as exc:
                issues.append(CalibrationIssue(
                    name, 'pose_failed', f'{exc} (image {o.image_id}): image not used',
                    'warning', o.image_id))
        if len(cam_views) < config.min_views_per_camera:
            issues.append(CalibrationIssue(
                name, 'too_few_views', f'{name} saw the target in only {len(cam_views)} of '
                f'{len(obs_list)} images, needs {config.min_views_per_camera}: put the board '
                f'on another mark under {name} and capture again'))
            continue
        views.extend(cam_views)

    init_cams, init_places, unanchored = _initial_poses(
        views, placements, config.refine_placements)
    for name in sorted(unanchored):
        seen = sorted({v.obs.placement for v in views if v.obs.camera == name})
        issues.append(CalibrationIssue(
            name, 'not_anchored', f'{name} only saw placements {", ".join(seen)}, which are '
            f'not surveyed (fixed) and not linked to one through other cameras: put the board '
            f'on a surveyed mark under {name} and capture again'))
    views = [v for v in views if v.obs.camera in init_cams]
    if not views:
        return CalibrationResult({}, dict(placements), issues)

    dropped: set[int] = set()
    for attempt in range(2):
        used_idx = [i for i in range(len(views)) if i not in dropped]
        cams, places, errors, cost = refine(
            models, [views[i].obs for i in used_idx], target, init_places, init_cams, config)
        view_rms = {i: float(np.sqrt(np.mean(errors[k] ** 2))) for k, i in enumerate(used_idx)}
        if attempt > 0 or not config.drop_outlier_views:
            break
        newly = _outlier_views(views, view_rms, config)
        if not newly:
            break
        for i in sorted(newly):
            v = views[i]
            issues.append(CalibrationIssue(
                v.obs.camera, 'view_outlier', f'{v.obs.camera} image {v.obs.image_id} is '
                f'{view_rms[i]:.1f} px off the others: the board was probably not on mark '
                f'{v.obs.placement} (or moved): image not used', 'warning', v.obs.image_id))
        dropped |= newly
        init_cams, init_places = cams, places

    results: dict[str, CameraCalibration] = {}
    for name in sorted(cams):
        idx = [k for k, i in enumerate(used_idx) if views[i].obs.camera == name]
        errs = np.concatenate([errors[k] for k in idx])
        rms = float(np.sqrt(np.mean(errs ** 2)))
        results[name] = CameraCalibration(
            name, cams[name], rms, float(errs.max()), len(idx), totals[name], models[name],
            {views[used_idx[k]].obs.image_id: float(np.sqrt(np.mean(errors[k] ** 2)))
             for k in idx},
            intrinsics_rms.get(name))
        for k in idx:
            i = used_idx[k]
            if view_rms[i] > config.view_outlier_px:
                v = views[i]
                issues.append(CalibrationIssue(
                    name, 'view_outlier', f'{name} image {v.obs.image_id} is '
                    f'{view_rms[i]:.1f} px off the others: check that the board was on mark '
                    f'{v.obs.placement}', 'warning', v.obs.image_id))
        if rms > config.max_rms_px:
            issues.append(CalibrationIssue(
                name, 'high_reprojection_error', f'{name} fits its images with {rms:.2f} px '
                f'RMS (limit {config.max_rms_px:.2f}): check its intrinsics, that the board '
                'is flat and on its marks, and the placement survey', 'warning'))
    return CalibrationResult(results, places, issues, cost)


def relative_pose(
    result: CalibrationResult, from_camera: str, to_camera: str,
) -> FloatArray:
    """Return T_to_from: the pose of ``from_camera`` in ``to_camera``'s frame."""
    a = result.cameras[from_camera].map_from_camera
    b = result.cameras[to_camera].map_from_camera
    return np.asarray(invert_transform(b) @ a)


def average_relative_pose(
    camera_from_board_a: Sequence[FloatArray], camera_from_board_b: Sequence[FloatArray],
) -> FloatArray:
    """Average T_b_a over view pairs in which both cameras saw the same board (robustly)."""
    if len(camera_from_board_a) != len(camera_from_board_b) or not camera_from_board_a:
        raise ValueError('need the same, non-zero number of board poses for both cameras')
    pairs = zip(camera_from_board_a, camera_from_board_b, strict=True)
    return average_transforms([b @ invert_transform(a) for a, b in pairs])

