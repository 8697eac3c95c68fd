"""One person's top-down stick figure from the foreground points of their body, and bins.

Everything here is geometry on map points (m) of one frame set. The body frame of a
figure: origin on the vertical axis through the head, ``forward`` the horizontal unit
vector the person faces (towards the shelf they are near), ``left`` = z x forward.
Ceiling cameras see the top of the head, the shoulders and whatever leaves the body
towards the shelf: the arms. The pelvis is hidden under the torso, the neck under the
head; they are placed from the joints that are seen, with ``inferred_confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..store import Bin, Shelf
from .config import PoseConfig

# Joint order = the Keypoint constants of go_store/msg/Keypoint (HEAD = 0 ... PELVIS = 8).
JOINTS = ('head', 'neck', 'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
          'left_hand', 'right_hand', 'pelvis')
SIDES = ('left', 'right')
# Anthropometric fractions of stature (shoulder 0.818, neck 0.855, hip 0.53, top of the head
# 1.0): where the neck lies between shoulders and head, and the pelvis under the top.
NECK_BETWEEN = (0.855 - 0.818) / (1.0 - 0.818)
PELVIS_OF_TOP = 0.53
MIN_SLICE_POINTS = 6
TOP_PERCENTILE = 90.0

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Joint:
    """One joint of a stick figure: map position (m) and confidence (0: not seen)."""

    name: str
    position: tuple[float, float, float]
    confidence: float


@dataclass(frozen=True)
class Figure:
    """A stick figure: every joint of ``JOINTS`` in order, and the hand points seen."""

    joints: tuple[Joint, ...]
    hands: dict[str, FloatArray]       # side -> map point of a hand seen (absent: not seen)

    def joint(self, name: str) -> Joint:
        """Return a joint by name."""
        return self.joints[JOINTS.index(name)]


def _unseen(name: str) -> Joint:
    return Joint(name, (0.0, 0.0, 0.0), 0.0)


def empty_figure() -> Figure:
    """Return a figure with no joint seen."""
    return Figure(tuple(_unseen(n) for n in JOINTS), {})


def stick_figure(points: FloatArray, track_xy: tuple[float, float],
                 forward_xy: tuple[float, float], config: PoseConfig) -> Figure:
    """Build the stick figure of one person from their foreground points (K, 3), map.

    ``track_xy`` is the floor point below the head (from the tracker), ``forward_xy``
    the unit horizontal direction the person faces.
    """
    if len(points) == 0:
        return empty_figure()
    f = np.asarray(forward_xy, dtype=np.float64)
    f = f / max(float(np.linalg.norm(f)), 1e-9)
    left = np.array([-f[1], f[0]])
    rel = points[:, :2] - np.asarray(track_xy, dtype=np.float64)
    a, b, z = rel @ f, rel @ left, points[:, 2].astype(np.float64)
    near = np.hypot(a, b) <= config.head_search_m
    if not np.any(near):
        return empty_figure()
    # The highest of many noisy points is biased up by a few RMS depth errors; a high
    # percentile of the points near the head axis is not (most of them are the head).
    top = float(np.percentile(z[near], TOP_PERCENTILE))
    crown = near & (z >= top - config.head_radius_m)
    head_a, head_b = float(a[crown].mean()), float(b[crown].mean())
    a, b = a - head_a, b - head_b
    origin = np.asarray(track_xy, dtype=np.float64) + head_a * f + head_b * left

    def to_map(pa: float, pb: float, pz: float) -> tuple[float, float, float]:
        xy = origin + pa * f + pb * left
        return float(xy[0]), float(xy[1]), float(pz)

    head_z = top - config.head_radius_m
    joints = {'head': Joint('head', to_map(0.0, 0.0, head_z),
                            min(1.0, float(np.count_nonzero(crown)) / MIN_SLICE_POINTS))}
    # Shoulders: the widest slice of the torso below the head, across the body axis.
    torso = (np.abs(a) <= config.torso_half_depth_m) & (np.abs(b) <= config.torso_half_width_m)
    best: tuple[float, float, float, float, int] | None = None
    z_hi = top - 2.0 * config.head_radius_m + config.slice_m
    while z_hi > top - config.shoulder_search_m:
        layer = torso & (z <= z_hi) & (z > z_hi - config.slice_m)
        count = int(np.count_nonzero(layer))
        if count >= MIN_SLICE_POINTS:
            low, high = np.percentile(b[layer], (3.0, 97.0))
            width = float(high - low)
            if best is None or width > best[0] + 0.02:
                best = (width, float(high), float(low), z_hi - 0.5 * config.slice_m, count)
        z_hi -= config.slice_m
    if best is not None:
        _, b_left, b_right, shoulder_z, count = best
        seen = min(1.0, count / (3.0 * MIN_SLICE_POINTS))
        joints['left_shoulder'] = Joint('left_shoulder', to_map(0.0, b_left, shoulder_z), seen)
        joints['right_shoulder'] = Joint('right_shoulder', to_map(0.0, b_right, shoulder_z),
                                         seen)
    else:
        shoulder_z = top - 0.182 * top        # shoulders at 0.818 of the stature
        b_left, b_right = 0.2, -0.2
    neck_z = shoulder_z + NECK_BETWEEN * (top - shoulder_z)
    joints['neck'] = Joint('neck', to_map(0.0, 0.5 * (b_left + b_right), neck_z),
                           config.inferred_confidence)
    joints['pelvis'] = Joint('pelvis', to_map(0.0, 0.0, PELVIS_OF_TOP * top),
                             config.inferred_confidence)
    hands: dict[str, FloatArray] = {}
    outside = ((a > config.torso_half_depth_m) | (np.abs(b) > config.torso_half_width_m)) \
        & (a > -config.torso_half_depth_m) & (z >= config.min_arm_height_m) & (z <= top)
    for side, arm in _arms(a, b, outside, config).items():
        sign = 1.0 if side == 'left' else -1.0
        shoulder = np.array([0.0, b_left if sign > 0 else b_right])
        pa, pb, pz = a[arm], b[arm], z[arm]
        # The hand is the far end towards the shelf: the arm path reaches forward (an arm
        # seen from above ends at the shelf front when the bin's board hides the hand).
        far = float(pa.max())
        if far < config.min_arm_length_m:
            continue
        end = pa >= far - config.hand_end_m
        hand = (float(pa[end].mean()), float(pb[end].mean()), float(pz[end].mean()))
        reach = np.hypot(pa - shoulder[0], pb - shoulder[1])
        half = 0.5 * float(np.hypot(hand[0] - shoulder[0], hand[1] - shoulder[1]))
        middle = np.abs(reach - half) <= config.hand_end_m
        if np.any(middle):
            elbow = (float(pa[middle].mean()), float(pb[middle].mean()),
                     float(pz[middle].mean()))
        else:
            elbow = (0.5 * (shoulder[0] + hand[0]), 0.5 * (shoulder[1] + hand[1]),
                     0.5 * (shoulder_z + hand[2]))
        seen = min(1.0, float(arm.sum()) / (2.0 * config.min_arm_points))
        joints[f'{side}_hand'] = Joint(f'{side}_hand', to_map(*hand), seen)
        joints[f'{side}_elbow'] = Joint(f'{side}_elbow', to_map(*elbow), seen)
        hands[side] = np.array(to_map(*hand))
    return Figure(tuple(joints.get(n, _unseen(n)) for n in JOINTS), hands)


def _arms(a: FloatArray, b: FloatArray, outside: NDArray[np.bool_],
          config: PoseConfig) -> dict[str, NDArray[np.bool_]]:
    """Arm paths: connected groups of points outside the torso that start at its edge.

    Returns side -> mask over all points. A group is split at the body axis (each hand
    reaches on its own side of it); the part on the left of the axis is the left arm.
    """
    index = np.flatnonzero(outside)
    if index.size < config.min_arm_points:
        return {}
    cell = config.arm_cell_m
    ia = np.floor((a[index] - a[index].min()) / cell).astype(np.int64)
    ib = np.floor((b[index] - b[index].min()) / cell).astype(np.int64)
    image = np.zeros((int(ia.max()) + 1, int(ib.max()) + 1), np.uint8)
    image[ia, ib] = 1
    count, labels = cv2.connectedComponents(image, connectivity=8)
    label = np.asarray(labels)[ia, ib]
    # Distance of each point outside the torso box from the box (m).
    gap = np.maximum(a[index] - config.torso_half_depth_m,
                     np.abs(b[index]) - config.torso_half_width_m)
    gap = np.maximum(gap, 0.0)
    best: dict[str, tuple[int, NDArray[np.bool_]]] = {}
    for component in range(1, count):
        members = label == component
        for side, on_side in (('left', b[index] >= 0.0), ('right', b[index] < 0.0)):
            part = members & on_side
            size = int(part.sum())
            if size < config.min_arm_points or float(gap[part].min()) > config.max_arm_gap_m:
                continue
            if side not in best or size > best[side][0]:
                mask = np.zeros(a.shape, bool)
                mask[index[part]] = True
                best[side] = (size, mask)
    return {side: mask for side, (_, mask) in best.items()}


@dataclass(frozen=True)
class ShelfFront:
    """A shelf as the pose estimator needs it: pose in map, width, bins (shelf frame)."""

    shelf_id: str
    t_shelf_map: FloatArray            # 4x4, map -> shelf frame
    rotation: FloatArray               # 3x3 of the shelf frame in map
    half_width_m: float
    bins: tuple[Bin, ...]

    @classmethod
    def of(cls, shelf: Shelf) -> ShelfFront:
        """Return the front of a store-description shelf (pose as given)."""
        return cls(shelf.shelf_id, shelf.t_map_shelf.inverse().matrix(),
                   np.asarray(shelf.t_map_shelf.rotation, dtype=np.float64),
                   0.5 * float(shelf.size_m[0]), shelf.bins)

    def to_shelf(self, point: ArrayLike) -> FloatArray:
        """Return a map point in the shelf frame."""
        p = np.asarray(point, dtype=np.float64)
        return self.t_shelf_map[:3, :3] @ p + self.t_shelf_map[:3, 3]

    def to_map(self, local: ArrayLike) -> FloatArray:
        """Return a shelf-frame point in the map frame."""
        rotation = self.t_shelf_map[:3, :3]
        return np.asarray(rotation.T @ (np.asarray(local, dtype=np.float64)
                                        - self.t_shelf_map[:3, 3]), dtype=np.float64)

    def inward_xy(self) -> tuple[float, float]:
        """Horizontal unit vector from the aisle into the shelf (shelf +y) in map."""
        y = self.rotation[:2, 1]
        n = max(float(np.linalg.norm(y)), 1e-9)
        return float(y[0] / n), float(y[1] / n)

    def front_distance(self, x_m: float, y_m: float, margin_m: float) -> float | None:
        """Distance (m) of a floor point in front of the shelf from its front; None if not.

        The point must lie within the shelf's width plus ``margin_m`` to either side. The
        distance is to the front edge as a segment: beside the shelf's end it grows with
        the distance along the front too, so of two shelves in a row the one the person
        stands in front of is nearer than its neighbour.
        """
        p = self.to_shelf((x_m, y_m, 0.0))
        beside = abs(float(p[0])) - self.half_width_m
        if p[1] > 0.0 or beside > margin_m:
            return None
        return float(np.hypot(max(beside, 0.0), p[1]))

    def leaning_hand(self, points: FloatArray, head: ArrayLike, config: PoseConfig
                     ) -> FloatArray | None:
        """Where the hand of a person leaning into the shelf probably is (map), or None.

        A person whose head is within ``lean_front_m`` of the front leans in to reach:
        from above, the arm is then under the head and shoulders, and only the forearm
        shows ahead of the head, low, at the front. The hand is the mean of the points
        ahead of the head (towards the shelf) and at least ``lean_below_top_m`` below
        the top, on the side of the head of the one farthest in: across and up at their
        lowest ``lean_low_share`` (the forearm goes
        down into the bin), in depth at the farthest of them or the front edge; None
        when the head is farther or fewer than ``min_lean_points`` such points are seen.
        """
        h = self.to_shelf(head)
        if -h[1] > config.lean_front_m or len(points) == 0:
            return None
        top = float(h[2]) + config.head_radius_m
        p = (self.t_shelf_map[:3, :3] @ np.asarray(points, dtype=np.float64).T).T + \
            self.t_shelf_map[:3, 3]
        ahead = (p[:, 1] >= h[1] + config.lean_ahead_m) & \
            (p[:, 2] <= top - config.lean_below_top_m) & (p[:, 2] >= config.min_arm_height_m)
        if np.count_nonzero(ahead) < config.min_lean_points:
            return None
        front = p[ahead]
        # The reaching arm is on the side of the head (shelf x: to the shopper's right) of
        # the point farthest in; the other hand may hang near the front too.
        right = front[:, 0] >= h[0]
        front = front[right] if right[int(np.argmax(front[:, 1]))] else front[~right]
        low = front[:, 2] <= np.quantile(front[:, 2], config.lean_low_share)
        hand = np.array([float(np.median(front[low, 0])), max(0.0, float(front[:, 1].max())),
                         float(front[low, 2].mean())])
        return self.to_map(hand)

    def bin_of(self, point: ArrayLike, config: PoseConfig, front_m: float) -> Bin | None:
        """Return the bin whose box (grown by the tolerances) holds a map point, or None.

        The box grows by ``bin_tolerance_m`` across and up and down, by ``front_m`` at
        its front. Of several, the one whose own box is nearest.
        """
        p = self.to_shelf(point)
        best: tuple[float, Bin] | None = None
        tol, front = config.bin_tolerance_m, front_m
        for bin_ in self.bins:
            low, high = np.asarray(bin_.min_m), np.asarray(bin_.max_m)
            grown_low = low - np.array([tol, front, tol])
            if np.all(p >= grown_low) and np.all(p <= high + tol):
                distance = float(np.linalg.norm(np.maximum(np.maximum(low - p, p - high), 0.0)))
                if best is None or distance < best[0]:
                    best = (distance, bin_)
        return best[1] if best is not None else None


def nearest_shelf(x_m: float, y_m: float, shelves: Sequence[ShelfFront],
                  near_m: float) -> ShelfFront | None:
    """Return the shelf whose front a floor point is nearest, within ``near_m``; or None."""
    best: tuple[float, ShelfFront] | None = None
    for shelf in shelves:
        distance = shelf.front_distance(x_m, y_m, margin_m=0.5 * near_m)
        if distance is not None and distance <= near_m and (best is None or distance < best[0]):
            best = (distance, shelf)
    return best[1] if best is not None else None

