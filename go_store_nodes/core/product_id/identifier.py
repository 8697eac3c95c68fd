"""Product identification at shelf events: bin crops before and after, classified.

At a shelf event (bin, start, end, pick or return) every camera that sees the bin's front
gives two frames: the last colour frame before ``start`` and the first after ``end``.
In the bin's pixel region the pixels that differ between them are the item that left (a
pick: the item is in the before frame) or came (a return: in the after frame); those
pixels are classified. One observation per camera and event; its id is
``<event id>/<camera id>`` so that evidence cites the shelf event it came from.

Crops round the hand: pose's skeletons say which hand was in the bin around [start,
end] (``hands.HandRecord``). That hand is followed for ``hand_follow_s`` after the end
of a pick (before the start of a return), where it holds the item out of the shelf;
each camera that sees a hand point (in front, inside the image, no shelf in the way)
classifies a disc the size of a ball of ``hand_radius_m`` round it at the colour frame
nearest in time (``hand_pixels`` says which of its pixels count). One observation per
camera and hand: ``<event id>/<camera id>/hand``, with the track and the hand.

What the person carries: the same person's torso points (or, when no hand was seen in
the bin, those of everyone within ``carried_reach_m`` of its front) before the reach and
after the weight settled (the other way round for a return). A ball of
``carried_radius_m`` round them (a basket or bag at the side) is classified with the
colours seen before played down (``features.unseen_colour_weights``): what is new there
is the item. One observation per camera and person: ``<event id>/<camera id>/carried``.

Frames wait in a ring per camera (``ring_frames``; a full ring drops its oldest frame).
An event is resolved once every camera that sees its bin has a frame after its end (and,
once skeletons come, hands and frames cover the follow and carried windows), or
``max_wait_s`` of node clock after the end (cameras without an after frame then give
nothing). Stamps are integer ns; frame stamps are capture times (header stamps).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from ..coverage import blocked_by_shelves
from ..locator.frames import FrameRejectedError
from ..store import Bin, Intrinsics, StoreDescription
from ..transforms import Transform
from .classifier import Classification, ProductClassifier
from .config import ProductIdConfig
from .crops import bin_window, changed_mask, NEAR_M, sees_bin_front, visible_share
from .features import background_weights, familiar_colour_weights, unseen_colour_weights
from .hands import HandPoint, HandRecord, SkeletonData

KINDS = ('pick', 'return')
NS_PER_S = 1_000_000_000


class EventRejectedError(ValueError):
    """A shelf event the identifier drops; ``reason`` is a counter key."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason key beside the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ShelfEventData:
    """What product identification needs of a shelf event."""

    event_id: str
    bin_id: str
    kind: str            # 'pick' or 'return'
    start_ns: int        # the hand arrived (weight began to change)
    end_ns: int          # the weight settled again


@dataclass(frozen=True, eq=False)
class _Frame:
    stamp_ns: int
    rgb: NDArray[np.uint8]


def _window_pixels(frame: _Frame, window: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    """Return the pixels of a (col0, row0, width, height) window of a frame."""
    col0, row0, width, height = window
    return frame.rgb[row0:row0 + height, col0:col0 + width]


@dataclass(frozen=True)
class _View:
    intrinsics: Intrinsics
    t_map_color: Transform


@dataclass(frozen=True)
class Observation:
    """One classified crop of one camera at one shelf event."""

    observation_id: str          # '<event id>/<camera id>'
    event_id: str
    bin_id: str
    camera_id: str
    stamp_ns: int                # capture time of the frame classified
    classification: Classification
    window: tuple[int, int, int, int]    # bin region (col0, row0, width, height) px
    changed_px: int
    # The classified crop (the bin region of the frame classified) and its changed pixels,
    # kept for inspection and visualisation.
    crop: NDArray[np.uint8] = field(repr=False, compare=False,
                                    default_factory=lambda: np.zeros((0, 0, 3), np.uint8))
    mask: NDArray[np.bool_] = field(repr=False, compare=False,
                                    default_factory=lambda: np.zeros((0, 0), bool))
    other: NDArray[np.uint8] = field(repr=False, compare=False,
                                     default_factory=lambda: np.zeros((0, 0, 3), np.uint8))
    track_id: int = 0            # person holding or carrying it (hand, carried observations)
    hand: str = ''               # 'left' or 'right' for a hand observation, 'carried' for
    #                              what the person carries, '' for a bin


@dataclass
class _Pending:
    event: ShelfEventData
    cameras: tuple[str, ...]
    done: set[str] = field(default_factory=set)


class ProductIdentifier:
    """Keeps recent colour frames per camera; classifies bin changes at shelf events."""

    def __init__(self, store: StoreDescription, classifier: ProductClassifier,
                 config: ProductIdConfig) -> None:
        """Use the store's bins and shelves (for the bin boxes) and a fitted classifier."""
        self.config = config
        self.classifier = classifier
        self._bins: dict[str, Bin] = store.bins()
        self._shelves = {s.shelf_id: s for s in store.shelves}
        self._shelf_pose = {s.shelf_id: s.t_map_shelf for s in store.shelves}
        self._frames: dict[str, deque[_Frame]] = {}
        self._views: dict[str, _View] = {}
        self._pending: list[_Pending] = []
        self.counters: dict[str, int] = {}
        self.hands = HandRecord(config.hand_record_points, self._bins,
                                int(config.skeleton_future_s * NS_PER_S))

    def count(self, key: str, increment: int = 1) -> None:
        """Add to a counter (frames, drops by reason, observations)."""
        self.counters[key] = self.counters.get(key, 0) + increment

    # Inputs --------------------------------------------------------------------------------

    def add_frame(self, camera_id: str, stamp_ns: int, rgb: NDArray[np.uint8],
                  intrinsics: Intrinsics | None, t_map_color: Transform | None) -> None:
        """Keep one colour frame (rgb8 HxWx3) with its camera's intrinsics and pose.

        Raises FrameRejectedError (reason 'no_camera_info', 'no_transform', 'wrong_size'
        or 'malformed'), counted, when the frame cannot be placed or read.
        """
        try:
            if intrinsics is None:
                raise FrameRejectedError('no_camera_info', f'camera {camera_id}: no '
                                         'camera_info yet')
            if t_map_color is None:
                raise FrameRejectedError('no_transform', f'camera {camera_id}: its colour '
                                         'frame is not in TF')
            image = np.asarray(rgb)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise FrameRejectedError('malformed', f'camera {camera_id}: need uint8 HxWx3, '
                                         f'got {image.dtype} {image.shape}')
            if image.shape[:2] != (intrinsics.height, intrinsics.width):
                raise FrameRejectedError(
                    'wrong_size', f'camera {camera_id}: image {image.shape[1]}x'
                    f'{image.shape[0]} but camera_info {intrinsics.width}x{intrinsics.height}')
        except FrameRejectedError as rejection:
            self.count(f'dropped_frame_{rejection.reason}')
            raise
        self._views[camera_id] = _View(intrinsics, t_map_color)
        ring = self._frames.setdefault(camera_id, deque())
        frame = _Frame(int(stamp_ns), image)
        if ring and frame.stamp_ns < ring[-1].stamp_ns:
            stamps = [f.stamp_ns for f in ring]
            ring.insert(bisect.bisect_right(stamps, frame.stamp_ns), frame)
        else:
            ring.append(frame)
        if len(ring) > self.config.ring_frames:
            ring.popleft()
            self.count('ring_evicted')
        self.count('frames')

    def add_skeletons(self, stamp_ns: int, skeletons: list[SkeletonData],
                      t_map_frame: Transform | None, now_ns: int | None) -> int:
        """Keep the hands of one frame of skeletons (``HandRecord.add``), counted here too.

        Raises SkeletonRejectedError for a dropped frame or skeleton (the others are kept).
        """
        try:
            return self.hands.add(stamp_ns, skeletons, t_map_frame, now_ns)
        finally:
            self.counters.update(self.hands.counters)

    def add_event(self, event: ShelfEventData) -> None:
        """Queue a shelf event; EventRejectedError (counted) for an unknown bin or kind."""
        try:
            if event.kind not in KINDS:
                raise EventRejectedError('unknown_kind', f'event {event.event_id}: kind '
                                         f'{event.kind!r} is not pick or return')
            if event.bin_id not in self._bins:
                raise EventRejectedError('unknown_bin', f'event {event.event_id}: bin '
                                         f'{event.bin_id!r} is not in the store description')
            if event.end_ns < event.start_ns:
                raise EventRejectedError('bad_times', f'event {event.event_id}: end before '
                                         'start')
        except EventRejectedError as rejection:
            self.count(f'dropped_event_{rejection.reason}')
            raise
        self.count('events')
        self._pending.append(_Pending(event, self.cameras_seeing(event.bin_id)))

    def cameras_seeing(self, bin_id: str) -> tuple[str, ...]:
        """Cameras (with a known view) in front of the bin whose image shows its region."""
        bin_ = self._bins[bin_id]
        shelf = self._shelves[bin_.shelf_id]
        others = [s for s in self._shelves.values() if s.shelf_id != shelf.shelf_id]
        seeing = []
        for camera_id, view in sorted(self._views.items()):
            if sees_bin_front(bin_, shelf.t_map_shelf, view.t_map_color) and bin_window(
                    bin_, shelf.t_map_shelf, view.t_map_color, view.intrinsics,
                    self.config.bin_margin_m, self.config.min_window_px) is not None \
                    and visible_share(bin_, shelf, view.t_map_color, view.intrinsics,
                                      others) >= self.config.min_visible_share:
                seeing.append(camera_id)
        return tuple(seeing)

    # Output --------------------------------------------------------------------------------

    def poll(self, now_ns: int | None) -> list[Observation]:
        """Classify the events whose after frames are in (or waited for long enough).

        ``now_ns`` is the node clock; None resolves only events whose every camera has
        its after frame.
        """
        observations: list[Observation] = []
        still: list[_Pending] = []
        wait_ns = int(self.config.max_wait_s * NS_PER_S)
        for pending in self._pending:
            after_ns = pending.event.end_ns + int(self.config.after_margin_s * NS_PER_S)
            ready = all(len(self._afters(c, after_ns)) >= self.config.frame_candidates
                        for c in pending.cameras) and self._hands_ready(pending.event)
            timed_out = now_ns is not None and now_ns >= pending.event.end_ns + wait_ns
            if not (ready or timed_out):
                still.append(pending)
                continue
            found = [o for o in (self._observe(pending.event, c) for c in pending.cameras)
                     if o is not None]
            found += self._observe_hands(pending.event)
            found += self._observe_carried(pending.event)
            if not pending.cameras:
                self.count('events_unseen')
            elif not found:
                self.count('events_without_observation')
            observations.extend(found)
        self._pending = still
        return observations

    def flush(self) -> list[Observation]:
        """Classify every queued event with the frames there are (end of a recording)."""
        observations: list[Observation] = []
        for pending in self._pending:
            observations.extend(o for o in (self._observe(pending.event, c)
                                            for c in pending.cameras) if o is not None)
            observations.extend(self._observe_hands(pending.event))
            observations.extend(self._observe_carried(pending.event))
        self._pending = []
        return observations

    @property
    def pending_events(self) -> int:
        """Events waiting for their after frames."""
        return len(self._pending)

    # Internals -----------------------------------------------------------------------------

    def _befores(self, camera_id: str, before_ns: int) -> list[_Frame]:
        """Return the last frames (``frame_candidates``) up to ``before_ns``, latest first."""
        found = [f for f in self._frames.get(camera_id, ()) if f.stamp_ns <= before_ns]
        return found[::-1][:self.config.frame_candidates]

    def _afters(self, camera_id: str, after_ns: int) -> list[_Frame]:
        """Return the first frames (``frame_candidates``) from ``after_ns`` on, earliest first."""
        found = [f for f in self._frames.get(camera_id, ()) if f.stamp_ns >= after_ns]
        return found[:self.config.frame_candidates]

    def _observe(self, event: ShelfEventData, camera_id: str) -> Observation | None:
        config = self.config
        befores = self._befores(camera_id,
                                event.start_ns - int(config.before_margin_s * NS_PER_S))
        afters = self._afters(camera_id, event.end_ns + int(config.after_margin_s * NS_PER_S))
        if not befores:
            ring = self._frames.get(camera_id)
            self.count('no_before_frame_evicted' if ring and len(ring) >= config.ring_frames
                       else 'no_before_frame')
            return None
        if not afters:
            self.count('no_after_frame')
            return None
        view = self._views[camera_id]
        bin_ = self._bins[event.bin_id]
        window = bin_window(bin_, self._shelf_pose[bin_.shelf_id], view.t_map_color,
                            view.intrinsics, config.bin_margin_m, config.min_window_px)
        if window is None:
            self.count('no_window')
            return None
        col0, row0, width, height = window
        rows, cols = slice(row0, row0 + height), slice(col0, col0 + width)
        # A person near the bin moves between frames; the item's change stays. The pair
        # with the fewest changed pixels (but enough for an item) shows the item best.
        best: tuple[int, _Frame, _Frame, NDArray[np.bool_]] | None = None
        for before in befores:
            for after in afters:
                if before.rgb.shape != after.rgb.shape:
                    continue
                mask = changed_mask(before.rgb[rows, cols], after.rgb[rows, cols],
                                    config.change_threshold_dn)
                changed = int(mask.sum())
                if changed >= config.min_changed_px and (best is None or changed < best[0]):
                    best = (changed, before, after, mask)
        if best is None:
            self.count('no_change')
            return None
        changed, before, after, mask = best
        if config.mask_grow_px > 0:
            size = 2 * config.mask_grow_px + 1
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
        crop_before, crop_after = before.rgb[rows, cols], after.rgb[rows, cols]
        item, frame = (crop_before, before) if event.kind == 'pick' else (crop_after, after)
        other_crop = crop_after if event.kind == 'pick' else crop_before
        strength = config.background_suppression
        views = [(item, mask, 1.0 - config.hand_side_weight,
                  background_weights(item, mask, strength))]
        if config.hand_side_weight > 0.0:
            # The same item in the shopper's hand: after a pick it is often still beside
            # the bin, before a return already there; where the shelf's boards hide the
            # units from a ceiling camera, this is the better view of it.
            views.append((other_crop, mask, config.hand_side_weight,
                          background_weights(other_crop, mask, strength)))
        classification = self.classifier.classify_views(
            [view for view in views if view[2] > 0.0])
        self.count('observations')
        other = crop_after if event.kind == 'pick' else crop_before
        return Observation(f'{event.event_id}/{camera_id}', event.event_id, event.bin_id,
                           camera_id, frame.stamp_ns, classification, window, changed,
                           item, mask, other)

    # Crops round the hand ----------------------------------------------------------------------

    def _follow_window(self, event: ShelfEventData) -> tuple[int, int]:
        """Return when the hand holds the item outside the bin: after a pick, before a return."""
        follow = int(self.config.hand_follow_s * NS_PER_S)
        if event.kind == 'pick':
            return event.end_ns, event.end_ns + follow
        return event.start_ns - follow, event.start_ns

    def _carried_windows(self, event: ShelfEventData) -> tuple[tuple[int, int], tuple[int, int]]:
        """Return (without the item, with the item) windows of what the person carries."""
        follow = int(self.config.carried_follow_s * NS_PER_S)
        reference = int(self.config.carried_reference_s * NS_PER_S)
        margin = int(self.config.before_margin_s * NS_PER_S)
        before = (event.start_ns - margin - reference, event.start_ns - margin)
        after = (event.end_ns, event.end_ns + follow)
        if event.kind == 'pick':
            return before, after
        return (event.end_ns, event.end_ns + reference), (
            event.start_ns - margin - follow, event.start_ns - margin)

    def _hands_ready(self, event: ShelfEventData) -> bool:
        """Whether hands and live cameras' frames cover the follow window (no skeletons: go)."""
        latest = self.hands.latest_ns
        if (self.config.hand_follow_s <= 0.0 and self.config.carried_follow_s <= 0.0) \
                or latest is None:
            return True
        until_ns = event.start_ns
        if self.config.hand_follow_s > 0.0:
            until_ns = max(until_ns, self._follow_window(event)[1])
        if self.config.carried_follow_s > 0.0:
            until_ns = max(until_ns, *(w[1] for w in self._carried_windows(event)))
        if latest < until_ns:
            return False
        # Cameras silent since before the event (an outage) are not waited for.
        return all(ring[-1].stamp_ns >= until_ns for ring in self._frames.values()
                   if ring and ring[-1].stamp_ns >= event.start_ns)

    def _nearest_frame(self, camera_id: str, stamp_ns: int) -> _Frame | None:
        ring = self._frames.get(camera_id)
        if not ring:
            return None
        frame = min(ring, key=lambda f: abs(f.stamp_ns - stamp_ns))
        tolerance = int(self.config.hand_frame_tolerance_s * NS_PER_S)
        return frame if abs(frame.stamp_ns - stamp_ns) <= tolerance else None

    def _disc(self, view: _View, point: tuple[float, float, float], radius_m: float
              ) -> tuple[tuple[int, int, int, int], NDArray[np.bool_]] | None:
        """Pixel window (col0, row0, width, height) and disc mask of a ball, or None."""
        local = view.t_map_color.inverse().apply(np.asarray(point, float)[None])[0]
        if local[2] < NEAR_M:
            return None
        k = view.intrinsics
        u = k.fx * local[0] / local[2] + k.cx
        v = k.fy * local[1] / local[2] + k.cy
        if not (0 <= u < k.width and 0 <= v < k.height):
            return None
        r = k.fx * radius_m / local[2]
        col0, row0 = max(0, int(np.floor(u - r))), max(0, int(np.floor(v - r)))
        col1 = min(k.width, int(np.ceil(u + r)) + 1)
        row1 = min(k.height, int(np.ceil(v + r)) + 1)
        if min(col1 - col0, row1 - row0) < self.config.min_window_px:
            return None
        rows, cols = np.mgrid[row0:row1, col0:col1]
        disc = (cols - u) ** 2 + (rows - v) ** 2 <= r * r
        return (col0, row0, col1 - col0, row1 - row0), disc

    def _hand_view(self, event: ShelfEventData, camera_id: str, point: HandPoint,
                   before: _Frame | None
                   ) -> tuple[_Frame, tuple[int, int, int, int], NDArray[np.bool_],
                              NDArray[np.float64] | None] | None:
        """Return the frame, window, item pixels and pixel weights of one hand point, or None."""
        config = self.config
        view = self._views[camera_id]
        assert point.point_m is not None
        if blocked_by_shelves(view.t_map_color.translation, np.asarray(point.point_m)[None],
                              list(self._shelves.values()))[0]:
            self.count('hand_hidden_by_shelf')
            return None
        disc = self._disc(view, point.point_m, config.hand_radius_m)
        if disc is None:
            self.count('hand_outside_image')
            return None
        frame = self._nearest_frame(camera_id, point.stamp_ns)
        if frame is None:
            self.count('hand_no_frame')
            return None
        window, mask = disc
        col0, row0, width, height = window
        crop = frame.rgb[row0:row0 + height, col0:col0 + width]
        weights = None
        if config.hand_pixels == 1:
            if before is None or before.rgb.shape != frame.rgb.shape:
                self.count('hand_no_before_frame')
                return None
            mask = mask & changed_mask(before.rgb[row0:row0 + height, col0:col0 + width],
                                       crop, config.change_threshold_dn)
        elif config.hand_pixels == 2 and point.body_m is not None:
            body = self._disc(view, point.body_m, 2.0 * config.hand_radius_m)
            if body is not None:
                (b_col, b_row, b_width, b_height), b_disc = body
                torso = frame.rgb[b_row:b_row + b_height, b_col:b_col + b_width][b_disc]
                weights = familiar_colour_weights(crop, torso, config.hand_body_suppression)
        if int(mask.sum()) < config.min_changed_px:
            self.count('hand_too_few_pixels')
            return None
        return frame, window, mask, weights

    def _observe_hands(self, event: ShelfEventData) -> list[Observation]:
        """Classify the item in the hand(s) that reached into the event's bin, per camera.

        Observation ids: '<event id>/<camera id>/hand' for the hand first in the bin,
        '<event id>/<camera id>/hand/<track id>-<hand>' for any further one.
        """
        config = self.config
        if config.hand_follow_s <= 0.0:
            return []
        pad = int(config.hand_pad_s * NS_PER_S)
        reaching = self.hands.reaching(event.bin_id, event.start_ns - pad, event.end_ns + pad)
        if not reaching:
            self.count('events_without_hand')
            return []
        since, until = self._follow_window(event)
        observations = []
        for rank, (track_id, hand) in enumerate(reaching):
            path = [p for p in self.hands.path(track_id, hand, since, until)
                    if p.bin_id != event.bin_id]
            if not path:
                self.count('hand_not_followed')
                continue
            if len(path) > config.hand_views:
                picks = np.linspace(0, len(path) - 1, config.hand_views).round().astype(int)
                path = [path[i] for i in sorted(set(picks))]
            suffix = '' if rank == 0 else f'/{track_id}-{hand}'
            for camera_id in sorted(self._views):
                befores = self._befores(
                    camera_id, event.start_ns - int(config.before_margin_s * NS_PER_S))
                before = befores[0] if befores else None
                views = [v for v in (self._hand_view(event, camera_id, p, before)
                                     for p in path) if v is not None]
                if not views:
                    continue
                classification = self.classifier.classify_views(
                    [(_window_pixels(frame, w), mask, 1.0, weights)
                     for frame, w, mask, weights in views])
                frame, window, mask, _ = views[0]
                crop = _window_pixels(frame, window)
                self.count('hand_observations')
                observations.append(Observation(
                    f'{event.event_id}/{camera_id}/hand{suffix}', event.event_id,
                    event.bin_id, camera_id, frame.stamp_ns, classification, window,
                    int(mask.sum()), crop, mask, crop, track_id, hand))
        return observations

    # What the person carries -------------------------------------------------------------------

    def _near_bin(self, event: ShelfEventData) -> list[int]:
        """Tracks whose torso came within ``carried_reach_m`` of the bin's front, nearest first.

        The front is the middle of the bin's front edge on the floor (shelf frame: y into
        the shelf), where a shopper stands; distances are on the floor, during the event.
        """
        bin_ = self._bins[event.bin_id]
        centre = bin_.center_m()
        front = self._shelf_pose[bin_.shelf_id].apply(
            np.array([[float(centre[0]), float(bin_.min_m[1]), 0.0]]))[0]
        nearest = {}
        for track_id, points in self.hands.torsos(event.start_ns, event.end_ns).items():
            distance = min(float(np.hypot(p[0] - front[0], p[1] - front[1]))
                           for _, p in points)
            if distance <= self.config.carried_reach_m:
                nearest[track_id] = distance
        return sorted(nearest, key=lambda track_id: nearest[track_id])

    def _torso_points(self, track_id: int, window: tuple[int, int]
                      ) -> list[tuple[int, tuple[float, float, float]]]:
        """Return at most ``carried_views`` of a person's torso points in a window, spread."""
        points = self.hands.bodies(track_id, window[0], window[1])
        if len(points) > self.config.carried_views:
            picks = np.linspace(0, len(points) - 1, self.config.carried_views).round()
            points = [points[i] for i in sorted(set(picks.astype(int)))]
        return points

    def _carried_crops(self, camera_id: str,
                       points: list[tuple[int, tuple[float, float, float]]]
                       ) -> list[tuple[_Frame, tuple[int, int, int, int], NDArray[np.bool_]]]:
        """Discs round torso points seen by a camera: (frame, window, disc) each."""
        config = self.config
        view = self._views[camera_id]
        crops = []
        for stamp_ns, body in points:
            if blocked_by_shelves(view.t_map_color.translation, np.asarray(body)[None],
                                  list(self._shelves.values()))[0]:
                continue
            disc = self._disc(view, body, config.carried_radius_m)
            frame = self._nearest_frame(camera_id, stamp_ns)
            if disc is None or frame is None:
                continue
            crops.append((frame, disc[0], disc[1]))
        return crops

    def _observe_carried(self, event: ShelfEventData) -> list[Observation]:
        """Classify what is new in what the person whose hand was in the bin carries.

        A picked item ends up in a basket, a bag or the other hand: round the person's
        torso, colours that were not there before the reach are the item (after a return,
        colours that are gone). Per camera: the discs without the item give the known
        colours, the discs with it are classified with known colours played down.
        Without a hand seen in the bin, everyone within ``carried_reach_m`` of its front
        is looked at (association then chooses the person by distance).
        Observation ids: '<event id>/<camera id>/carried' for the first person whose hand
        was in the bin (or the nearest), '<event id>/<camera id>/carried/<track id>' for
        any further one.
        """
        config = self.config
        if config.carried_follow_s <= 0.0:
            return []
        pad = int(config.hand_pad_s * NS_PER_S)
        tracks: list[int] = []
        for track_id, _ in self.hands.reaching(event.bin_id, event.start_ns - pad,
                                               event.end_ns + pad):
            if track_id not in tracks:
                tracks.append(track_id)
        if not tracks:
            # No hand was seen in the bin: whoever stood within reach of its front.
            tracks = self._near_bin(event)
            self.count('carried_by_distance', len(tracks))
        without, with_item = self._carried_windows(event)
        observations = []
        for rank, track_id in enumerate(tracks):
            suffix = '' if rank == 0 else f'/{track_id}'
            points_without = self._torso_points(track_id, without)
            points_with = self._torso_points(track_id, with_item)
            for camera_id in sorted(self._views):
                known = [_window_pixels(frame, w)[disc] for frame, w, disc
                         in self._carried_crops(camera_id, points_without)]
                if not known:
                    continue
                known_pixels = np.concatenate(known)
                views = []
                for frame, w, disc in self._carried_crops(camera_id, points_with):
                    crop = _window_pixels(frame, w)
                    weights = unseen_colour_weights(crop, known_pixels,
                                                    config.carried_known_px)
                    if float(weights[disc].sum()) >= config.carried_min_px:
                        views.append((frame, w, disc, weights))
                if not views:
                    self.count('carried_nothing_new')
                    continue
                classification = self.classifier.classify_views(
                    [(_window_pixels(frame, w), disc, 1.0, weights)
                     for frame, w, disc, weights in views])
                # Stamped with the view nearest the event (after a pick's end, before a
                # return's start), so that it falls in association's window of the event.
                frame, window, disc, weights = views[0 if event.kind == 'pick' else -1]
                crop = _window_pixels(frame, window)
                self.count('carried_observations')
                observations.append(Observation(
                    f'{event.event_id}/{camera_id}/carried{suffix}', event.event_id,
                    event.bin_id, camera_id, frame.stamp_ns, classification, window,
                    int(round(float(weights[disc].sum()))), crop, disc & (weights > 0.5),
                    crop, track_id, 'carried'))
        return observations
