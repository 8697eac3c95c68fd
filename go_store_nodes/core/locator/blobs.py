"""From the map points of one frame set to people: height map, blobs, split, classify.

The highest point per floor cell over all cameras of the set makes a height map, so
a person seen by two cameras is one blob and occlusion in one view is filled by another;
the level (mean of each cell's top-surface points) gives heights without the noise bias.
Blobs (connected cells above ``min_blob_height_m``) are split at the maxima of the level
(heads at least ``head_separation_m`` apart): every cell goes to the nearest maximum of
its blob. A part that is not a person by itself (a shoulder, an arm raised to a high bin,
a basket held beside the body) joins the neighbouring part with the highest top; maxima
outside every camera's view (under a gap between views) are joined (``segment_people``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import itertools
import math
from typing import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

from .camera import FloorGrid
from .config import LocatorConfig

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Segment:
    """One person candidate on the height map."""

    cells: NDArray[np.int64]           # flat cell indices
    top_m: float                       # head level above the floor, m
    head_xy_m: tuple[float, float]     # centre of the head region
    head_covariance: FloatArray        # 2x2 of the head-region centre, m^2
    area_m2: float
    aspect_ratio: float                # length / width of the cells' spread
    is_person: bool
    confidence: float


def height_maps(cells: NDArray[np.int64], heights: NDArray, bands: NDArray, grid: FloorGrid
                ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Highest point per cell, and the level of the cell's top surface (0 = empty).

    The highest point fills each cell from whichever camera saw the most of it (blob
    extent), closed over one-cell gaps. It is biased up by the depth noise (about two RMS
    errors for a few dozen points), so the level is the mean of the points within their
    noise band (``bands``, m) of the highest: the top surface, without the sides a tilted
    camera also sees in the cell. Both are median filtered against lone spikes.
    """
    top = np.zeros(grid.nx * grid.ny, np.float32)
    level = np.zeros(grid.nx * grid.ny, np.float32)
    if cells.size:
        values = heights.astype(np.float32, copy=False)
        np.maximum.at(top, cells, values)
        upper = values >= top[cells] - bands
        count = np.bincount(cells[upper], minlength=top.size)
        total = np.bincount(cells[upper], weights=values[upper], minlength=top.size)
        np.divide(total, count, out=level, where=count > 0, casting='unsafe')
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    closed = cv2.morphologyEx(top.reshape(grid.ny, grid.nx), cv2.MORPH_CLOSE, kernel)
    return (np.asarray(cv2.medianBlur(closed, 3), np.float32),
            np.asarray(cv2.medianBlur(level.reshape(grid.ny, grid.nx), 3), np.float32))


def _disk(radius_cells: int) -> NDArray[np.uint8]:
    size = 2 * radius_cells + 1
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)), np.uint8)


def _maxima(heights: NDArray[np.float32], blobs: NDArray[np.int32], grid: FloorGrid,
            config: LocatorConfig) -> list[tuple[int, float, float, float]]:
    """Height maxima (blob, row, col, height), at least head_separation_m apart per blob."""
    # A maximum is the highest cell within half the head separation (about a head's
    # radius): a lower head beside a taller person's is still one. Shoulders that come out
    # as maxima too are parts smaller than a person, joined to their head's part.
    radius = max(1, int(round(0.5 * config.head_separation_m / grid.cell_m)))
    dilated = cv2.dilate(heights, _disk(radius))
    peak = (blobs > 0) & (heights >= dilated)
    count, plateau, _, centroids = cv2.connectedComponentsWithStats(
        peak.view(np.uint8), connectivity=8)
    candidates = []
    for index in range(1, count):
        col, row = centroids[index]
        r, c = int(round(row)), int(round(col))
        blob = int(blobs[r, c])
        if blob == 0 or plateau[r, c] != index:    # a ring-shaped plateau: use any cell
            rows, cols = np.nonzero(plateau == index)
            r, c = int(rows[0]), int(cols[0])
            blob = int(blobs[r, c])
        candidates.append((blob, row, col, float(heights[r, c])))
    candidates.sort(key=lambda item: -item[3])
    kept: list[tuple[int, float, float, float]] = []
    for blob, row, col, height in candidates:
        if all(b != blob or math.hypot(row - r, col - c) * grid.cell_m
               >= config.head_separation_m for b, r, c, _ in kept):
            kept.append((blob, row, col, height))
    return kept


def _classify(top_m: float, area_m2: float, aspect: float,
              config: LocatorConfig) -> tuple[bool, float]:
    """Person or not from top height, area and elongation; confidence in [0, 1].

    Standing (top >= standing_height_m): a person from min_person_area_m2. Lower tops
    down to min_person_height_m (bending, crouching adults) need bending_min_area_m2:
    a crouching child or a basket is smaller.
    """
    if top_m < config.min_person_height_m or area_m2 > config.max_person_area_m2 \
            or aspect > config.max_aspect_ratio:
        return False, 0.0
    needed = config.min_person_area_m2 if top_m >= config.standing_height_m \
        else config.bending_min_area_m2
    if area_m2 < needed:
        return False, 0.0
    span = max(config.standing_height_m - config.min_person_height_m, 1e-6)
    height_score = min(1.0, (top_m - config.min_person_height_m) / span)
    area_score = min(1.0, area_m2 / max(2.0 * needed, 1e-6))
    return True, round(0.5 + 0.5 * min(height_score, area_score) ** 0.5, 4)


def _spread(x: FloatArray, y: FloatArray) -> FloatArray:
    """Return the 2x2 covariance (population) of points."""
    dx, dy = x - x.mean(), y - y.mean()
    xy = float(dx @ dy) / x.size
    return np.array([[float(dx @ dx) / x.size, xy], [xy, float(dy @ dy) / x.size]])


def _describe(cells: NDArray[np.int64], peak: tuple[float, float], heights: NDArray[np.float32],
              level: NDArray[np.float32], grid: FloorGrid, config: LocatorConfig) -> Segment:
    rows, cols = np.divmod(cells, grid.nx)
    # Head region: near the top of the highest points (the level of a head's side seen
    # by a tilted camera reaches up too) and near the maximum (not a raised hand).
    h = heights.reshape(-1)[cells]
    top = float(h.max())
    distance = np.hypot(rows - peak[0], cols - peak[1]) * grid.cell_m
    head = (h >= top - config.head_depth_m) & (distance <= 0.5 * config.head_separation_m)
    if not np.any(head):
        head = h >= top - config.head_depth_m
    x, y = grid.centres(rows[head].astype(np.float64), cols[head].astype(np.float64))
    # The head's level: the highest surface level of the head region (not the noisiest
    # point). The centre: the region's mean (a tilted camera sees only the near side of a
    # head, which pulls it a few cm towards that camera).
    surface = level.reshape(-1)[cells[head]]
    top = max(float(surface.max()), 0.0) or top
    centre = (float(x.mean()), float(y.mean()))
    cell_var = grid.cell_m ** 2 / 12.0
    # Uncertainty of the centre: spread of the head region over its cell count, plus the
    # cell quantisation.
    covariance = _spread(x, y) / x.size + np.eye(2) * cell_var
    area = cells.size * grid.cell_m ** 2
    ax, ay = grid.centres(rows.astype(np.float64), cols.astype(np.float64))
    eigen = np.linalg.eigvalsh(_spread(ax, ay) + np.eye(2) * cell_var)
    aspect = float(math.sqrt(eigen[1] / max(eigen[0], 1e-12)))
    is_person, confidence = _classify(top, area, aspect, config)
    return Segment(cells, top, centre, covariance, area, aspect,
                   is_person, confidence)


def segment_people(heights: NDArray[np.float32], level: NDArray[np.float32], grid: FloorGrid,
                   config: LocatorConfig,
                   visible: Callable[[FloatArray], NDArray[np.bool_]] | None = None,
                   blur_m: NDArray[np.float32] | None = None,
                   main_camera: NDArray[np.int64] | None = None
                   ) -> tuple[list[Segment], NDArray[np.int32]]:
    """Split the height map into person candidates.

    ``heights`` and ``level`` are the highest and mean point heights (``height_maps``).

    ``visible(points)`` says which map points (K, 3) some camera of the frame set could
    see. A maximum with no view of the space ``head_depth_m`` above it is clipped: the top
    of what is there may lie outside the cameras' views (a person under a gap between two
    views shows one clipped maximum at each view's edge). A clipped part too small to be a
    person joins any part it touches; clipped parts closer than 2.5 head separations are
    one person, placed between their clipped tops.
    ``blur_m`` (flat, per cell) is the RMS sideways error of the sharpest view of the
    cell: where only far, tilted views see, one head can show two maxima up to about four
    of those errors beyond a head separation apart (one blurred towards each view).
    Returns the segments and a label image (ny, nx): index + 1 of the person segment
    owning a cell, 0 elsewhere (cells of blobs that are not people are 0 too).
    """
    mask = (heights >= config.min_blob_height_m).astype(np.uint8)
    count, blob_image = cv2.connectedComponents(mask, connectivity=8)
    blobs = np.asarray(blob_image, np.int32)
    labels = np.zeros(heights.shape, np.int32)
    if count <= 1:
        return [], labels
    # Maxima of the surface level: the highest points are too noisy to rank heads by.
    peaks = _maxima(level, blobs, grid, config)
    blob_cells = np.flatnonzero(blobs.reshape(-1))
    blob_of_cell = blobs.reshape(-1)[blob_cells]
    # A blob whose top lies near a higher, separate blob has no maximum of its own yet:
    # its highest cell is one.
    for blob in sorted(set(range(1, count)) - {p[0] for p in peaks}):
        own = blob_cells[blob_of_cell == blob]
        best = int(own[np.argmax(level.reshape(-1)[own])])
        row, col = divmod(best, grid.nx)
        peaks.append((blob, float(row), float(col), float(level.reshape(-1)[best])))
    rows, cols = np.divmod(blob_cells, grid.nx)
    peak_blob = np.array([p[0] for p in peaks])
    peak_rc = np.array([(p[1], p[2]) for p in peaks], dtype=np.float64).reshape(-1, 2)
    clipped = np.zeros(len(peaks), bool)
    if visible is not None:
        # The disc of half a head separation, head_depth_m above the maximum, in view?
        x, y = grid.centres(peak_rc[:, 0], peak_rc[:, 1])
        z = np.array([p[3] for p in peaks]) + config.head_depth_m
        r = 0.5 * config.head_separation_m
        offsets = ((0.0, 0.0), (r, 0.0), (-r, 0.0), (0.0, r), (0.0, -r))
        above = np.concatenate([np.stack([x + dx, y + dy, z], axis=1) for dx, dy in offsets])
        seen = np.asarray(visible(above), bool).reshape(len(offsets), len(peaks))
        clipped = ~np.all(seen, axis=0)
    # Nearest maximum of the same blob (squared cell distance; other blobs excluded).
    d2 = (rows[:, None] - peak_rc[None, :, 0]) ** 2 + (cols[:, None] - peak_rc[None, :, 1]) ** 2
    d2[blob_of_cell[:, None] != peak_blob[None, :]] = np.inf
    owner = np.argmin(d2, axis=1)
    part = np.zeros(heights.size, np.int64)
    part[blob_cells] = owner + 1
    part_image = part.reshape(heights.shape)
    parts = [_describe(blob_cells[owner == k], (peak_rc[k, 0], peak_rc[k, 1]), heights, level,
                       grid, config) for k in range(len(peaks))]
    # Parts that are not a person by themselves join the touching part with the highest top
    # (above their own; clipped ones: any touching part, preferring unclipped ones).
    merged_into = list(range(len(parts)))
    same_head: set[int] = set()       # parts merged as one head seen twice
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    level_flat = level.reshape(-1)   # not closed: a valley between heads stays
    def one_view(a: int, b: int) -> bool:
        """Whether the same camera dominates the head cells of parts a and b."""
        if main_camera is None:
            return False
        cells = [grid.cells_of(np.array([p.head_xy_m[0]]), np.array([p.head_xy_m[1]]))
                 for p in (parts[a], parts[b])]
        if not (cells[0][1][0] and cells[1][1][0]):
            return False
        first, second = (int(main_camera[c[0][0]]) for c in cells)
        return first >= 0 and first == second

    def twin_reach(a: int, b: int) -> float:
        reach = 1.5 * config.head_separation_m
        if blur_m is None:
            return reach
        cells = [grid.cells_of(np.array([p.head_xy_m[0]]), np.array([p.head_xy_m[1]]))
                 for p in (parts[a], parts[b])]
        blur = max(float(blur_m[c[0][0]]) if c[1][0] else 0.0 for c in cells)
        return max(reach, config.head_separation_m + 4.0 * blur)

    for k in sorted(range(len(parts)), key=lambda i: parts[i].top_m):
        # Neighbours: labels on the one-cell ring around the part (in its bounding box).
        part_rows, part_cols = np.divmod(parts[k].cells, grid.nx)
        r0, c0 = max(int(part_rows.min()) - 1, 0), max(int(part_cols.min()) - 1, 0)
        window = part_image[r0:int(part_rows.max()) + 2, c0:int(part_cols.max()) + 2]
        own = (window == k + 1).astype(np.uint8)
        ring = cv2.dilate(own, kernel).astype(bool) & ~own.astype(bool)
        neighbours = [int(v) - 1 for v in set(window[ring].tolist()) if v > 0 and v != k + 1]
        if parts[k].is_person:
            # A shoulder or raised arm: a maximum at least a head's depth below a touching
            # part whose head is nearer than 1.6 head separations (two people shoulder to
            # shoulder of one height have their heads farther apart). A shorter person's
            # head beside a taller one can be that near too: a part beyond a shoulder's
            # reach of the head and larger than a shoulder or elbow part is a person.
            reach = 1.6 * config.head_separation_m
            hx, hy = parts[k].head_xy_m
            beside = parts[k].area_m2 >= config.second_head_area_m2
            higher = [i for i in neighbours
                      if parts[i].top_m - parts[k].top_m >= config.head_depth_m
                      and (distance := math.hypot(parts[i].head_xy_m[0] - hx,
                                                  parts[i].head_xy_m[1] - hy)) < reach
                      and not (beside and distance >= config.shoulder_reach_m)]
            if higher and not clipped[k]:
                merged_into[k] = max(higher, key=lambda i: parts[i].top_m)
                continue
            # One head seen twice: tilted cameras on either side each place a head a few
            # cm towards themselves, so its top can show two maxima. Two people have a
            # valley between their heads (shoulders, or a gap) deeper than a head; one
            # head has none along the border between the two parts.
            # Only into a higher part (ties by index), so merges never form a cycle.
            twin = [i for i in neighbours if parts[i].is_person and not clipped[i]
                    and (parts[i].top_m, i) > (parts[k].top_m, k)
                    and abs(parts[i].top_m - parts[k].top_m) < config.head_depth_m
                    and math.hypot(parts[i].head_xy_m[0] - hx,
                                   parts[i].head_xy_m[1] - hy) < twin_reach(i, k)
                    and _saddle(window, k + 1, i + 1, level_flat, r0, c0, grid)
                    >= min(parts[i].top_m, parts[k].top_m) - config.head_depth_m
                    and not one_view(i, k)]
            if twin and not clipped[k]:
                merged_into[k] = max(twin, key=lambda i: parts[i].top_m)
                same_head.update((k, merged_into[k]))
            continue
        if clipped[k]:
            targets = [i for i in neighbours if merged_into[i] == i]
        else:
            targets = [i for i in neighbours if parts[i].top_m > parts[k].top_m]
        if not targets:
            continue
        merged_into[k] = max(targets, key=lambda i: (not clipped[i], parts[i].top_m))
    groups: dict[int, list[int]] = {}
    for k in range(len(parts)):
        root = k
        while merged_into[root] != root:
            root = merged_into[root]
        groups.setdefault(root, []).append(k)
    candidates: list[tuple[Segment, list[tuple[float, float]]]] = []
    for root, members in groups.items():
        base = parts[root]
        heads = [parts[m].head_xy_m for m in members if clipped[m]] if clipped[root] else []
        if len(members) > 1:
            cells = np.concatenate([parts[m].cells for m in members])
            base = _joined(base, cells, heads, grid, config)
            twins = [parts[m].head_xy_m for m in members if m in same_head]
            if len(twins) > 1 and not heads:   # the head lies between its two views
                base = dataclasses.replace(base, head_xy_m=(
                    float(np.mean([t[0] for t in twins])), float(np.mean([t[1] for t in twins]))))
        candidates.append((base, heads))
    # Clipped tops of one person under a gap, in one blob or two: join those closer than
    # 2.5 head separations (two people side by side at a view's edge are farther apart).
    reach = 2.5 * config.head_separation_m
    joined = True
    while joined:
        joined = False
        for i, j in itertools.combinations(range(len(candidates)), 2):
            (a, heads_a), (b, heads_b) = candidates[i], candidates[j]
            if heads_a and heads_b and math.dist(a.head_xy_m, b.head_xy_m) <= reach:
                heads = heads_a + heads_b
                top = a if a.top_m >= b.top_m else b
                merged = _joined(top, np.concatenate([a.cells, b.cells]), heads, grid, config)
                candidates[i] = (merged, heads)
                del candidates[j]
                joined = True
                break
    segments: list[Segment] = []
    for segment, _ in candidates:
        if segment.is_person:
            segments.append(segment)
            labels.reshape(-1)[segment.cells] = len(segments)
    return segments, labels


def _saddle(window: NDArray[np.int64], a: int, b: int, heights: NDArray[np.float32], r0: int,
            c0: int, grid: FloorGrid) -> float:
    """Return the highest point on the border between parts ``a`` and ``b`` (labels), m.

    ``window`` is the label image cut at (r0, c0); the border is the cells of each part
    with a cell of the other among their 8 neighbours.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    in_a = (window == a).astype(np.uint8)
    in_b = (window == b).astype(np.uint8)
    border = (cv2.dilate(in_a, kernel).astype(bool) & in_b.astype(bool)) | \
        (cv2.dilate(in_b, kernel).astype(bool) & in_a.astype(bool))
    rows, cols = np.nonzero(border)
    if rows.size == 0:
        return -math.inf
    return float(heights[(rows + r0) * grid.nx + cols + c0].max())


def _joined(base: Segment, cells: NDArray[np.int64], clipped_heads: list[tuple[float, float]],
            grid: FloorGrid, config: LocatorConfig) -> Segment:
    """Return ``base`` grown to ``cells``; with clipped tops the head lies between them."""
    area = cells.size * grid.cell_m ** 2
    head_xy, head_covariance = base.head_xy_m, base.head_covariance
    if clipped_heads:
        heads = np.array(clipped_heads)
        head_xy = (float(heads[:, 0].mean()), float(heads[:, 1].mean()))
        head_covariance = head_covariance + np.cov(heads.T, bias=True)
    is_person, confidence = _classify(base.top_m, area, base.aspect_ratio, config)
    return Segment(cells, base.top_m, head_xy, head_covariance, area, base.aspect_ratio,
                   is_person, confidence)
