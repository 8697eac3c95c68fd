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

import numpy as np
from numpy.typing import NDArray

from ..locator.frames import FrameRejectedError
from ..store import Bin, Intrinsics, StoreDescription
from ..transforms import Transform
from .classifier import Classification, ProductClassifier
from .config import ProductIdConfig
from .crops import bin_window, changed_mask, sees_bin_front

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
        pose = self._shelf_pose[bin_.shelf_id]
        seeing = []
        for camera_id, view in sorted(self._views.items()):
            if sees_bin_front(bin_, pose, view.t_map_color) and bin_window(
                    bin_, pose, view.t_map_color, view.intrinsics, self.config.bin_margin_m,
                    self.config.min_window_px) is not None:
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
            ready = all(self._after(c, after_ns) is not None for c in pending.cameras)
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

    # Helpers -------------------------------------------------------------------------------

    def _before(self, camera_id: str, before_ns: int) -> _Frame | None:
        ring = self._frames.get(camera_id, ())
        found = None
        for frame in ring:
            if frame.stamp_ns > before_ns:
                break
            found = frame
        return found

    def _after(self, camera_id: str, after_ns: int) -> _Frame | None:
        for frame in self._frames.get(camera_id, ()):
            if frame.stamp_ns >= after_ns:
                return frame
        return None

    def _observe(self, event: ShelfEventData, camera_id: str) -> Observation | None:
        config = self.config
        before = self._before(camera_id, event.start_ns - int(config.before_margin_s * NS_PER_S))
        after = self._after(camera_id, event.end_ns + int(config.after_margin_s * NS_PER_S))
        if before is None:
            ring = self._frames.get(camera_id)
            self.count('no_before_frame_evicted' if ring and len(ring) >= config.ring_frames
                       else 'no_before_frame')
            return None
        if after is None:
            self.count('no_after_frame')
            return None
        view = self._views[camera_id]
        bin_ = self._bins[event.bin_id]
        window = bin_window(bin_, self._shelf_pose[bin_.shelf_id], view.t_map_color,
                            view.intrinsics, config.bin_margin_m, config.min_window_px)
        if window is None or before.rgb.shape != after.rgb.shape:
            self.count('no_window')
            return None
        col0, row0, width, height = window
        rows, cols = slice(row0, row0 + height), slice(col0, col0 + width)
        crop_before, crop_after = before.rgb[rows, cols], after.rgb[rows, cols]
        mask = changed_mask(crop_before, crop_after, config.change_threshold_dn)
        changed = int(mask.sum())
        if changed < config.min_changed_px:
            self.count('no_change')
            return None
        item, frame = (crop_before, before) if event.kind == 'pick' else (crop_after, after)
        classification = self.classifier.classify(item, mask)
        self.count('observations')
        return Observation(f'{event.event_id}/{camera_id}', event.event_id, event.bin_id,
                           camera_id, frame.stamp_ns, classification, window, changed)
