"""Camera coverage of a store: which floor and which bin fronts the ceiling cameras see.

Two figures decide whether a camera layout can work:

- **floor**: the share of the free floor (inside the walls, not under a shelf) over which
  a point at a given height above the floor (1.8 m: heads, 1.5 m: shoulders) is seen by
  at least one, and by at least two, *depth* cameras. A point is seen by a camera when it
  lies in front of the depth optical frame, projects inside the depth image, its depth
  (z in the optical frame, as RealSense reports it) is within the model's
  ``depth_range_m``, and the straight line from the camera to it crosses no shelf.
- **bin fronts**: per bin, the share of its front face (the opening a hand passes through
  to take an item, ``BinFaceConfig.offset_m`` in front of the shelf front, spanning the
  bin's width and height) seen by at least one, and by at least two, *colour* cameras
  (colour intrinsics, colour optical frame = depth pose composed with ``depth_to_color``;
  colour has no range limit, only the image bounds and the shelves).

Shelves occlude as solid boxes of their ``size_m`` in their shelf frame (x along the front
centred on the origin, y from the front into the shelf, z up from the floor): the outline
the URDF draws and the renderer's carcass fills. People do not occlude here.
Everything is in ``map`` metres; no ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .store import Camera, Intrinsics, Shelf, StoreDescription
from .transforms import Transform

FloatArray = NDArray[np.float64]

# A ray must pass this far inside a shelf box to count as blocked, so points lying on a
# shelf surface (or a camera grazing an edge) are not lost to rounding.
_OCCLUSION_EPS_M = 1e-6


@dataclass(frozen=True)
class CoverageConfig:
    """How finely coverage is sampled and at which heights the floor figure is taken.

    ``cell_m``: floor grid pitch (m); a cell counts as free floor when its centre is.
    ``heights_m``: heights above the floor (m) at which the floor figure is computed.
    ``face_step_m``: sample pitch on each bin front face (m).
    ``face_offset_m``: how far in front of the shelf front the face is taken (m); the hand
    passes there, and it keeps the samples off the shelf box.
    ``gate_near_m``: a gate zone counts as seen where a depth camera nearer than this sees
    it at head height. A stereo camera's depth error grows with the square of the range
    (a D435 at 424x240: about 15 cm RMS at 4.5 m, 37 cm at 7 m), so a far, tilted view
    of the door finds people late or not at all, and the gate links visits at the door.
    """

    cell_m: float = 0.05
    heights_m: tuple[float, ...] = (1.5, 1.8)
    face_step_m: float = 0.05
    face_offset_m: float = 0.02
    gate_near_m: float = 4.5

    def __post_init__(self) -> None:
        """Validate the numbers."""
        if not (math.isfinite(self.cell_m) and 0.005 <= self.cell_m <= 1.0):
            raise ValueError(f'cell_m must be in [0.005, 1.0] m, got {self.cell_m}')
        if not self.heights_m:
            raise ValueError('heights_m must name at least one height')
        for height in self.heights_m:
            if not (math.isfinite(height) and 0.0 <= height <= 10.0):
                raise ValueError(f'heights_m must be in [0, 10] m, got {height}')
        if not (math.isfinite(self.face_step_m) and 0.005 <= self.face_step_m <= 0.5):
            raise ValueError(f'face_step_m must be in [0.005, 0.5] m, got {self.face_step_m}')
        if not (math.isfinite(self.face_offset_m) and 0.0 < self.face_offset_m <= 0.5):
            raise ValueError(f'face_offset_m must be in (0, 0.5] m, got {self.face_offset_m}')
        if not (math.isfinite(self.gate_near_m) and 0.5 <= self.gate_near_m <= 50.0):
            raise ValueError(f'gate_near_m must be in [0.5, 50] m, got {self.gate_near_m}')


@dataclass(frozen=True)
class CoverageThresholds:
    """Minimum figures a layout must reach; ``None`` leaves a figure unchecked.

    Floor shares are checked at ``height_m``; bin shares hold for every bin.
    """

    height_m: float = 1.8
    min_floor_1: float | None = None
    min_floor_2: float | None = None
    min_bin_1: float | None = None
    min_bin_2: float | None = None
    min_gate_near: float | None = None

    def __post_init__(self) -> None:
        """Validate the shares (0..1) and the height."""
        if not (math.isfinite(self.height_m) and 0.0 <= self.height_m <= 10.0):
            raise ValueError(f'height_m must be in [0, 10] m, got {self.height_m}')
        for name in ('min_floor_1', 'min_floor_2', 'min_bin_1', 'min_bin_2',
                     'min_gate_near'):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f'{name} must be a share in [0, 1], got {value}')


@dataclass(frozen=True)
class FloorCoverage:
    """Depth-camera coverage of the free floor at one height.

    ``counts[i, j]``: number of depth cameras seeing the point at ``height_m`` over the
    cell centred at x = (j + 0.5) * cell_m, y = (i + 0.5) * cell_m; ``free[i, j]``: the
    cell is free floor.
    """

    height_m: float
    cell_m: float
    counts: NDArray[np.int32]
    free: NDArray[np.bool_]

    def share(self, at_least: int) -> float:
        """Share of free-floor cells seen by at least ``at_least`` cameras."""
        total = int(self.free.sum())
        if total == 0:
            return 0.0
        return float(np.count_nonzero(self.free & (self.counts >= at_least))) / total


@dataclass(frozen=True)
class BinCoverage:
    """Colour-camera coverage of one bin's front face."""

    bin_id: str
    shelf_id: str
    samples: int
    share_1: float
    share_2: float
    cameras: tuple[str, ...]    # colour cameras that see any part of the face


@dataclass(frozen=True)
class GateCoverage:
    """Depth-camera coverage of one gate zone from near cameras (``gate_near_m``).

    ``share_near``: share of the zone's floor cells seen, at every height of the report,
    by a depth camera nearer than ``near_m``; ``cameras``: the near cameras seeing any of it.
    """

    gate_id: str
    kind: str
    near_m: float
    share_near: float
    cameras: tuple[str, ...]


@dataclass(frozen=True)
class CoverageReport:
    """Floor coverage per height, bin-front coverage per bin and gate-zone coverage."""

    store_name: str
    camera_count: int
    floors: tuple[FloorCoverage, ...]
    bins: tuple[BinCoverage, ...]
    gates: tuple[GateCoverage, ...] = ()

    def floor(self, height_m: float) -> FloorCoverage:
        """Return the floor coverage computed at ``height_m``, or raise KeyError."""
        for floor in self.floors:
            if abs(floor.height_m - height_m) < 1e-9:
                return floor
        raise KeyError(f'no floor coverage at {height_m} m; computed: '
                       f'{", ".join(f"{f.height_m:g}" for f in self.floors)}')


def shelf_contains_xy(shelf: Shelf, points_xy: FloatArray) -> NDArray[np.bool_]:
    """Whether floor points (N, 2) in map lie under the shelf's footprint."""
    t_shelf_map = shelf.t_map_shelf.inverse()
    points = np.column_stack([points_xy, np.zeros(len(points_xy))])
    local = t_shelf_map.apply(points)
    length, depth, _ = shelf.size_m
    return ((np.abs(local[:, 0]) <= length / 2.0) & (local[:, 1] >= 0.0)
            & (local[:, 1] <= depth))


def blocked_by_shelves(origin: ArrayLike, points: ArrayLike,
                       shelves: Sequence[Shelf]) -> NDArray[np.bool_]:
    """Whether the segment from ``origin`` to each point (N, 3), map frame, crosses a shelf.

    Slab test in each shelf frame against the solid box x in [-L/2, L/2], y in [0, D],
    z in [0, H]; touching a face or an edge does not block.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    blocked = np.zeros(len(points), dtype=bool)
    for shelf in shelves:
        t_shelf_map = shelf.t_map_shelf.inverse()
        start = t_shelf_map.apply(np.asarray(origin, dtype=np.float64).reshape(1, 3))[0]
        direction = t_shelf_map.apply(points) - start
        length, depth, height = shelf.size_m
        low = np.array([-length / 2.0, 0.0, 0.0]) + _OCCLUSION_EPS_M
        high = np.array([length / 2.0, depth, height]) - _OCCLUSION_EPS_M
        t_enter = np.zeros(len(points))
        t_exit = np.ones(len(points))
        inside = np.ones(len(points), dtype=bool)
        for axis in range(3):
            d = direction[:, axis]
            parallel = np.abs(d) < 1e-12
            # A segment parallel to a slab is inside it for all t or for none.
            inside &= ~parallel | ((start[axis] > low[axis]) & (start[axis] < high[axis]))
            with np.errstate(divide='ignore', invalid='ignore'):
                t0 = (low[axis] - start[axis]) / d
                t1 = (high[axis] - start[axis]) / d
            near = np.where(parallel, -np.inf, np.minimum(t0, t1))
            far = np.where(parallel, np.inf, np.maximum(t0, t1))
            t_enter = np.maximum(t_enter, near)
            t_exit = np.minimum(t_exit, far)
        blocked |= inside & (t_enter < t_exit)
    return blocked


def visible(t_map_optical: Transform, intrinsics: Intrinsics, points: FloatArray,
            depth_range_m: tuple[float, float] | None = None) -> NDArray[np.bool_]:
    """Whether points (N, 3) in map project inside the image of a pinhole camera.

    Pixel centres are integers, so the image spans [-0.5, width - 0.5) in u. With
    ``depth_range_m`` the optical-frame z must lie within [near, far] (m); without it, only
    in front of the camera. Distortion is ignored (the reference models have none).
    """
    local = t_map_optical.inverse().apply(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    z = local[:, 2]
    in_front = z > 1e-9
    safe_z = np.where(in_front, z, 1.0)
    u = intrinsics.fx * local[:, 0] / safe_z + intrinsics.cx
    v = intrinsics.fy * local[:, 1] / safe_z + intrinsics.cy
    seen = (in_front & (u >= -0.5) & (u < intrinsics.width - 0.5)
            & (v >= -0.5) & (v < intrinsics.height - 0.5))
    if depth_range_m is not None:
        seen &= (z >= depth_range_m[0]) & (z <= depth_range_m[1])
    return seen


def _depth_sees(camera: Camera, points: FloatArray,
                shelves: Sequence[Shelf]) -> NDArray[np.bool_]:
    seen = visible(camera.t_map_depth, camera.model.depth, points, camera.model.depth_range_m)
    if seen.any():
        index = np.flatnonzero(seen)
        seen[index] = ~blocked_by_shelves(camera.t_map_depth.translation, points[index],
                                          shelves)
    return seen


def _color_sees(camera: Camera, points: FloatArray,
                shelves: Sequence[Shelf]) -> NDArray[np.bool_]:
    t_map_color = camera.t_map_color
    seen = visible(t_map_color, camera.model.color, points)
    if seen.any():
        index = np.flatnonzero(seen)
        seen[index] = ~blocked_by_shelves(t_map_color.translation, points[index], shelves)
    return seen


def free_floor(store: StoreDescription, cell_m: float) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Cell centres (rows, cols, 2) in map over the store floor, and which are free floor.

    Square cells of ``cell_m`` from the south-west corner; a cell whose centre lies past
    the east or north wall (the size is no multiple of the cell) is not free floor.
    """
    width, depth = store.size_m
    cols = max(1, int(math.ceil(width / cell_m - 1e-9)))
    rows = max(1, int(math.ceil(depth / cell_m - 1e-9)))
    xs = (np.arange(cols) + 0.5) * cell_m
    ys = (np.arange(rows) + 0.5) * cell_m
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)
    flat = grid.reshape(-1, 2)
    blocked = (flat[:, 0] > width) | (flat[:, 1] > depth)
    for shelf in store.shelves:
        blocked |= shelf_contains_xy(shelf, flat)
    return grid, ~blocked.reshape(rows, cols)


def floor_coverage(store: StoreDescription, height_m: float,
                   config: CoverageConfig = CoverageConfig()) -> FloorCoverage:
    """Count the depth cameras that see each free-floor cell at ``height_m`` above it."""
    grid, free = free_floor(store, config.cell_m)
    rows, cols = free.shape
    points = np.column_stack([grid.reshape(-1, 2)[free.ravel()],
                              np.full(int(free.sum()), height_m)])
    counts = np.zeros(len(points), dtype=np.int32)
    for camera in store.cameras:
        counts += _depth_sees(camera, points, store.shelves)
    full = np.zeros(rows * cols, dtype=np.int32)
    full[free.ravel()] = counts
    return FloorCoverage(height_m, config.cell_m, full.reshape(rows, cols), free)


def bin_face_points(shelf: Shelf, low: Sequence[float], high: Sequence[float],
                    config: CoverageConfig = CoverageConfig()) -> FloatArray:
    """Sample points (N, 3) in map on the front face of a bin box given in the shelf frame.

    The face spans the bin's x and z extent at y = -face_offset_m (in front of the shelf
    front, where a reaching hand passes); samples are centres of a face_step_m grid.
    """
    nx = max(1, int(math.ceil((high[0] - low[0]) / config.face_step_m)))
    nz = max(1, int(math.ceil((high[2] - low[2]) / config.face_step_m)))
    xs = low[0] + (np.arange(nx) + 0.5) * (high[0] - low[0]) / nx
    zs = low[2] + (np.arange(nz) + 0.5) * (high[2] - low[2]) / nz
    gx, gz = np.meshgrid(xs, zs)
    local = np.column_stack([gx.ravel(), np.full(gx.size, -config.face_offset_m), gz.ravel()])
    return shelf.t_map_shelf.apply(local)


def bin_coverage(store: StoreDescription,
                 config: CoverageConfig = CoverageConfig()) -> tuple[BinCoverage, ...]:
    """Colour-camera coverage of every bin's front face, in description order."""
    results = []
    for shelf in store.shelves:
        for shelf_bin in shelf.bins:
            points = bin_face_points(shelf, shelf_bin.min_m, shelf_bin.max_m, config)
            counts = np.zeros(len(points), dtype=np.int32)
            seeing = []
            for camera in store.cameras:
                seen = _color_sees(camera, points, store.shelves)
                counts += seen
                if seen.any():
                    seeing.append(camera.camera_id)
            results.append(BinCoverage(
                shelf_bin.bin_id, shelf.shelf_id, len(points),
                float(np.mean(counts >= 1)), float(np.mean(counts >= 2)), tuple(seeing)))
    return tuple(results)


def gate_coverage(store: StoreDescription,
                  config: CoverageConfig = CoverageConfig()) -> tuple[GateCoverage, ...]:
    """Near depth-camera coverage of every gate zone, in description order."""
    results = []
    for gate in store.gates:
        nx = max(1, int(math.ceil((gate.max_m[0] - gate.min_m[0]) / config.cell_m - 1e-9)))
        ny = max(1, int(math.ceil((gate.max_m[1] - gate.min_m[1]) / config.cell_m - 1e-9)))
        xs = gate.min_m[0] + (np.arange(nx) + 0.5) * (gate.max_m[0] - gate.min_m[0]) / nx
        ys = gate.min_m[1] + (np.arange(ny) + 0.5) * (gate.max_m[1] - gate.min_m[1]) / ny
        cells = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        seen_everywhere = np.ones(len(cells), dtype=bool)
        seeing: set[str] = set()
        for height in config.heights_m:
            points = np.column_stack([cells, np.full(len(cells), height)])
            seen = np.zeros(len(cells), dtype=bool)
            for camera in store.cameras:
                near = np.linalg.norm(points - camera.t_map_depth.translation, axis=1) \
                    <= config.gate_near_m
                by_camera = near & _depth_sees(camera, points, store.shelves)
                if by_camera.any():
                    seeing.add(camera.camera_id)
                seen |= by_camera
            seen_everywhere &= seen
        results.append(GateCoverage(gate.gate_id, gate.kind, config.gate_near_m,
                                    float(np.mean(seen_everywhere)),
                                    tuple(c.camera_id for c in store.cameras
                                          if c.camera_id in seeing)))
    return tuple(results)


def compute_coverage(store: StoreDescription,
                     config: CoverageConfig = CoverageConfig()) -> CoverageReport:
    """Floor coverage at every configured height, bin fronts and gate zones."""
    floors = tuple(floor_coverage(store, h, config) for h in config.heights_m)
    return CoverageReport(store.name, len(store.cameras), floors, bin_coverage(store, config),
                          gate_coverage(store, config))


def check_thresholds(report: CoverageReport, thresholds: CoverageThresholds) -> list[str]:
    """Return one line per figure below its threshold (empty: the layout passes)."""
    failures = []
    floor = report.floor(thresholds.height_m)
    for at_least, minimum in ((1, thresholds.min_floor_1), (2, thresholds.min_floor_2)):
        if minimum is not None and floor.share(at_least) < minimum:
            failures.append(f'floor at {floor.height_m:g} m seen by >= {at_least} depth '
                            f'camera(s): {floor.share(at_least):.1%} < {minimum:.1%}')
    for at_least, minimum in ((1, thresholds.min_bin_1), (2, thresholds.min_bin_2)):
        if minimum is None:
            continue
        for entry in report.bins:
            share = entry.share_1 if at_least == 1 else entry.share_2
            if share < minimum:
                failures.append(f'{entry.bin_id} front seen by >= {at_least} colour '
                                f'camera(s): {share:.1%} < {minimum:.1%}')
    if thresholds.min_gate_near is not None:
        for gate in report.gates:
            if gate.share_near < thresholds.min_gate_near:
                failures.append(f'{gate.gate_id} ({gate.kind}) seen by a depth camera within '
                                f'{gate.near_m:g} m: {gate.share_near:.1%} < '
                                f'{thresholds.min_gate_near:.1%}')
    return failures


def format_report(report: CoverageReport) -> str:
    """Readable tables: floor rows, then bins grouped by shelf (worst bin of a shelf first)."""
    lines = [f'{report.store_name}: {report.camera_count} cameras',
             '',
             'free floor seen by depth cameras',
             f'{"height_m":>8}  {">=1 cam":>8}  {">=2 cams":>8}  {"unseen":>8}']
    for floor in report.floors:
        lines.append(f'{floor.height_m:8.2f}  {floor.share(1):8.1%}  {floor.share(2):8.1%}  '
                     f'{1.0 - floor.share(1):8.1%}')
    lines += ['', 'bin fronts (hand zones) seen by colour cameras',
              f'{"bin":<18}  {">=1 cam":>8}  {">=2 cams":>8}  cameras']
    shelves: dict[str, list[BinCoverage]] = {}
    for entry in report.bins:
        shelves.setdefault(entry.shelf_id, []).append(entry)
    for entries in shelves.values():
        for entry in sorted(entries, key=lambda e: (e.share_2, e.share_1, e.bin_id)):
            lines.append(f'{entry.bin_id:<18}  {entry.share_1:8.1%}  {entry.share_2:8.1%}  '
                         f'{" ".join(entry.cameras) or "-"}')
    if report.bins:
        worst = min(report.bins, key=lambda e: (e.share_2, e.share_1))
        lines.append(f'worst bin: {worst.bin_id} ({worst.share_1:.1%} by >= 1, '
                     f'{worst.share_2:.1%} by >= 2)')
    if report.gates:
        near = report.gates[0].near_m
        heights = ', '.join(f'{f.height_m:g}' for f in report.floors)
        lines += ['', f'gate zones seen by a depth camera within {near:g} m (at {heights} m)',
                  f'{"gate":<18}  {"kind":<6}  {"seen":>8}  cameras']
        for gate in report.gates:
            lines.append(f'{gate.gate_id:<18}  {gate.kind:<6}  {gate.share_near:8.1%}  '
                         f'{" ".join(gate.cameras) or "-"}')
    return '\n'.join(lines)


# Heat-map colours (BGR) by number of cameras seeing a cell: 0, 1, 2, 3, 4 or more.
_COUNT_BGR = ((40, 40, 200), (40, 170, 240), (120, 200, 150), (60, 170, 60), (30, 110, 30))
_SHELF_BGR = (110, 110, 110)
_OUTSIDE_BGR = (235, 235, 235)


def _share_bgr(share: float) -> tuple[int, int, int]:
    """Red (0) through yellow to green (1) for a bin front's two-camera share."""
    share = min(1.0, max(0.0, share))
    if share < 0.5:
        return (0, int(510 * share), 220)
    return (0, 220, int(220 * (1.0 - share) * 2.0))


def heat_map(store: StoreDescription, floor: FloorCoverage,
             bins: Sequence[BinCoverage] = (), pixels_per_m: float = 80.0) -> NDArray[np.uint8]:
    """Draw the floor plan (BGR image, north up) coloured by cameras per cell.

    Shelves are grey, each bin front a line coloured by its two-camera share, each camera a
    black dot with its id and a line to where its optical axis meets the floor.
    """
    import cv2  # drawing only; the figures above do not need OpenCV

    margin = 40
    legend = 40
    width_m, depth_m = store.size_m
    width = int(round(width_m * pixels_per_m)) + 2 * margin
    height = int(round(depth_m * pixels_per_m)) + 2 * margin + legend
    image = np.full((height, width, 3), _OUTSIDE_BGR, dtype=np.uint8)

    def pixel(x_m: float, y_m: float) -> tuple[int, int]:
        return (int(round(margin + x_m * pixels_per_m)),
                int(round(margin + (depth_m - y_m) * pixels_per_m)))

    rows, cols = floor.counts.shape
    cell = floor.cell_m
    for i in range(rows):
        for j in range(cols):
            if not floor.free[i, j]:
                continue
            colour = _COUNT_BGR[min(int(floor.counts[i, j]), len(_COUNT_BGR) - 1)]
            top_left = pixel(j * cell, (i + 1) * cell)
            bottom_right = pixel((j + 1) * cell, i * cell)
            cv2.rectangle(image, top_left, (bottom_right[0] - 1, bottom_right[1] - 1),
                          colour, -1)
    share_by_bin = {b.bin_id: b.share_2 for b in bins}
    for shelf in store.shelves:
        length, depth, _ = shelf.size_m
        corners = shelf.t_map_shelf.apply(np.array(
            [[-length / 2, 0, 0], [length / 2, 0, 0], [length / 2, depth, 0],
             [-length / 2, depth, 0]]))
        polygon = np.array([pixel(x, y) for x, y, _ in corners], dtype=np.int32)
        cv2.fillPoly(image, [polygon], _SHELF_BGR)
        cv2.polylines(image, [polygon], True, (60, 60, 60), 1)
        for shelf_bin in shelf.bins:
            if shelf_bin.bin_id not in share_by_bin:
                continue
            # Stacked bins share a front edge: draw lower bins a little further out.
            ends = shelf.t_map_shelf.apply(np.array(
                [[shelf_bin.min_m[0] + 0.03, -0.04 - 0.05 * shelf_bin.min_m[2], 0.0],
                 [shelf_bin.max_m[0] - 0.03, -0.04 - 0.05 * shelf_bin.min_m[2], 0.0]]))
            cv2.line(image, pixel(*ends[0][:2]), pixel(*ends[1][:2]),
                     _share_bgr(share_by_bin[shelf_bin.bin_id]), 3)
        centre = shelf.t_map_shelf.apply(np.array([[0.0, depth / 2, 0.0]]))[0]
        cv2.putText(image, shelf.shelf_id.replace('shelf_', 's'), pixel(centre[0] - 0.15,
                    centre[1] - 0.07), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    top_left, bottom_right = pixel(0.0, depth_m), pixel(width_m, 0.0)
    cv2.rectangle(image, top_left, bottom_right, (0, 0, 0), 2)
    for camera in store.cameras:
        position = camera.t_map_depth.translation
        axis = camera.t_map_depth.rotation[:, 2]
        start = pixel(position[0], position[1])
        if axis[2] < -1e-6:
            # To where the optical axis meets the floor, at most 3 m sideways.
            hit = axis[:2] * (-position[2] / axis[2])
            hit *= min(1.0, 3.0 / max(float(np.linalg.norm(hit)), 1e-9))
            end = pixel(position[0] + hit[0], position[1] + hit[1])
            length_px = max(math.hypot(end[0] - start[0], end[1] - start[1]), 1.0)
            cv2.arrowedLine(image, start, end, (0, 0, 0), 1, tipLength=min(0.5, 10.0 / length_px))
        cv2.circle(image, start, 5, (0, 0, 0), -1)
        cv2.putText(image, camera.camera_id.replace('cam_', ''), (start[0] + 6, start[1] - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    text_y = height - legend // 2 + 5
    x = margin
    for count, colour in enumerate(_COUNT_BGR):
        cv2.rectangle(image, (x, text_y - 10), (x + 14, text_y + 4), colour, -1)
        label = f'{count}+' if count == len(_COUNT_BGR) - 1 else str(count)
        cv2.putText(image, label, (x + 18, text_y), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1)
        x += 50
    cv2.putText(image, f'depth cameras per cell at {floor.height_m:g} m: '
                f'>=1 {floor.share(1):.1%}, >=2 {floor.share(2):.1%}; bin fronts: '
                'green = 2 colour cameras', (x + 10, text_y), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                (0, 0, 0), 1)
    return image
