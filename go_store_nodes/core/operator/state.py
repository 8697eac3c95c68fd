"""What the operator page shows, kept from the store's topics in bounded memory.

Tracks (latest set and a ring of recent sets), open visits, per-bin load-cell samples,
per-camera colour frames, shelf events and cart events. When a cart event arrives its
evidence (weight trace around the event, bin crops, the track's path) is taken once the
clock has passed the event by ``evidence_after_s``, and kept (``max_evidence``) so that a
review decided minutes later still shows it. Every ring and table is bounded; what falls
out is counted. Bad input (unknown bin or camera, sizes that do not add up, NaN
positions) raises ``InputRejectedError`` with a reason the node counts and logs.

Thread safety: ROS callbacks write and the HTTP threads read, so every public method
takes one lock. Times are integer ns of the node clock (sim time in a replay); positions
metres in the map frame.
"""

from __future__ import annotations

from collections import deque, OrderedDict
from dataclasses import dataclass, field, fields
import math
import threading
from typing import Iterable, Sequence

import numpy as np

from ..store import Intrinsics, StoreDescription
from ..transforms import Transform
from .evidence import BinCrop, crop_bin, pick_cameras

NS_PER_S = 1_000_000_000


class InputRejectedError(ValueError):
    """A message the page cannot use; ``reason`` is the diagnostics counter suffix."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason beside the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class OperatorConfig:
    """Bounds of the page's memory and the evidence window (validated)."""

    track_history_s: float = 30.0      # s of track sets kept (paths on the map, evidence)
    max_track_sets: int = 600          # track sets kept at most
    path_points: int = 40              # points of each track's trail on the live map
    load_cell_history_s: float = 30.0  # s of load-cell samples kept per bin
    color_ring_frames: int = 16        # colour frames kept per camera
    color_keep_period_s: float = 0.5   # at most one colour frame per camera this often
    evidence_before_s: float = 4.0     # weight trace and path from this long before the event
    evidence_after_s: float = 3.0      # ... to this long after; evidence is taken then
    max_evidence: int = 200            # events whose evidence is kept
    max_visits: int = 500              # open visits kept
    crop_margin_m: float = 0.05        # bin box grown by this before projecting it
    crops_per_event: int = 2           # cameras cropped per event (best views first)

    def __post_init__(self) -> None:
        """Check every bound."""
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f'{item.name} must be a finite number >= 0, got {value!r}')
        for name in ('max_track_sets', 'path_points', 'color_ring_frames', 'max_evidence',
                     'max_visits', 'crops_per_event'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')


@dataclass(frozen=True)
class TrackPoint:
    """One track at one time (map m)."""

    track_id: int
    x_m: float
    y_m: float
    role: str = 'unknown'     # 'shopper', 'associate' or 'unknown'
    visit_id: str = ''
    tangled: bool = False


@dataclass(frozen=True)
class VisitRecord:
    """A visit opened at the entry gate (ended ones are dropped)."""

    visit_id: str
    account_ref: str
    track_ids: tuple[int, ...]
    gate_id: str
    started_ns: int


@dataclass(frozen=True)
class CartEventRecord:
    """The parts of a cart event the review page shows."""

    event_id: str
    stamp_ns: int
    visit_id: str
    track_id: int
    sku: str
    quantity_delta: int
    confidence: float
    evidence_ids: tuple[str, ...]
    needs_review: bool
    review_reason: str


@dataclass(frozen=True)
class ColorFrame:
    """One colour image as received (decoded only when cropped)."""

    stamp_ns: int
    encoding: str
    height: int
    width: int
    step: int
    data: bytes


@dataclass(frozen=True)
class Evidence:
    """What a person reviewing a cart event looks at."""

    event_id: str
    stamp_ns: int
    bin_id: str                                   # '' when no bin could be told
    window_ns: tuple[int, int]
    weight_trace: tuple[tuple[float, float | None], ...]   # (s from the event, g or None lost)
    crops: tuple[BinCrop, ...]
    path: tuple[tuple[float, float, float], ...]  # (s from the event, x m, y m)
    bin_center_m: tuple[float, float] | None
    complete: bool                                # False: the window has not passed yet


@dataclass
class _Bin:
    samples: deque = field(default_factory=deque)   # (stamp_ns, grams or nan)


class OperatorState:
    """Bounded store state for the page; written by ROS callbacks, read by HTTP threads."""

    def __init__(self, description: StoreDescription, config: OperatorConfig) -> None:
        """Index the store's bins, shelves and cameras."""
        self.description = description
        self.config = config
        self._lock = threading.Lock()
        self._bins = {bin_id: _Bin() for bin_id in description.bins()}
        self._bin_info = description.bins()
        self._shelf_bins = {s.shelf_id: {b.bin_id for b in s.bins} for s in description.shelves}
        self._sample_keep = max(1, int(round(config.load_cell_history_s * 60.0)))
        self._tracks: deque[tuple[int, tuple[TrackPoint, ...]]] = deque()
        self._visits: OrderedDict[str, VisitRecord] = OrderedDict()
        self._frames: dict[str, deque[ColorFrame]] = {
            c.camera_id: deque(maxlen=config.color_ring_frames) for c in description.cameras}
        self._intrinsics: dict[str, Intrinsics] = {}
        self._t_map_color: dict[str, Transform] = {}
        self._t_map_shelf = {s.shelf_id: s.t_map_shelf for s in description.shelves}
        self._shelf_events: OrderedDict[str, tuple[str, int, int]] = OrderedDict()
        self._cart_events: OrderedDict[str, CartEventRecord] = OrderedDict()
        self._evidence: OrderedDict[str, Evidence] = OrderedDict()
        self._pending: OrderedDict[str, CartEventRecord] = OrderedDict()
        self.counters: dict[str, int] = {}

    # -- writing ---------------------------------------------------------------------------

    def _count(self, key: str, increment: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + increment

    def set_camera(self, camera_id: str, intrinsics: Intrinsics | None,
                   t_map_color: Transform | None) -> None:
        """Set a colour camera's intrinsics and/or pose (map <- colour optical frame)."""
        if camera_id not in self._frames:
            raise InputRejectedError('unknown_camera', f'camera {camera_id!r} is not in the store')
        with self._lock:
            if intrinsics is not None:
                self._intrinsics[camera_id] = intrinsics
            if t_map_color is not None:
                self._t_map_color[camera_id] = t_map_color

    def set_shelf_pose(self, shelf_id: str, t_map_shelf: Transform) -> None:
        """Use a shelf pose from TF instead of the store description's."""
        with self._lock:
            if shelf_id in self._t_map_shelf:
                self._t_map_shelf[shelf_id] = t_map_shelf

    def add_tracks(self, stamp_ns: int, tracks: Sequence[TrackPoint]) -> int:
        """Keep one track set; tracks with a non-finite position are dropped (returned)."""
        good = tuple(t for t in tracks if math.isfinite(t.x_m) and math.isfinite(t.y_m))
        bad = len(tracks) - len(good)
        with self._lock:
            if bad:
                self._count('dropped_track_not_finite', bad)
            if self._tracks and stamp_ns < self._tracks[-1][0]:
                self._count('dropped_tracks_out_of_order')
                raise InputRejectedError('out_of_order', 'track set older than the last one')
            self._tracks.append((stamp_ns, good))
            horizon = stamp_ns - int(self.config.track_history_s * NS_PER_S)
            while self._tracks and (len(self._tracks) > self.config.max_track_sets
                                    or self._tracks[0][0] < horizon):
                self._tracks.popleft()
        return bad

    def add_visit_started(self, visit: VisitRecord) -> None:
        """Keep an open visit (the oldest is forgotten beyond ``max_visits``, counted)."""
        with self._lock:
            self._visits[visit.visit_id] = visit
            self._visits.move_to_end(visit.visit_id)
            while len(self._visits) > self.config.max_visits:
                self._visits.popitem(last=False)
                self._count('visits_forgotten')

    def add_visit_ended(self, visit_id: str) -> None:
        """Forget an ended visit."""
        with self._lock:
            self._visits.pop(visit_id, None)

    def add_load_cells(self, shelf_id: str, bin_ids: Sequence[str], stamp_ns: int,
                       sample_period_ns: int, sample_count: int,
                       grams: Sequence[float]) -> None:
        """Keep one batch of a shelf's load-cell samples (NaN: a lost sample, kept as such).

        Refused whole: an unknown shelf or bin, a count that does not match the data, a
        zero sample period. Infinite values are treated as lost samples.
        """
        bins = self._shelf_bins.get(shelf_id)
        if bins is None:
            raise InputRejectedError('unknown_shelf', f'shelf {shelf_id!r} is not in the store')
        unknown = [b for b in bin_ids if b not in bins]
        if unknown:
            raise InputRejectedError('unknown_bin', f'shelf {shelf_id}: unknown bins {unknown}')
        if sample_count < 1 or sample_period_ns <= 0 or len(grams) != sample_count * len(
                bin_ids) or not bin_ids:
            raise InputRejectedError(
                'malformed', f'shelf {shelf_id}: {len(grams)} values for {sample_count} '
                f'samples x {len(bin_ids)} bins, period {sample_period_ns} ns')
        values = np.asarray(grams, dtype=float).reshape(sample_count, len(bin_ids))
        values[~np.isfinite(values)] = np.nan
        stamps = stamp_ns + np.arange(sample_count, dtype=np.int64) * int(sample_period_ns)
        with self._lock:
            for column, bin_id in enumerate(bin_ids):
                samples = self._bins[bin_id].samples
                if samples and stamps[0] <= samples[-1][0]:
                    self._count('dropped_load_cells_out_of_order')
                    continue
                samples.extend(zip(stamps.tolist(), values[:, column].tolist(), strict=True))
                while len(samples) > self._sample_keep:
                    samples.popleft()

    def wants_color_frame(self, camera_id: str, stamp_ns: int) -> bool:
        """Whether a frame of this stamp would be kept (cheap check before copying it)."""
        ring = self._frames.get(camera_id)
        with self._lock:
            return ring is None or not ring or stamp_ns - ring[-1].stamp_ns >= \
                self.config.color_keep_period_s * NS_PER_S

    def add_color_frame(self, camera_id: str, frame: ColorFrame) -> bool:
        """Keep a colour frame if ``color_keep_period_s`` passed since the last one kept."""
        ring = self._frames.get(camera_id)
        if ring is None:
            raise InputRejectedError('unknown_camera', f'camera {camera_id!r} is not in the store')
        if frame.height < 1 or frame.width < 1 or frame.step < frame.width * 3 \
                or len(frame.data) < frame.step * frame.height:
            raise InputRejectedError('malformed', f'camera {camera_id}: {frame.width}x'
                                     f'{frame.height} step {frame.step}, {len(frame.data)} bytes')
        with self._lock:
            if ring and frame.stamp_ns - ring[-1].stamp_ns < \
                    self.config.color_keep_period_s * NS_PER_S:
                return False
            ring.append(frame)
            return True

    def add_shelf_event(self, event_id: str, bin_id: str, start_ns: int, end_ns: int) -> None:
        """Keep which bin a shelf event was at, for the cart events citing it."""
        if bin_id not in self._bin_info:
            raise InputRejectedError('unknown_bin', f'shelf event {event_id}: unknown bin '
                                     f'{bin_id!r}')
        with self._lock:
            self._shelf_events[event_id] = (bin_id, start_ns, end_ns)
            while len(self._shelf_events) > self.config.max_evidence * 4:
                self._shelf_events.popitem(last=False)

    def add_cart_event(self, event: CartEventRecord) -> None:
        """Keep a cart event; its evidence is taken once the clock passes the window."""
        if not event.event_id:
            raise InputRejectedError('malformed', 'cart event without an event_id')
        with self._lock:
            if event.sku not in self.description.catalog:
                self._count('cart_events_unknown_sku')
            if event.event_id in self._cart_events:
                return        # re-sent until the ledger acknowledges it
            self._cart_events[event.event_id] = event
            self._pending[event.event_id] = event
            while len(self._cart_events) > self.config.max_evidence:
                old, _ = self._cart_events.popitem(last=False)
                self._pending.pop(old, None)
                self._count('cart_events_forgotten')

    def poll(self, now_ns: int) -> int:
        """Take the evidence of cart events whose window has passed; return how many."""
        with self._lock:
            due = [e for e in self._pending.values()
                   if now_ns >= e.stamp_ns + int(self.config.evidence_after_s * NS_PER_S)]
            for event in due:
                del self._pending[event.event_id]
                self._evidence[event.event_id] = self._build_evidence(event, complete=True)
                while len(self._evidence) > self.config.max_evidence:
                    self._evidence.popitem(last=False)
                    self._count('evidence_forgotten')
            if due:
                self._count('evidence_taken', len(due))
            return len(due)

    # -- reading ---------------------------------------------------------------------------

    def evidence(self, event_id: str) -> Evidence | None:
        """Return an event's evidence (taken so far, if its window has not passed yet)."""
        with self._lock:
            kept = self._evidence.get(event_id)
            if kept is not None:
                return kept
            pending = self._pending.get(event_id)
            return None if pending is None else self._build_evidence(pending, complete=False)

    def cart_event(self, event_id: str) -> CartEventRecord | None:
        """Return a kept cart event."""
        with self._lock:
            return self._cart_events.get(event_id)

    def live(self) -> dict:
        """Return the live map: latest tracks with their trails, and open visits (JSON)."""
        with self._lock:
            if not self._tracks:
                return {'stamp_ns': 0, 'tracks': [], 'visits': self._visit_list()}
            stamp_ns, latest = self._tracks[-1]
            trails: dict[int, list[list[float]]] = {t.track_id: [] for t in latest}
            for _, tracks in list(self._tracks)[-self.config.path_points:]:
                for t in tracks:
                    if t.track_id in trails:
                        trails[t.track_id].append([round(t.x_m, 3), round(t.y_m, 3)])
            return {
                'stamp_ns': stamp_ns,
                'tracks': [{'track_id': t.track_id, 'x': round(t.x_m, 3), 'y': round(t.y_m, 3),
                            'role': t.role, 'visit_id': t.visit_id, 'tangled': t.tangled,
                            'trail': trails[t.track_id]} for t in latest],
                'visits': self._visit_list(),
            }

    def open_visits(self) -> list[VisitRecord]:
        """Return the open visits, oldest first."""
        with self._lock:
            return list(self._visits.values())

    def _visit_list(self) -> list[dict]:
        return [{'visit_id': v.visit_id, 'account_ref': v.account_ref,
                 'track_ids': list(v.track_ids), 'gate_id': v.gate_id,
                 'started_ns': v.started_ns} for v in self._visits.values()]

    def sizes(self) -> dict[str, int]:
        """Return how full each ring and table is (for diagnostics and tests)."""
        with self._lock:
            return {
                'track_sets': len(self._tracks),
                'visits': len(self._visits),
                'load_cell_samples': sum(len(b.samples) for b in self._bins.values()),
                'max_bin_samples': max((len(b.samples) for b in self._bins.values()), default=0),
                'color_frames': sum(len(r) for r in self._frames.values()),
                'shelf_events': len(self._shelf_events),
                'cart_events': len(self._cart_events),
                'evidence': len(self._evidence),
                'pending_evidence': len(self._pending),
            }

    # -- evidence (lock held) ----------------------------------------------------------------

    def _event_bin(self, event: CartEventRecord, path: Sequence[tuple[float, float, float]]
                   ) -> tuple[str, int, int]:
        """Return (bin, start, end) of the event's shelf event, or the SKU's nearest bin."""
        for evidence_id in event.evidence_ids:
            found = self._shelf_events.get(evidence_id)
            if found is not None:
                return found
        bins = [b for b in self._bin_info.values() if event.sku in b.skus]
        if not bins:
            return '', event.stamp_ns, event.stamp_ns
        if path:
            _, x, y = min(path, key=lambda p: abs(p[0]))
            bins.sort(key=lambda b: float(np.hypot(*(self._bin_center(b.bin_id)[:2]
                                                     - np.array([x, y])))))
        return bins[0].bin_id, event.stamp_ns, event.stamp_ns

    def _bin_center(self, bin_id: str) -> np.ndarray:
        bin_ = self._bin_info[bin_id]
        return self._t_map_shelf[bin_.shelf_id].apply(bin_.center_m()[None])[0]

    def _build_evidence(self, event: CartEventRecord, complete: bool) -> Evidence:
        before = int(self.config.evidence_before_s * NS_PER_S)
        after = int(self.config.evidence_after_s * NS_PER_S)
        window = (event.stamp_ns - before, event.stamp_ns + after)
        path = tuple((round((stamp - event.stamp_ns) / NS_PER_S, 3), t.x_m, t.y_m)
                     for stamp, tracks in self._tracks if window[0] <= stamp <= window[1]
                     for t in tracks if t.track_id == event.track_id)
        bin_id, start_ns, end_ns = self._event_bin(event, path)
        window = (min(window[0], start_ns - before), max(window[1], end_ns + after))
        trace: tuple[tuple[float, float | None], ...] = ()
        crops: tuple[BinCrop, ...] = ()
        center = None
        if bin_id:
            trace = tuple((round((stamp - event.stamp_ns) / NS_PER_S, 4),
                           None if math.isnan(grams) else round(grams, 1))
                          for stamp, grams in self._bins[bin_id].samples
                          if window[0] <= stamp <= window[1])
            center_m = self._bin_center(bin_id)
            center = (float(center_m[0]), float(center_m[1]))
            crops = self._crops(bin_id, start_ns, end_ns)
        return Evidence(event.event_id, event.stamp_ns, bin_id, window, trace, crops, path,
                        center, complete)

    def _crops(self, bin_id: str, start_ns: int, end_ns: int) -> tuple[BinCrop, ...]:
        bin_ = self._bin_info[bin_id]
        shelves = self.description.shelves
        t_map_shelf = self._t_map_shelf[bin_.shelf_id]
        cameras = pick_cameras(bin_, t_map_shelf, self._t_map_color, self._intrinsics,
                               shelves, self.config.crops_per_event)
        crops: list[BinCrop] = []
        for camera_id in cameras:
            ring = self._frames[camera_id]
            for label, frame in (('before', _last_before(ring, start_ns)),
                                 ('after', _first_after(ring, end_ns))):
                if frame is None:
                    continue
                crop = crop_bin(camera_id, label, frame.stamp_ns, frame.encoding, frame.height,
                                frame.width, frame.step, frame.data, bin_, t_map_shelf,
                                self._t_map_color[camera_id], self._intrinsics[camera_id],
                                self.config.crop_margin_m)
                if crop is not None:
                    crops.append(crop)
        return tuple(crops)


def _last_before(ring: Iterable[ColorFrame], stamp_ns: int) -> ColorFrame | None:
    found = None
    for frame in ring:
        if frame.stamp_ns <= stamp_ns:
            found = frame
    return found


def _first_after(ring: Iterable[ColorFrame], stamp_ns: int) -> ColorFrame | None:
    for frame in ring:
        if frame.stamp_ns >= stamp_ns:
            return frame
    return None
