"""Product identification at shelf events: bin crops before and after, classified.

At a shelf event (bin, start, end, pick or return) every camera that sees the bin's front
gives two frames: the last colour frame before ``start`` and the first after ``end``.
In the bin's pixel region the pixels that differ between them are the item that left (a
pick: the item is in the before frame) or came (a return: in the after frame); those
pixels are classified. One observation per camera and event; its id is
``<event id>/<camera id>`` so that evidence cites the shelf event it came from.

Frames wait in a ring per camera (``ring_frames``; a full ring drops its oldest frame).
An event is resolved once every camera that sees its bin has a frame after its end, or
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

from ..locator.frames import FrameRejectedError
from ..store import Bin, Intrinsics, StoreDescription
from ..transforms import Transform
from .classifier import Classification, ProductClassifier
from .config import ProductIdConfig
from .crops import bin_window, changed_mask, sees_bin_front, visible_share
from .features import background_weights

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
                        for c in pending.cameras)
            timed_out = now_ns is not None and now_ns >= pending.event.end_ns + wait_ns
            if not (ready or timed_out):
                still.append(pending)
                continue
            found = [o for o in (self._observe(pending.event, c) for c in pending.cameras)
                     if o is not None]
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
