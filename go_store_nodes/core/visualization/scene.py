"""The store view: markers of shelves, bins, people, stick figures and events.

``StoreView`` keeps the latest tracks, stick figures, shelf events, cart events and visit
links, and builds ``MarkerSet``s from them, at most ``max_rate_hz`` times a second of the
clock it is given (the node's clock: sim time under replay). Marker identities are
stable: a person keeps one marker id (per namespace) for the life of the track; anything
that stops being drawn (a track that ended, a hand out of a bin, an expired label) gets a
DELETE in the next set, and people markers carry a lifetime as well, so nothing lingers
when the inputs stop. The first set starts with a DELETE_ALL, which clears what an earlier
run of the node left in a viewer.

Bad input: a whole message from the future or older than the last of its stream raises
``VisualizationInputError`` (the node logs, counts and drops it); single bad items inside
a message (a NaN position, an unknown shelf or bin) are dropped and counted in
``StoreView.dropped``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
import math
from typing import Iterable, Mapping, Optional

import numpy as np

from ..pose import JOINTS
from ..store import Bin, StoreDescription
from ..transforms import Transform
from .config import VisualizationConfig
from .markers import delete, Marker, MarkerAction, MarkerKind, MarkerSet, Rgba, Vec3

ROLES = ('unknown', 'shopper', 'associate')        # Track.ROLE_* constants
EVENT_KINDS = ('pick', 'return', 'unknown')        # ShelfEvent PICK, RETURN, UNKNOWN
SIDES = ('left', 'right')

# Namespaces (rviz2 lists them under the MarkerArray display; Foxglove under the topic).
NS_FLOOR = 'floor'
NS_GATES = 'gates'
NS_SHELVES = 'shelves'
NS_BINS = 'bins'
NS_PEOPLE = 'people'
NS_PEOPLE_LABELS = 'people_labels'
NS_TRAILS = 'trails'
NS_SKELETONS = 'skeletons'
NS_JOINTS = 'joints'
NS_HANDS_IN_BINS = 'hands_in_bins'
NS_BINS_TOUCHED = 'bins_touched'
NS_SHELF_EVENTS = 'shelf_events'
NS_CART_EVENTS = 'cart_events'
STORE_NAMESPACES = (NS_FLOOR, NS_GATES, NS_SHELVES, NS_BINS)
PERSON_NAMESPACES = (NS_PEOPLE, NS_PEOPLE_LABELS, NS_TRAILS, NS_SKELETONS, NS_JOINTS,
                     NS_HANDS_IN_BINS)
NAMESPACES = (*STORE_NAMESPACES, NS_BINS_TOUCHED, *PERSON_NAMESPACES, NS_SHELF_EVENTS,
              NS_CART_EVENTS)

# Colours (RGBA).
SHELF_COLOR: Rgba = (0.55, 0.45, 0.35, 0.35)
BIN_COLOR: Rgba = (0.3, 0.6, 0.9, 0.35)
EVENT_COLORS: dict[str, Rgba] = {'pick': (1.0, 0.35, 0.1, 0.9),
                                 'return': (0.2, 0.9, 0.3, 0.9),
                                 'unknown': (1.0, 0.85, 0.1, 0.9)}
ROLE_COLORS: dict[str, Rgba] = {'shopper': (0.2, 0.5, 1.0, 0.9),
                                'associate': (0.1, 0.75, 0.35, 0.9),
                                'unknown': (0.65, 0.65, 0.65, 0.9)}
TANGLED_COLOR: Rgba = (0.9, 0.2, 0.9, 0.9)
UNCONFIRMED_ALPHA = 0.35
GATE_COLORS: dict[str, Rgba] = {'entry': (0.2, 0.8, 0.2, 0.25), 'exit': (0.9, 0.3, 0.2, 0.25)}
OTHER_GATE_COLOR: Rgba = (0.8, 0.8, 0.2, 0.25)
HAND_COLOR: Rgba = (1.0, 0.9, 0.1, 1.0)
SKELETON_COLOR: Rgba = (1.0, 1.0, 1.0, 0.9)
LABEL_COLOR: Rgba = (1.0, 1.0, 1.0, 1.0)
REVIEW_COLOR: Rgba = (1.0, 0.6, 0.1, 1.0)

DEFAULT_HEIGHT_M = 1.7        # drawn when a track carries no stature
BODY_DIAMETER_M = 0.4
TRAIL_WIDTH_M = 0.03
BONE_WIDTH_M = 0.03
JOINT_SIZE_M = 0.06
HAND_SIZE_M = 0.14
TEXT_HEIGHT_M = 0.18
LABEL_ABOVE_M = 0.35
FLOOR_LINE_M = 0.03
MIN_LIFETIME_S = 0.05
STEP_TOLERANCE_M = 1e-6
REMEMBERED_EVENT_IDS = 10_000   # cart events are re-sent until acknowledged: shown once
BONES = (('head', 'neck'), ('neck', 'left_shoulder'), ('neck', 'right_shoulder'),
         ('left_shoulder', 'left_elbow'), ('left_elbow', 'left_hand'),
         ('right_shoulder', 'right_elbow'), ('right_elbow', 'right_hand'),
         ('neck', 'pelvis'))
# An arm seen without its elbow: shoulder straight to hand.
ARM_SHORTCUTS = (('left_shoulder', 'left_elbow', 'left_hand'),
                 ('right_shoulder', 'right_elbow', 'right_hand'))


class VisualizationInputError(ValueError):
    """A whole input message cannot be used; ``reason`` names the diagnostics counter."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason (e.g. 'future_stamp') beside the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TrackIn:
    """One person of a TrackArray (map frame)."""

    track_id: int
    x_m: float
    y_m: float
    height_m: float = 0.0
    confidence: float = 1.0
    tangled: bool = False
    tangled_with: tuple[int, ...] = ()
    role: int = 1
    visit_id: str = ''
    account_id: str = ''


@dataclass(frozen=True)
class SkeletonIn:
    """One stick figure: joint name -> map position (joints not seen left out)."""

    track_id: int
    joints: Mapping[str, Vec3]
    left_hand_bin_id: str = ''
    right_hand_bin_id: str = ''


@dataclass(frozen=True)
class ShelfEventIn:
    """A settled weight change on a bin."""

    event_id: str
    stamp_ns: int
    shelf_id: str
    bin_id: str
    kind: str                 # one of EVENT_KINDS
    delta_grams: float


@dataclass(frozen=True)
class CartEventIn:
    """A change to a cart: who moved what."""

    event_id: str
    stamp_ns: int
    visit_id: str
    account_id: str
    track_id: int
    sku: str
    quantity_delta: int
    needs_review: bool = False
    review_reason: str = ''
    evidence_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class VisitIn:
    """A visit opened (started) or ended at a gate, with the tracks it covers."""

    visit_id: str
    account_id: str
    track_ids: tuple[int, ...]
    started: bool
    stamp_ns: int


@dataclass
class _Label:
    marker_id: int
    namespace: str
    text: str
    position: Vec3
    color: Rgba
    shown_from_ns: int


def _finite(values: Iterable[float]) -> bool:
    return all(math.isfinite(float(v)) for v in values)


def _mix(a: Rgba, b: Rgba, weight_a: float) -> Rgba:
    w = min(1.0, max(0.0, weight_a))
    return tuple(w * x + (1.0 - w) * y for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _vec(values: Iterable[float]) -> Vec3:
    x, y, z = (float(v) for v in values)
    return (x, y, z)


def _quaternion(pose: Transform) -> tuple[float, float, float, float]:
    x, y, z, w = (float(v) for v in pose.quaternion_xyzw())
    return (x, y, z, w)


def box_edges(center: np.ndarray, half: np.ndarray, rotation: np.ndarray) -> tuple[Vec3, ...]:
    """Return the 12 edges of a box as 24 LINE_LIST points (map frame)."""
    corners = [center + rotation @ (half * np.array([sx, sy, sz]))
               for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    points: list[Vec3] = []
    for i in range(8):
        for bit in (1, 2, 4):
            j = i | bit
            if j != i:
                points += [_vec(corners[i]), _vec(corners[j])]
    return tuple(points)


class StoreView:
    """Builds marker sets of the store and what happens in it; see the module docstring."""

    def __init__(self, config: VisualizationConfig, description: StoreDescription) -> None:
        """Draw ``description``'s floor, gates, shelves and bins, in its map frame."""
        self.config = config
        self.description = description
        self.frame_id = description.map_frame
        self.dropped: dict[str, int] = {}
        self.repeated_events = 0          # events seen again (re-sent cart events): not shown
        self._bins: dict[str, Bin] = description.bins()
        self._bin_index = {bin_id: index for index, bin_id in enumerate(sorted(self._bins))}
        self._bin_event: dict[str, tuple[str, int]] = {}      # bin -> (kind, shown from ns)
        self._tracks: dict[int, TrackIn] = {}
        self._trails: dict[int, deque[tuple[int, float, float]]] = {}
        self._skeletons: dict[int, SkeletonIn] = {}
        self._marker_ids: dict[int, int] = {}                  # track id -> marker id
        self._next_marker_id = 1
        self._accounts: dict[int, str] = {}                    # track id -> account, in order
        self._labels: deque[_Label] = deque()
        self._next_label_id = 1
        self._event_ids: dict[str, None] = {}                  # labelled events, in order
        self._last_track_ns: Optional[int] = None
        self._last_skeleton_ns: Optional[int] = None
        self._newest_ns: Optional[int] = None
        self._last_emit_ns: Optional[int] = None
        self._last_full_ns: Optional[int] = None
        # Last marker sent per (namespace, id): its content (lifetime 0), clock and lifetime.
        self._sent: dict[tuple[str, int], tuple[Marker, int, int]] = {}
        self._changed = True
        self._static = self._static_markers()
        self._boxes = self._bin_boxes()

    # Inputs ---------------------------------------------------------------------------------

    def add_tracks(self, stamp_ns: int, tracks: Iterable[TrackIn],
                   now_ns: Optional[int] = None) -> None:
        """Take one TrackArray: every live track at ``stamp_ns``."""
        self._check_stamp(stamp_ns, now_ns)
        if self._last_track_ns is not None and stamp_ns < self._last_track_ns:
            raise VisualizationInputError(
                'out_of_order', f'track array at {stamp_ns} ns is older than the last one '
                f'({self._last_track_ns} ns)')
        live: dict[int, TrackIn] = {}
        for track in tracks:
            if not _finite((track.x_m, track.y_m)):
                self._count('track_not_finite')
                continue
            live[int(track.track_id)] = track
        self._last_track_ns = stamp_ns
        self._seen(stamp_ns)
        for track_id in set(self._tracks) - set(live):
            self._trails.pop(track_id, None)
            if track_id not in self._skeletons:
                self._marker_ids.pop(track_id, None)
        self._tracks = live
        window_ns = self.config.ns('trail_s')
        for track_id, track in live.items():
            self._marker_id(track_id)
            trail = self._trails.setdefault(
                track_id, deque(maxlen=int(self.config.trail_points)))
            if not trail or math.hypot(track.x_m - trail[-1][1], track.y_m - trail[-1][2]) \
                    >= self.config.trail_step_m - STEP_TOLERANCE_M:
                trail.append((stamp_ns, float(track.x_m), float(track.y_m)))
            while trail and stamp_ns - trail[0][0] > window_ns:
                trail.popleft()
            if track.account_id:
                self._link(track_id, track.account_id)
        self._changed = True

    def add_skeletons(self, stamp_ns: int, skeletons: Iterable[SkeletonIn],
                      now_ns: Optional[int] = None) -> None:
        """Take one SkeletonArray: every stick figure at ``stamp_ns``."""
        self._check_stamp(stamp_ns, now_ns)
        if self._last_skeleton_ns is not None and stamp_ns < self._last_skeleton_ns:
            raise VisualizationInputError(
                'out_of_order', f'skeleton array at {stamp_ns} ns is older than the last one '
                f'({self._last_skeleton_ns} ns)')
        figures: dict[int, SkeletonIn] = {}
        for skeleton in skeletons:
            joints = {}
            for name, position in skeleton.joints.items():
                if name not in JOINTS:
                    self._count('joint_unknown')
                elif not _finite(position):
                    self._count('joint_not_finite')
                else:
                    joints[name] = _vec(position)
            hands = []
            for bin_id in (skeleton.left_hand_bin_id, skeleton.right_hand_bin_id):
                if bin_id and bin_id not in self._bins:
                    self._count('hand_bin_unknown')
                    bin_id = ''
                hands.append(bin_id)
            figures[int(skeleton.track_id)] = SkeletonIn(
                int(skeleton.track_id), joints, hands[0], hands[1])
        self._last_skeleton_ns = stamp_ns
        self._seen(stamp_ns)
        for track_id in set(self._skeletons) - set(figures):
            if track_id not in self._tracks:
                self._marker_ids.pop(track_id, None)
        self._skeletons = figures
        for track_id in figures:
            self._marker_id(track_id)
        self._changed = True

    def add_shelf_event(self, event: ShelfEventIn, now_ns: Optional[int] = None) -> None:
        """Colour the event's bin and show a short label above it."""
        self._check_stamp(event.stamp_ns, now_ns)
        if self._repeated(event.event_id):
            return
        shelf_bin = self._bins.get(event.bin_id)
        if shelf_bin is None or shelf_bin.shelf_id != event.shelf_id:
            where = 'unknown bin' if shelf_bin is None else f'bin of {shelf_bin.shelf_id}'
            raise VisualizationInputError(
                'unknown_bin', f'shelf event {event.event_id!r}: {event.bin_id!r} on '
                f'{event.shelf_id!r} ({where})')
        kind = event.kind if event.kind in EVENT_KINDS else 'unknown'
        self._seen(event.stamp_ns)
        shown_ns = self._clock(now_ns)
        self._bin_event[event.bin_id] = (kind, shown_ns)
        top = self._bin_top(shelf_bin)
        grams = f'{event.delta_grams:+.0f} g' if math.isfinite(event.delta_grams) else '? g'
        self._add_label(NS_SHELF_EVENTS, f'{kind} {grams}\n{event.bin_id}', top,
                        EVENT_COLORS[kind], shown_ns)

    def add_cart_event(self, event: CartEventIn, now_ns: Optional[int] = None) -> None:
        """Show a short label above the person (or, if they are gone, the bin)."""
        self._check_stamp(event.stamp_ns, now_ns)
        if self._repeated(event.event_id):
            return
        position = self._person_label_position(int(event.track_id))
        if position is None:
            bins = [self._bins[b] for b in self._evidence_bins(event.evidence_ids)]
            if not bins:
                raise VisualizationInputError(
                    'unplaced', f'cart event {event.event_id!r}: track {event.track_id} is '
                    'not live and no shelf event among its evidence is known')
            position = self._bin_top(bins[0])
            position = (position[0], position[1], position[2] + TEXT_HEIGHT_M * 2.5)
        self._seen(event.stamp_ns)
        who = event.account_id or f'#{event.track_id}'
        text = f'{event.quantity_delta:+d} {event.sku}\n{who}'
        if event.needs_review:
            text += f'\nreview: {event.review_reason}' if event.review_reason else '\nreview'
        self._add_label(NS_CART_EVENTS, text, position,
                        REVIEW_COLOR if event.needs_review else LABEL_COLOR,
                        self._clock(now_ns))

    def add_visit(self, visit: VisitIn, now_ns: Optional[int] = None) -> None:
        """Link the visit's tracks to its account (started) or drop the links (ended)."""
        self._check_stamp(visit.stamp_ns, now_ns)
        for track_id in visit.track_ids:
            if visit.started and visit.account_id:
                self._link(int(track_id), visit.account_id)
            elif not visit.started:
                self._accounts.pop(int(track_id), None)
        self._changed = True

    # Output ---------------------------------------------------------------------------------

    def markers(self, now_ns: Optional[int] = None) -> Optional[MarkerSet]:
        """Return the markers to publish now, or None (rate limit, or nothing to redraw).

        A set is due at most every 1 / ``max_rate_hz`` s of ``now_ns`` (the newest input
        stamp when there is no clock). It carries what changed since the last set, the
        DELETEs of what is no longer drawn, and markers with a lifetime again before half
        of it has passed; every ``idle_period_s`` it carries every marker (viewers that
        joined late get the whole store).
        """
        clock = self._clock(now_ns)
        last = self._last_emit_ns
        if last is not None and clock < last:
            last = None                  # the clock went back (a new replay): start again
            self._last_full_ns = None
        if last is not None and clock - last < round(1e9 / self.config.max_rate_hz):
            return None
        self._expire(clock)
        full = self._last_full_ns is None or \
            clock - self._last_full_ns >= self.config.ns('idle_period_s')
        if not (full or self._changed or self._labels or self._fading(clock)
                or self._lifetimes_due(clock)):
            return None
        markers: list[Marker] = []
        if self._last_emit_ns is None:
            markers.append(Marker('', 0, action=MarkerAction.DELETE_ALL))
        drawn = self._store_markers(clock) + self._people_markers() + self._label_markers(clock)
        keys = {m.key for m in drawn}
        for key in sorted(set(self._sent) - keys):
            markers.append(delete(*key))
            del self._sent[key]
        for marker in drawn:
            body = replace(marker, lifetime_s=0.0)
            sent = self._sent.get(marker.key)
            if full or sent is None or sent[0] != body or (
                    marker.lifetime_s > 0.0 and clock - sent[1] >= sent[2] / 2):
                markers.append(marker)
                self._sent[marker.key] = (body, clock, round(marker.lifetime_s * 1e9))
        self._last_emit_ns = clock
        if full:
            self._last_full_ns = clock
        self._changed = False
        if not markers:
            return None
        stamp = self._newest_ns if self._newest_ns is not None else clock
        return MarkerSet(stamp, self.frame_id, tuple(markers))

    def marker_id(self, track_id: int) -> Optional[int]:
        """Return the marker id of a live track or figure (the same in every person namespace)."""
        return self._marker_ids.get(int(track_id))

    # Internals ------------------------------------------------------------------------------

    def _count(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def _check_stamp(self, stamp_ns: int, now_ns: Optional[int]) -> None:
        if stamp_ns <= 0:
            raise VisualizationInputError('no_stamp', f'stamp {stamp_ns} ns is not set')
        if now_ns is not None and stamp_ns > now_ns + self.config.ns('max_future_s'):
            raise VisualizationInputError(
                'future_stamp', f'stamp {stamp_ns} ns is {(stamp_ns - now_ns) / 1e9:.3f} s '
                f'ahead of the clock (more than max_future_s = {self.config.max_future_s})')

    def _seen(self, stamp_ns: int) -> None:
        if self._newest_ns is None or stamp_ns > self._newest_ns:
            self._newest_ns = stamp_ns

    def _clock(self, now_ns: Optional[int]) -> int:
        if now_ns is not None:
            return int(now_ns)
        return self._newest_ns if self._newest_ns is not None else 0

    def _repeated(self, event_id: str) -> bool:
        if event_id in self._event_ids:
            self.repeated_events += 1
            return True
        self._event_ids[event_id] = None
        while len(self._event_ids) > REMEMBERED_EVENT_IDS:
            self._event_ids.pop(next(iter(self._event_ids)))
        return False

    def _marker_id(self, track_id: int) -> int:
        marker_id = self._marker_ids.get(track_id)
        if marker_id is None:
            marker_id = self._next_marker_id
            self._next_marker_id += 1
            self._marker_ids[track_id] = marker_id
        return marker_id

    def _link(self, track_id: int, account_id: str) -> None:
        self._accounts.pop(track_id, None)
        self._accounts[track_id] = account_id
        while len(self._accounts) > int(self.config.max_linked_tracks):
            self._accounts.pop(next(iter(self._accounts)))
            self._count('links_overflow')

    def _bin_top(self, shelf_bin: Bin) -> Vec3:
        shelf = self.description.shelf(shelf_bin.shelf_id)
        top = shelf_bin.center_m().copy()
        top[2] = shelf_bin.max_m[2] + LABEL_ABOVE_M
        return _vec(shelf.t_map_shelf.apply(top))

    def _evidence_bins(self, evidence_ids: Iterable[str]) -> list[str]:
        # Shelf event ids are '<shelf>/<bin>/<settle stamp>' (shelf fusion).
        found = []
        for evidence in evidence_ids:
            parts = evidence.split('/')
            if len(parts) >= 2 and parts[1] in self._bins:
                found.append(parts[1])
        return found

    def _person_label_position(self, track_id: int) -> Optional[Vec3]:
        track = self._tracks.get(track_id)
        if track is None:
            return None
        return (float(track.x_m), float(track.y_m),
                self._height(track) + LABEL_ABOVE_M + TEXT_HEIGHT_M * 3.0)

    def _add_label(self, namespace: str, text: str, position: Vec3, color: Rgba,
                   shown_ns: int) -> None:
        self._labels.append(_Label(self._next_label_id, namespace, text, position, color,
                                   shown_ns))
        self._next_label_id += 1
        while len(self._labels) > int(self.config.max_labels):
            self._labels.popleft()
            self._count('labels_overflow')
        self._changed = True

    def _expire(self, clock: int) -> None:
        label_ns = self.config.ns('label_s')
        kept = deque(label for label in self._labels
                     if 0 <= clock - label.shown_from_ns < label_ns)
        if len(kept) != len(self._labels):
            self._changed = True
        self._labels = kept

    def _lifetimes_due(self, clock: int) -> bool:
        return any(lifetime > 0 and clock - sent_ns >= lifetime / 2
                   for _, sent_ns, lifetime in self._sent.values())

    def _fading(self, clock: int) -> bool:
        fade_ns = self.config.ns('bin_fade_s')
        return any(0 <= clock - shown < fade_ns for _, shown in self._bin_event.values())

    @staticmethod
    def _height(track: TrackIn) -> float:
        height = float(track.height_m)
        return height if math.isfinite(height) and 0.5 <= height <= 2.5 else DEFAULT_HEIGHT_M

    def _static_markers(self) -> list[Marker]:
        """Floor outline, gates and shelves: drawn from the description once."""
        d = self.description
        width, depth = d.size_m
        markers = [Marker(NS_FLOOR, 0, MarkerKind.LINE_STRIP, scale=(FLOOR_LINE_M, 0.0, 0.0),
                          color=(0.8, 0.8, 0.8, 0.8),
                          points=((0.0, 0.0, 0.0), (width, 0.0, 0.0), (width, depth, 0.0),
                                  (0.0, depth, 0.0), (0.0, 0.0, 0.0)))]
        for index, gate in enumerate(d.gates):
            (x0, y0), (x1, y1) = gate.min_m, gate.max_m
            markers.append(Marker(
                NS_GATES, index, MarkerKind.CUBE, position=((x0 + x1) / 2, (y0 + y1) / 2, 0.005),
                scale=(max(x1 - x0, 0.01), max(y1 - y0, 0.01), 0.01),
                color=GATE_COLORS.get(gate.kind, OTHER_GATE_COLOR)))
        for index, shelf in enumerate(d.shelves):
            pose = shelf.t_map_shelf
            length, shelf_depth, height = shelf.size_m
            markers.append(Marker(
                NS_SHELVES, index, MarkerKind.CUBE,
                position=_vec(pose.apply([0.0, shelf_depth / 2, height / 2])),
                orientation_xyzw=_quaternion(pose), scale=(length, shelf_depth, height),
                color=SHELF_COLOR))
        return markers

    def _bin_boxes(self) -> dict[str, tuple[Marker, Marker]]:
        """Per bin: its box (plain colour) and its highlight outline, in map."""
        boxes = {}
        for shelf in self.description.shelves:
            pose = shelf.t_map_shelf
            for shelf_bin in shelf.bins:
                index = self._bin_index[shelf_bin.bin_id]
                center, size = pose.apply(shelf_bin.center_m()), shelf_bin.size_m()
                boxes[shelf_bin.bin_id] = (
                    Marker(NS_BINS, index, MarkerKind.CUBE, position=_vec(center),
                           orientation_xyzw=_quaternion(pose), scale=_vec(size),
                           color=BIN_COLOR),
                    Marker(NS_BINS_TOUCHED, index, MarkerKind.LINE_LIST,
                           scale=(0.02, 0.0, 0.0), color=HAND_COLOR,
                           points=box_edges(center, size / 2.0, pose.rotation)))
        return boxes

    def _store_markers(self, clock: int) -> list[Marker]:
        markers = list(self._static)
        fade_ns = self.config.ns('bin_fade_s')
        touched = {bin_id for s in self._skeletons.values()
                   for bin_id in (s.left_hand_bin_id, s.right_hand_bin_id) if bin_id}
        for bin_id, (box, outline) in self._boxes.items():
            event = self._bin_event.get(bin_id)
            if event is not None and 0 <= clock - event[1] < fade_ns:
                box = replace(box, color=_mix(EVENT_COLORS[event[0]], BIN_COLOR,
                                              1.0 - (clock - event[1]) / fade_ns))
            markers.append(box)
            if bin_id in touched:
                markers.append(outline)
        return markers

    def _people_markers(self) -> list[Marker]:
        lifetime = float(self.config.track_lifetime_s)
        markers: list[Marker] = []
        for track_id, track in sorted(self._tracks.items()):
            marker_id = self._marker_ids[track_id]
            role = ROLES[track.role] if 0 <= track.role < len(ROLES) else 'unknown'
            unconfirmed = not track.confidence >= self.config.unconfirmed_below
            color = TANGLED_COLOR if track.tangled else ROLE_COLORS[role]
            if unconfirmed:
                color = (color[0], color[1], color[2], UNCONFIRMED_ALPHA)
            height = self._height(track)
            markers.append(Marker(
                NS_PEOPLE, marker_id, MarkerKind.CYLINDER,
                position=(float(track.x_m), float(track.y_m), height / 2),
                scale=(BODY_DIAMETER_M, BODY_DIAMETER_M, height), color=color,
                lifetime_s=lifetime))
            lines = [f'#{track_id} {role}']
            account = track.account_id or self._accounts.get(track_id, '')
            if account:
                lines.append(account)
            if track.tangled:
                others = ' '.join(f'#{t}' for t in track.tangled_with)
                lines.append(f'tangled {others}'.rstrip())
            if unconfirmed:
                lines.append(f'unconfirmed ({track.confidence:.2f})')
            markers.append(Marker(
                NS_PEOPLE_LABELS, marker_id, MarkerKind.TEXT,
                position=(float(track.x_m), float(track.y_m), height + LABEL_ABOVE_M),
                scale=(0.0, 0.0, TEXT_HEIGHT_M), color=LABEL_COLOR, text='\n'.join(lines),
                lifetime_s=lifetime))
            trail = self._trails.get(track_id, ())
            if len(trail) >= 2:
                markers.append(Marker(
                    NS_TRAILS, marker_id, MarkerKind.LINE_STRIP, scale=(TRAIL_WIDTH_M, 0, 0),
                    color=(color[0], color[1], color[2], 0.6),
                    points=tuple((x, y, 0.02) for _, x, y in trail), lifetime_s=lifetime))
        for track_id, skeleton in sorted(self._skeletons.items()):
            markers += self._figure(self._marker_ids[track_id], skeleton, lifetime)
        return markers

    def _figure(self, marker_id: int, skeleton: SkeletonIn, lifetime: float) -> list[Marker]:
        joints = skeleton.joints
        markers: list[Marker] = []
        bones = [(a, b) for a, b in BONES if a in joints and b in joints]
        bones += [(shoulder, hand) for shoulder, elbow, hand in ARM_SHORTCUTS
                  if elbow not in joints and shoulder in joints and hand in joints]
        if bones:
            markers.append(Marker(
                NS_SKELETONS, marker_id, MarkerKind.LINE_LIST, scale=(BONE_WIDTH_M, 0, 0),
                color=SKELETON_COLOR,
                points=tuple(joints[name] for bone in bones for name in bone),
                lifetime_s=lifetime))
        if joints:
            markers.append(Marker(
                NS_JOINTS, marker_id, MarkerKind.SPHERE_LIST,
                scale=(JOINT_SIZE_M, JOINT_SIZE_M, JOINT_SIZE_M), color=SKELETON_COLOR,
                points=tuple(joints[name] for name in JOINTS if name in joints),
                lifetime_s=lifetime))
        for side_index, (side, bin_id) in enumerate(
                zip(SIDES, (skeleton.left_hand_bin_id, skeleton.right_hand_bin_id), strict=True)):
            hand = joints.get(f'{side}_hand')
            if bin_id and hand is not None:
                markers.append(Marker(
                    NS_HANDS_IN_BINS, 2 * marker_id + side_index, MarkerKind.SPHERE,
                    position=hand, scale=(HAND_SIZE_M, HAND_SIZE_M, HAND_SIZE_M),
                    color=HAND_COLOR, lifetime_s=lifetime))
        return markers

    def _label_markers(self, clock: int) -> list[Marker]:
        label_s = float(self.config.label_s)
        return [Marker(label.namespace, label.marker_id, MarkerKind.TEXT,
                       position=label.position, scale=(0.0, 0.0, TEXT_HEIGHT_M),
                       color=label.color, text=label.text,
                       lifetime_s=max(MIN_LIFETIME_S,
                                      label_s - (clock - label.shown_from_ns) / 1e9))
                for label in self._labels]
