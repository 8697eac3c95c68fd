"""The pose estimator: depth frames of every camera and tracks in, stick figures out.

The depth pipeline is the person locator's (``core/locator``): per camera a
``CameraFrameLocator`` (background, foreground, map points) and one
``FrameSetAssembler`` for approximate-time frame sets. A completed frame set waits for
the tracks of its own capture time (the tracker stamps its tracks with the frame set's
stamp, computed from the same frames), at most ``track_wait_s``; then every track within
``near_shelf_m`` of a shelf front gets a stick figure from the foreground points nearer
to it than to any other track (``figure.stick_figure``), each hand its bin and the stamp
since which it has been in it. Points of tracked people are protected from the
background, as the locator does for the people it finds.

Where shelves weigh their bins (``add_weights``: the load-cell batches), the bin of a
hand also takes what the load cells felt. A hand goes into a bin to take, put back or
touch something, and that bin's load cell is then unsettled (the fusion core's
``BinSignal``). From above, a hand in a bin is mostly hidden under the board over it and
is seen a level off, so a hand is placed in the unsettled bin of its column nearest its
height (within ``weight_snap_m``), and without such a bin it is in none: a hand that
moves nothing in a bin takes nothing (and is often a neighbour's hand, or a hand at the
front of the shelf that is not in it). A shelf whose load cells are silent for
``weight_stale_s`` is judged by sight alone.

A bin whose load cell is unsettled while no hand is seen in it (a hand under the board,
behind the head, or a leaning forearm seen in front of another column) still holds a
hand: of the people at that shelf who are not reaching into another unsettled bin, the
one whose head is within ``weight_reach_m`` of the bin's front, when the next is at
least ``weight_reach_margin_m`` farther. Such a hand is placed at the bin's front, on
the person's side towards it, with ``inferred_confidence``. With two people as near,
nobody's hand is placed: who it was is left to association (and its review).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..fusion.config import FusionConfig
from ..fusion.fusion import LoadCellSamples
from ..fusion.segmenter import BinSignal
from ..locator.camera import CameraFrameLocator, FloorGrid
from ..locator.config import LocatorConfig
from ..locator.frames import CameraObservation, DepthFrame, FrameRejectedError
from ..locator.sync import FrameSet, FrameSetAssembler
from ..store import Bin, Shelf
from .config import PoseConfig
from .figure import Joint, JOINTS, nearest_shelf, ShelfFront, SIDES, stick_figure

TRACK_FRAMES_KEPT = 32
FORGET_HANDS_AFTER_NS = 10 * 1_000_000_000
# Unsettled periods of a bin kept (the oldest go first): a few minutes of a busy bin.
BIN_PERIODS_KEPT = 64


class PoseInputError(ValueError):
    """Tracks the estimator drops; ``reason`` is a short counter key, e.g. 'out_of_order'."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason key beside the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TrackState:
    """One tracked person at the stamp of its track array (map frame)."""

    track_id: int
    x_m: float                         # floor point below the head
    y_m: float
    vx_mps: float = 0.0
    vy_mps: float = 0.0


@dataclass(frozen=True)
class HandInBin:
    """A hand in a bin, and since when (capture stamp of the first frame set it was)."""

    bin_id: str
    shelf_id: str
    since_ns: int


@dataclass(frozen=True)
class Skeleton:
    """The stick figure of one track near a shelf, and which bin each hand is in."""

    track_id: int
    shelf_id: str                      # the shelf whose front the person is near
    joints: tuple[Joint, ...]          # figure.JOINTS order; confidence 0 = not seen
    hands: Mapping[str, HandInBin]     # 'left' / 'right' -> bin; absent: in no bin

    def hand_bin(self, side: str) -> str:
        """Return the bin id a hand is in, '' if none."""
        hand = self.hands.get(side)
        return hand.bin_id if hand is not None else ''


@dataclass(frozen=True)
class SkeletonSet:
    """The stick figures of one frame set."""

    stamp_ns: int                      # capture time of the frame set (mean of its frames)
    camera_ids: tuple[str, ...]
    skeletons: tuple[Skeleton, ...]
    tracks_stamp_ns: int | None        # stamp of the track array used; None: no tracks


class _BinLoad:
    """When one bin's load cell was unsettled: a hand in the bin (pick, return, touch)."""

    def __init__(self, config: FusionConfig) -> None:
        self.signal = BinSignal(config)
        self.settle_ns = int(round(config.settle_s * 1e9))
        self.periods: deque[tuple[int, int]] = deque(maxlen=BIN_PERIODS_KEPT)
        self.last_ns: int | None = None

    def add(self, stamp_ns: int, grams: float) -> None:
        if self.last_ns is not None and stamp_ns <= self.last_ns:
            return
        since = self.signal.moving_since_ns
        self.signal.add(stamp_ns, grams)
        if since is not None and self.signal.moving_since_ns is None:
            # Settled: the new level began ``settle_s`` before it was believed.
            self.periods.append((since, max(since, stamp_ns - self.settle_ns)))
        self.last_ns = stamp_ns

    def unsettled(self, low_ns: int, high_ns: int) -> bool:
        """Whether the cell was unsettled at some time in [low_ns, high_ns]."""
        return self.unsettled_since(low_ns, high_ns) is not None

    def unsettled_since(self, low_ns: int, high_ns: int) -> int | None:
        """Return the start of the latest unsettled period meeting [low_ns, high_ns], or None."""
        since = self.signal.moving_since_ns
        if since is not None and since <= high_ns:
            return since
        starts = [start for start, end in self.periods if start <= high_ns and low_ns <= end]
        return max(starts) if starts else None


@dataclass
class _HandState:
    bin_id: str
    since_ns: int
    last_ns: int
    frames: int = 1                    # frame sets seen in this bin since since_ns
    seen_ns: int | None = None         # last frame set it was seen (not only felt) there


def _side_of(point: np.ndarray, head: tuple[float, float, float],
             facing: tuple[float, float]) -> str:
    """Return 'left' or 'right': the side of the head axis a map point lies on."""
    dx, dy = float(point[0]) - head[0], float(point[1]) - head[1]
    return 'left' if facing[0] * dy - facing[1] * dx >= 0.0 else 'right'


def _inside(value: float, low: float, high: float) -> float:
    """Return ``value`` moved into [low, high], kept min(5 cm, a quarter of it) off its ends."""
    margin = min(0.05, 0.25 * (high - low))
    return min(max(value, low + margin), high - margin)


def _into_bin(shelf: ShelfFront, hand: np.ndarray, bin_: Bin
              ) -> tuple[float, float, float] | None:
    """Return a map hand moved to the height range of a bin, or None if already in it."""
    local = shelf.to_shelf(hand)
    height = _inside(float(local[2]), bin_.min_m[2], bin_.max_m[2])
    if height == float(local[2]):
        return None
    local[2] = height
    point = shelf.to_map(local)
    return float(point[0]), float(point[1]), float(point[2])


@dataclass
class _Draft:
    """A stick figure being built: joints and hands may still change in this frame set."""

    track_id: int
    shelf: ShelfFront
    joints: list[Joint]
    hands: dict[str, HandInBin]
    head_xy: tuple[float, float]       # map, the head seen (else the track's floor point)
    weighed: bool                      # the shelf's load cells are heard from


class PoseEstimator:
    """Stick figures of tracked people near shelves from many unsynchronised cameras."""

    def __init__(self, config: PoseConfig, locator_config: LocatorConfig,
                 camera_fps: Mapping[str, float], floor_min_xy_m: tuple[float, float],
                 floor_max_xy_m: tuple[float, float], shelves: Sequence[Shelf]) -> None:
        """Prepare for the cameras named (id -> nominal fps) over the floor rectangle."""
        if not camera_fps:
            raise ValueError('the pose estimator needs at least one camera')
        for camera_id, fps in camera_fps.items():
            if not fps > 0.0:
                raise ValueError(f'camera {camera_id!r}: nominal fps must be > 0, got {fps}')
        self.config = config
        self.locator_config = locator_config
        self.grid = FloorGrid.covering(floor_min_xy_m, floor_max_xy_m, locator_config.cell_m)
        self.cameras = {c: CameraFrameLocator(c, self.grid, locator_config) for c in camera_fps}
        self.assembler: FrameSetAssembler[CameraObservation] = FrameSetAssembler(
            camera_fps, locator_config.ns('sync_tolerance_s'), locator_config.ns('max_wait_s'),
            locator_config.ns('outage_after_s'))
        self.shelves = [ShelfFront.of(s) for s in shelves]
        self._last_depth_ns: dict[str, int] = {}
        self._tracks: deque[tuple[int, tuple[TrackState, ...]]] = deque(
            maxlen=TRACK_FRAMES_KEPT)
        self._waiting: deque[FrameSet[CameraObservation]] = deque()
        self._hands: dict[tuple[int, str], _HandState] = {}
        self._bin_ids = frozenset(b.bin_id for s in shelves for b in s.bins)
        self._loads: dict[str, _BinLoad] = {}
        self._weighed_ns: dict[str, int] = {}   # shelf id -> stamp of its last sample
        self._load_config = FusionConfig(depart_g=config.weight_depart_g,
                                         stable_band_g=config.weight_stable_band_g)
        self.dropped: dict[str, int] = {}
        self.frame_sets = 0

    def set_shelf_pose(self, shelf: Shelf) -> None:
        """Replace a shelf's pose (e.g. from TF) by the one given."""
        self.shelves = [ShelfFront.of(shelf) if s.shelf_id == shelf.shelf_id else s
                        for s in self.shelves]

    # Inputs --------------------------------------------------------------------------------

    def add_tracks(self, tracks: Sequence[TrackState], stamp_ns: int,
                   received_ns: int | None = None) -> list[SkeletonSet]:
        """Take one track array; return the frame sets it lets through.

        Raises PoseInputError ('out_of_order': not after the previous array;
        'future_stamp': more than the locator's ``max_future_s`` after its receive time).
        """
        if self._tracks and stamp_ns <= self._tracks[-1][0]:
            raise PoseInputError('out_of_order', f'tracks stamped {stamp_ns} are not after the '
                                 f'previous array ({self._tracks[-1][0]})')
        if received_ns is not None and \
                stamp_ns - received_ns > self.locator_config.ns('max_future_s'):
            raise PoseInputError('future_stamp', f'tracks stamped '
                                 f'{(stamp_ns - received_ns) / 1e9:.3f} s after their receive '
                                 'time')
        for track in tracks:
            if not all(np.isfinite((track.x_m, track.y_m, track.vx_mps, track.vy_mps))):
                raise PoseInputError('non_finite', f'track {track.track_id} has a non-finite '
                                     'position or velocity')
        self._tracks.append((stamp_ns, tuple(tracks)))
        return self._drain(None)

    def add_depth(self, frame: DepthFrame) -> list[SkeletonSet]:
        """Take one depth frame; return the frame sets that are ready, with figures.

        Raises FrameRejectedError (unknown_camera, future_stamp, out_of_order, late,
        no_depth, wrong_size) for a frame it drops.
        """
        camera = self.cameras.get(frame.camera_id)
        if camera is None:
            raise FrameRejectedError('unknown_camera', f'camera {frame.camera_id!r} is not in the '
                                     'store description')
        if frame.received_ns is not None and \
                frame.stamp_ns - frame.received_ns > self.locator_config.ns('max_future_s'):
            raise FrameRejectedError(
                'future_stamp', f'stamp is {(frame.stamp_ns - frame.received_ns) / 1e9:.3f} s '
                'after its receive time')
        last = self._last_depth_ns.get(frame.camera_id)
        if last is not None and frame.stamp_ns <= last:
            raise FrameRejectedError('out_of_order', f'stamp {frame.stamp_ns} is not after the '
                                     f'previous frame ({last})')
        observation = camera.process(frame)
        self._waiting.extend(self.assembler.add(observation))
        self._last_depth_ns[frame.camera_id] = frame.stamp_ns
        return self._drain(None)

    def add_weights(self, samples: LoadCellSamples) -> None:
        """Take one load-cell batch of a shelf: when each of its bins was unsettled.

        NaN samples (lost) are skipped; bins not in the store description are ignored;
        samples not after a bin's previous one are skipped.
        """
        for column, bin_id in enumerate(samples.bin_ids):
            if bin_id not in self._bin_ids:
                continue
            load = self._loads.get(bin_id)
            if load is None:
                load = self._loads[bin_id] = _BinLoad(self._load_config)
            for row, grams in enumerate(samples.grams[:, column]):
                if np.isfinite(grams):
                    load.add(samples.first_stamp_ns + row * samples.sample_period_ns,
                             float(grams))
        last = samples.last_stamp_ns
        self._weighed_ns[samples.shelf_id] = max(self._weighed_ns.get(samples.shelf_id, last),
                                                 last)

    def flush(self, now_ns: int) -> list[SkeletonSet]:
        """Emit frame sets whose wait (for cameras, then for tracks) is over at ``now_ns``."""
        self._waiting.extend(self.assembler.flush(now_ns))
        return self._drain(now_ns)

    # Frame sets ----------------------------------------------------------------------------

    def _drain(self, now_ns: int | None) -> list[SkeletonSet]:
        done = []
        limit = int(self.config.max_queued_sets)
        while len(self._waiting) > limit:
            self._waiting.popleft()
            self.dropped['queue_full'] = self.dropped.get('queue_full', 0) + 1
        newest_tracks = self._tracks[-1][0] if self._tracks else None
        newest_depth = max(self._last_depth_ns.values(), default=None)
        wait = self.config.ns('track_wait_s')
        while self._waiting:
            frame_set = self._waiting[0]
            ready = newest_tracks is not None and newest_tracks >= frame_set.stamp_ns
            clock = max(v for v in (now_ns, newest_depth) if v is not None) \
                if (now_ns is not None or newest_depth is not None) else frame_set.stamp_ns
            if not ready and clock - frame_set.stamp_ns <= wait:
                break
            self._waiting.popleft()
            done.append(self._estimate(frame_set))
        return done

    def _tracks_at(self, stamp_ns: int) -> tuple[int | None, tuple[TrackState, ...]]:
        """Return the track array nearest ``stamp_ns`` (within max_track_age_s), moved to it."""
        if not self._tracks:
            return None, ()
        stamp, tracks = min(self._tracks, key=lambda item: abs(item[0] - stamp_ns))
        age_s = (stamp_ns - stamp) * 1e-9
        if abs(age_s) > self.config.max_track_age_s:
            return None, ()
        return stamp, tuple(TrackState(t.track_id, t.x_m + t.vx_mps * age_s,
                                       t.y_m + t.vy_mps * age_s, t.vx_mps, t.vy_mps)
                            for t in tracks)

    def _estimate(self, frame_set: FrameSet[CameraObservation]) -> SkeletonSet:
        cfg = self.config
        self.frame_sets += 1
        observations = frame_set.members
        tracks_stamp, tracks = self._tracks_at(frame_set.stamp_ns)
        camera_ids = tuple(o.camera_id for o in observations)
        if not tracks:
            return SkeletonSet(frame_set.stamp_ns, camera_ids, (), tracks_stamp)
        points = np.concatenate([o.points for o in observations]).astype(np.float64)
        centres = np.array([(t.x_m, t.y_m) for t in tracks])
        owner = np.full(len(points), -1, np.int64)
        if len(points):
            distance = np.hypot(points[:, 0, None] - centres[None, :, 0],
                                points[:, 1, None] - centres[None, :, 1])
            nearest = np.argmin(distance, axis=1)
            owner = np.where(distance[np.arange(len(points)), nearest] <= cfg.body_radius_m,
                             nearest, -1)
        # Tracked people stay foreground however long they stand still (as in the locator).
        start = 0
        for observation in observations:
            count = len(observation.points)
            mine = owner[start:start + count] >= 0
            self.cameras[observation.camera_id].protect(observation.pixels[mine],
                                                        observation.stamp_ns)
            start += count
        drafts: list[_Draft] = []
        for k, track in enumerate(tracks):
            shelf = nearest_shelf(track.x_m, track.y_m, self.shelves, cfg.near_shelf_m)
            if shelf is None:
                continue
            facing = shelf.inward_xy()
            own = points[owner == k]
            figure = stick_figure(own, (track.x_m, track.y_m), facing, cfg)
            hands = {}
            joints = list(figure.joints)
            head = figure.joint('head')
            leaning = shelf.leaning_hand(own, head.position, cfg) \
                if head.confidence > 0.0 else None
            weighed = self._weighs(shelf.shelf_id, frame_set.stamp_ns)
            for side in SIDES:
                # An arm seen reaching counts once its hand is seen inside a bin's box; else
                # the hand of a person leaning in, on the side of the head it lies.
                hand = figure.hands.get(side)
                bin_ = shelf.bin_of(hand, cfg, 0.0) if hand is not None else None
                if bin_ is None and leaning is not None and \
                        side == _side_of(leaning, head.position, facing):
                    hand = leaning
                    bin_ = shelf.bin_of(leaning, cfg, cfg.bin_front_tolerance_m)
                    index = JOINTS.index(f'{side}_hand')
                    joints[index] = Joint(joints[index].name, (
                        float(leaning[0]), float(leaning[1]), float(leaning[2])),
                        cfg.inferred_confidence)
                if weighed and hand is not None and bin_ is not None:
                    # Only a bin of its column whose load cell felt it (see the docstring);
                    # a hand seen a level off is moved to the height of that bin.
                    bin_ = self._felt_bin(shelf, hand, bin_, frame_set.stamp_ns)
                    if bin_ is not None:
                        index = JOINTS.index(f'{side}_hand')
                        moved = _into_bin(shelf, hand, bin_)
                        if moved is not None:
                            joints[index] = Joint(joints[index].name, moved,
                                                  min(joints[index].confidence,
                                                      cfg.inferred_confidence))
                state = self._hand_state(track.track_id, side,
                                         bin_.bin_id if bin_ is not None else '',
                                         frame_set.stamp_ns, seen=True)
                if bin_ is not None and state is not None:
                    hands[side] = HandInBin(bin_.bin_id, shelf.shelf_id, state.since_ns)
            head_xy = (head.position[0], head.position[1]) if head.confidence > 0.0 \
                else (track.x_m, track.y_m)
            drafts.append(_Draft(track.track_id, shelf, joints, hands, head_xy, weighed))
        for shelf_id in {d.shelf.shelf_id for d in drafts if d.weighed}:
            self._place_felt_hands([d for d in drafts if d.shelf.shelf_id == shelf_id],
                                   frame_set.stamp_ns)
        skeletons = tuple(Skeleton(d.track_id, d.shelf.shelf_id, tuple(d.joints), d.hands)
                          for d in drafts)
        self._forget(frame_set.stamp_ns)
        return SkeletonSet(frame_set.stamp_ns, camera_ids, skeletons, tracks_stamp)

    def _place_felt_hands(self, drafts: list[_Draft], stamp_ns: int) -> None:
        """Give each unsettled bin of one shelf that no seen hand explains its reacher's hand.

        See the module docstring. ``drafts`` are the figures of this frame set at the shelf.
        """
        cfg = self.config
        pad = cfg.ns('weight_pad_s')
        shelf = drafts[0].shelf
        periods: dict[str, int] = {}
        for bin_ in shelf.bins:
            load = self._loads.get(bin_.bin_id)
            since = load.unsettled_since(stamp_ns - pad, stamp_ns + pad) \
                if load is not None else None
            if since is not None:
                periods[bin_.bin_id] = since
        if not periods:
            return
        # A bin a hand was seen in (confirmed) during its unsettled period is explained; a
        # person with a hand in an unsettled bin during its period is reaching into it.
        explained: set[str] = set()
        reaching: dict[int, set[str]] = {}
        for (track_id, _), state in self._hands.items():
            since = periods.get(state.bin_id)
            if since is None or state.last_ns < since - pad:
                continue
            reaching.setdefault(track_id, set()).add(state.bin_id)
            if state.seen_ns is not None and state.seen_ns >= since - pad and \
                    state.frames >= cfg.confirm_frames:
                explained.add(state.bin_id)
        for bin_ in shelf.bins:
            if bin_.bin_id not in periods or bin_.bin_id in explained:
                continue
            near = []
            for draft in drafts:
                if reaching.get(draft.track_id, set()) - {bin_.bin_id}:
                    continue  # reaching into another bin
                h = shelf.to_shelf((draft.head_xy[0], draft.head_xy[1], 0.0))
                across = max(bin_.min_m[0] - h[0], h[0] - bin_.max_m[0], 0.0)
                distance = float(np.hypot(across, max(bin_.min_m[1] - h[1], 0.0)))
                if distance <= cfg.weight_reach_m:
                    near.append((distance, draft.track_id, draft, float(h[0])))
            near.sort(key=lambda item: (item[0], item[1]))
            if not near or (len(near) > 1 and
                            near[1][0] - near[0][0] < cfg.weight_reach_margin_m):
                continue
            _, track_id, draft, head_x = near[0]
            middle = shelf.to_map((0.5 * (bin_.min_m[0] + bin_.max_m[0]), 0.0, 0.0))
            side = _side_of(middle, (*draft.head_xy, 0.0), shelf.inward_xy())
            point = shelf.to_map((_inside(head_x, bin_.min_m[0], bin_.max_m[0]),
                                  bin_.min_m[1], 0.5 * (bin_.min_m[2] + bin_.max_m[2])))
            index = JOINTS.index(f'{side}_hand')
            draft.joints[index] = Joint(draft.joints[index].name, (
                float(point[0]), float(point[1]), float(point[2])), cfg.inferred_confidence)
            placed = self._hand_state(track_id, side, bin_.bin_id, stamp_ns, seen=False)
            reaching.setdefault(track_id, set()).add(bin_.bin_id)
            if placed is not None:
                draft.hands[side] = HandInBin(bin_.bin_id, shelf.shelf_id, placed.since_ns)

    def _weighs(self, shelf_id: str, stamp_ns: int) -> bool:
        """Whether a shelf's load cells were heard from lately (around ``stamp_ns``)."""
        last = self._weighed_ns.get(shelf_id)
        return last is not None and abs(stamp_ns - last) <= self.config.ns('weight_stale_s')

    def _felt_bin(self, shelf: ShelfFront, hand: np.ndarray, seen: Bin, stamp_ns: int
                  ) -> Bin | None:
        """Return the unsettled bin of the seen bin's column nearest the hand's height."""
        pad = self.config.ns('weight_pad_s')
        z = float(shelf.to_shelf(hand)[2])
        best: tuple[float, Bin] | None = None
        for bin_ in shelf.bins:
            if bin_.max_m[0] <= seen.min_m[0] or bin_.min_m[0] >= seen.max_m[0]:
                continue  # another column
            load = self._loads.get(bin_.bin_id)
            if load is None or not load.unsettled(stamp_ns - pad, stamp_ns + pad):
                continue
            off = max(bin_.min_m[2] - z, z - bin_.max_m[2], 0.0)
            if off <= self.config.weight_snap_m and (best is None or off < best[0]):
                best = (off, bin_)
        return best[1] if best is not None else None

    def _hand_state(self, track_id: int, side: str, bin_id: str, stamp_ns: int,
                    seen: bool) -> _HandState | None:
        """Update the entry stamp of one hand; return its state once confirmed in a bin.

        ``seen``: the hand was seen in the bin, not only placed there by its load cell.
        """
        key = (track_id, side)
        if not bin_id:
            return None
        state = self._hands.get(key)
        if state is None or state.bin_id != bin_id or \
                stamp_ns - state.last_ns > self.config.ns('hold_s'):
            state = _HandState(bin_id, stamp_ns, stamp_ns)
            self._hands[key] = state
        elif stamp_ns > state.last_ns:
            state.frames += 1
        state.last_ns = stamp_ns
        if seen:
            state.seen_ns = stamp_ns
        return state if state.frames >= self.config.confirm_frames else None

    def _forget(self, stamp_ns: int) -> None:
        """Drop entry stamps of hands unseen in a bin for a long time."""
        stale = [k for k, s in self._hands.items()
                 if stamp_ns - s.last_ns > FORGET_HANDS_AFTER_NS]
        for key in stale:
            del self._hands[key]

    def hands_in_bins(self) -> dict[tuple[int, str], tuple[str, int]]:
        """Every hand confirmed in a bin: (track id, side) -> (bin id, since_ns)."""
        return {k: (s.bin_id, s.since_ns) for k, s in self._hands.items()
                if s.frames >= self.config.confirm_frames}
