"""Where the shoppers' hands were: a bounded, time-ordered record from pose's skeletons.

Each entry is one hand of one tracked person at one capture time: its 3D point in map
(m) and the bin it is in ('' if none). Product ID follows the hand that was in a bin
during a shelf event to look at the item in it (``identifier.py``). Input that cannot be
placed (a joint that is not a finite number, a bin not in the store description, a stamp
from the future, a frame not in TF) raises ``SkeletonRejectedError`` with a counter key.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
import math
from typing import Iterable, Sequence

import numpy as np

from ..transforms import Transform

HANDS = ('left', 'right')
# Joint numbers of go_store/Keypoint (msg/Keypoint.msg), repeated so the core stays pure.
NECK, LEFT_HAND, RIGHT_HAND, PELVIS = 1, 6, 7, 8


class SkeletonRejectedError(ValueError):
    """A skeleton (or a frame of them) the record drops; ``reason`` is a counter key."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason key beside the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class HandPoint:
    """One hand of one person at one time."""

    stamp_ns: int
    track_id: int
    hand: str                                  # 'left' or 'right'
    point_m: tuple[float, float, float] | None  # map, m; None when the joint was not seen
    bin_id: str                                # bin the hand is in, '' if none
    body_m: tuple[float, float, float] | None = None   # a torso point (map, m), if seen


@dataclass(frozen=True)
class SkeletonData:
    """What product ID needs of one Skeleton, in the frame of its array's header."""

    track_id: int
    left_hand: tuple[float, float, float] | None
    right_hand: tuple[float, float, float] | None
    left_bin_id: str
    right_bin_id: str
    body: tuple[float, float, float] | None = None     # torso point (neck or pelvis)


def skeleton_data(track_id: int, joints: dict[int, tuple[float, float, float, float]],
                  left_bin_id: str, right_bin_id: str) -> SkeletonData:
    """Build a SkeletonData from joints {Keypoint joint: (x, y, z, confidence)}.

    A joint of confidence 0 (not seen) counts as absent; the torso point is the pelvis,
    else the neck.
    """
    def seen(joint: int) -> tuple[float, float, float] | None:
        value = joints.get(joint)
        if value is None or not value[3] > 0.0:
            return None
        return (float(value[0]), float(value[1]), float(value[2]))
    return SkeletonData(int(track_id), seen(LEFT_HAND), seen(RIGHT_HAND), str(left_bin_id),
                        str(right_bin_id), seen(PELVIS) or seen(NECK))


class HandRecord:
    """The last ``capacity`` hand points, in stamp order (oldest dropped, counted)."""

    def __init__(self, capacity: int, bins: Iterable[str], future_tolerance_ns: int) -> None:
        """Keep at most ``capacity`` points; ``bins`` are the store's bin ids."""
        if capacity < 1:
            raise ValueError(f'capacity must be at least 1, got {capacity}')
        self.capacity = capacity
        self._bins = frozenset(bins)
        self._future_ns = int(future_tolerance_ns)
        self._points: deque[HandPoint] = deque()
        self.counters: dict[str, int] = {}

    def count(self, key: str, increment: int = 1) -> None:
        """Add to a counter."""
        self.counters[key] = self.counters.get(key, 0) + increment

    def __len__(self) -> int:
        """Hand points kept."""
        return len(self._points)

    def add(self, stamp_ns: int, skeletons: Sequence[SkeletonData],
            t_map_frame: Transform | None, now_ns: int | None) -> int:
        """Keep the hands of one frame of skeletons; return how many skeletons were kept.

        ``t_map_frame`` places the skeletons' frame in map (None: not in TF, the whole
        frame is dropped). ``now_ns`` (node clock, None to skip the check) refuses stamps
        more than the future tolerance ahead. A skeleton with a non-finite joint or an
        unknown bin is dropped alone; each drop is counted by reason.
        """
        try:
            if t_map_frame is None:
                raise SkeletonRejectedError('no_transform', 'skeleton frame not in TF')
            if now_ns is not None and stamp_ns > now_ns + self._future_ns:
                raise SkeletonRejectedError(
                    'future_stamp', f'skeletons stamped {(stamp_ns - now_ns) / 1e9:.3f} s '
                    'ahead of the clock')
        except SkeletonRejectedError as rejection:
            self.count(f'dropped_skeletons_{rejection.reason}', max(1, len(skeletons)))
            raise
        kept = 0
        problems: list[SkeletonRejectedError] = []
        for skeleton in skeletons:
            try:
                points = self._points_of(stamp_ns, skeleton, t_map_frame)
            except SkeletonRejectedError as rejection:
                self.count(f'dropped_skeletons_{rejection.reason}')
                problems.append(rejection)
                continue
            for point in points:
                self._insert(point)
            kept += 1
        self.count('skeletons', kept)
        if problems:
            raise problems[0]
        return kept

    def _points_of(self, stamp_ns: int, skeleton: SkeletonData, t_map_frame: Transform
                   ) -> list[HandPoint]:
        out = []
        body = self._mapped(skeleton.track_id, 'body', skeleton.body, t_map_frame)
        for hand, joint, bin_id in (('left', skeleton.left_hand, skeleton.left_bin_id),
                                    ('right', skeleton.right_hand, skeleton.right_bin_id)):
            if bin_id and bin_id not in self._bins:
                raise SkeletonRejectedError('unknown_bin', f'track {skeleton.track_id}: '
                                            f'{hand} hand in unknown bin {bin_id!r}')
            point = self._mapped(skeleton.track_id, f'{hand} hand', joint, t_map_frame)
            out.append(HandPoint(int(stamp_ns), int(skeleton.track_id), hand, point, bin_id,
                                 body))
        return out

    @staticmethod
    def _mapped(track_id: int, what: str, joint: tuple[float, float, float] | None,
                t_map_frame: Transform) -> tuple[float, float, float] | None:
        if joint is None:
            return None
        if not all(math.isfinite(v) for v in joint):
            raise SkeletonRejectedError('nan_joint', f'track {track_id}: {what} is not a '
                                        'finite point')
        mapped = t_map_frame.apply(np.asarray(joint, dtype=float)[None])[0]
        return (float(mapped[0]), float(mapped[1]), float(mapped[2]))

    def _insert(self, point: HandPoint) -> None:
        if self._points and point.stamp_ns < self._points[-1].stamp_ns:
            stamps = [p.stamp_ns for p in self._points]
            self._points.insert(bisect.bisect_right(stamps, point.stamp_ns), point)
        else:
            self._points.append(point)
        if len(self._points) > self.capacity:
            self._points.popleft()
            self.count('hand_points_evicted')

    @property
    def latest_ns(self) -> int | None:
        """Stamp of the newest point (None when empty)."""
        return self._points[-1].stamp_ns if self._points else None

    def reaching(self, bin_id: str, start_ns: int, end_ns: int) -> list[tuple[int, str]]:
        """(track id, hand) of every hand in ``bin_id`` at a time in [start, end], by stamp."""
        found: list[tuple[int, str]] = []
        for point in self._points:
            if start_ns <= point.stamp_ns <= end_ns and point.bin_id == bin_id and \
                    (point.track_id, point.hand) not in found:
                found.append((point.track_id, point.hand))
        return found

    def bodies(self, track_id: int, start_ns: int, end_ns: int
               ) -> list[tuple[int, tuple[float, float, float]]]:
        """Return (stamp, torso point) of one person in [start, end], oldest first."""
        return self.torsos(start_ns, end_ns).get(track_id, [])

    def torsos(self, start_ns: int, end_ns: int
               ) -> dict[int, list[tuple[int, tuple[float, float, float]]]]:
        """Return {track: [(stamp, torso point)]} of everyone in [start, end], oldest first."""
        found: dict[int, dict[int, tuple[float, float, float]]] = {}
        for p in self._points:
            if start_ns <= p.stamp_ns <= end_ns and p.body_m is not None:
                found.setdefault(p.track_id, {}).setdefault(p.stamp_ns, p.body_m)
        return {track: sorted(points.items()) for track, points in found.items()}

    def path(self, track_id: int, hand: str, start_ns: int, end_ns: int) -> list[HandPoint]:
        """Return the seen points of one hand in [start, end], oldest first."""
        return [p for p in self._points if start_ns <= p.stamp_ns <= end_ns
                and p.track_id == track_id and p.hand == hand and p.point_m is not None]
