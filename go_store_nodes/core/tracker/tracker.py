"""Person detections -> stable identities, through tangles and occlusion.

``Tracker.update(detections, stamp_ns) -> tracks``, a plain object as in norfair and
filterpy. Each frame:

1. Every track is predicted to the stamp (constant velocity; damped while unseen, with
   covariance growing, so a hidden person is still there seconds later).
2. Tracks and detections are assigned jointly (``linear_sum_assignment``) on a cost of
   squared Mahalanobis distance + height and appearance differences against the track's
   running stature and colour signature, gated (chi-square on motion, hard limits on
   height and signature).
3. A track left without a detection whose prediction lies within ``contact_m`` of a
   detection another track took shares it (one blob explaining two people): both are
   updated with it (the second with ``share_std``) and both are tangled.
4. Tracks closer than ``contact_m`` are tangled too. While tangled, a track's stature and
   signature are frozen (a merged blob mixes two people) and its confidence is lowered.
   Once the members are all ``separate_m`` apart for ``separation_confirm_s``, the
   identities are re-assigned to the separated bodies jointly, by stature, signature and
   velocity before vs after; the re-identification is *confirmed* when the best
   assignment beats the second best by ``reid_margin`` (confidence back to its value
   before the tangle), else it is a guess (``confidence_guess``).
5. Detections no track takes become candidates; a candidate becomes a track after
   ``birth_min_hits`` detections when first seen in an entry or staff zone (role
   associate in a staff zone), or after ``birth_anywhere_after_s`` anywhere else with a
   low confidence (a person the tracker had lost). A detection within ``contact_m`` of a
   track is mostly a second blob of that person (an arm, a bag) and starts no
   candidate, except in a staff zone with ``birth_beside_track_hits`` > 0: there it
   does, and becomes a track after that many detections (an associate standing beside a
   colleague at the staff door while their blobs were one). Ids count up and are never
   reused.
6. A track ends after ``exit_lost_s`` unseen when last seen in an exit zone (after
   ``staff_lost_s`` in a staff zone), or after ``max_lost_s`` unseen anywhere; of tracks
   explained by one detection for ``max_lost_s``, all but the best-fitting one end
   (ghosts that latched onto a person).

Bad input never raises out of ``update`` except ``TrackerInputError`` for a whole frame
(stamp older than or equal to the last one, or in the future): the caller logs it and
keeps going. Bad detections are dropped (non-finite position, height or confidence), a
malformed signature is dropped from its detection; each is counted in ``counters`` and
described in ``last_rejections``.

Modes (``TrackerConfig.mode``): ``floor`` (map floor points, m), ``image_point`` and
``image_box`` (pixels; a box is centre x, centre y, width, height): only the measurement
changes, the assignment and re-identification are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import itertools
import math
from typing import Iterable, Optional, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaincinv

from .config import BESIDE_BIRTH_KINDS, BIRTH_KINDS, check_zones, LEAVE_KINDS, TrackerConfig, Zone
from .kalman import ConstantVelocityFilter, transition

NS_PER_SECOND = 1_000_000_000
INFEASIBLE = 1e9  # cost of a gated-out pair in the assignment matrix
ROLE_SHOPPER = 'shopper'
ROLE_ASSOCIATE = 'associate'
# Groups larger than this are re-identified by assignment plus one-pair-forbidden
# re-solves (second best) instead of enumerating every permutation.
MAX_ENUMERATED_GROUP = 5


class TrackerInputError(ValueError):
    """A whole frame is refused (stale or future stamp); ``reason`` is a counter key."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the counter key beside the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class Detection:
    """One person measured at one instant.

    ``position``: floor point (x, y) in map m, image point (u, v) in px, or box (centre
    x, centre y, width, height) in px, by mode. ``height_m``: top of head above the floor
    (NaN when unknown). ``appearance``: unit-norm colour signature, or empty.
    """

    position: tuple[float, ...]
    height_m: float = math.nan
    confidence: float = 1.0
    appearance: tuple[float, ...] = ()

    @classmethod
    def from_box(cls, x_min: float, y_min: float, x_max: float, y_max: float,
                 confidence: float = 1.0, appearance: Sequence[float] = ()) -> Detection:
        """Build an ``image_box`` detection from box corners (px)."""
        return cls(((x_min + x_max) / 2.0, (y_min + y_max) / 2.0, x_max - x_min,
                    y_max - y_min), confidence=confidence, appearance=tuple(appearance))


@dataclass(frozen=True, eq=False)
class Track:
    """A live track as the tracker reports it (units of the mode; covariance d x d)."""

    track_id: int
    position: NDArray
    velocity: NDArray
    position_covariance: NDArray
    height_m: float
    confidence: float
    tangled: bool
    tangled_with: tuple[int, ...]
    role: str
    last_seen_ns: int
    born_ns: int
    unseen_s: float
    identity_confirmed: bool
    visit_id: str = ''
    account_id: str = ''


@dataclass(frozen=True)
class Rejection:
    """Why (a part of) the input was dropped: a counter key and a sentence."""

    reason: str
    detail: str


@dataclass
class _Clean:
    """A validated detection as arrays."""

    z: NDArray
    height_m: float
    confidence: float
    appearance: Optional[NDArray]


@dataclass
class _Body:
    """What follows the physical blob: motion state and the current frame's evidence.

    On re-identification bodies are permuted among identities (``_Track``).
    """

    kf: ConstantVelocityFilter
    last_seen_ns: int
    last_zone_kind: Optional[str]
    shared_since_ns: Optional[int] = None  # sharing one detection with others since
    last_own_ns: Optional[int] = None    # stamp of its last detection not shared (None: birth)
    detection: Optional[_Clean] = None   # detection fused this frame
    shared: bool = False                 # this frame's detection also explains another
    sep_heights: list[float] = field(default_factory=list)
    sep_appearances: list[NDArray] = field(default_factory=list)


@dataclass
class _Track:
    """An identity: id, stature and signature, role, confidence, visit link."""

    track_id: int
    body: _Body
    born_ns: int
    role: str
    confidence: float
    height_ref: float = math.nan
    appearance_ref: Optional[NDArray] = None
    identity_confirmed: bool = True
    tangle: Optional[_Tangle] = None
    pre_tangle_confidence: float = 1.0
    pre_tangle_velocity: Optional[NDArray] = None
    visit_id: str = ''
    account_id: str = ''
    born_zone_kind: Optional[str] = None  # the zone kind of its first detection


@dataclass
class _Tangle:
    """People in contact, and since when they have been apart (ns, None if touching)."""

    members: list[_Track]
    started_ns: int
    apart_since_ns: Optional[int] = None


@dataclass
class _Candidate:
    """A detection stream not yet a track."""

    body: _Body
    first_ns: int
    first_zone_kind: Optional[str]
    hits: int = 1
    heights: list[float] = field(default_factory=list)
    appearance: Optional[NDArray] = None
    beside_track: bool = False         # first seen within contact_m of a track


def _cosine_distance(a: Optional[NDArray], b: Optional[NDArray]) -> float:
    """Return 1 - cosine similarity of two signatures; NaN when either is missing."""
    if a is None or b is None:
        return math.nan
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denominator <= 0.0:
        return math.nan
    return 1.0 - float(np.dot(a, b)) / denominator


def _blend(reference: Optional[NDArray], value: NDArray, alpha: float) -> NDArray:
    """Return the running unit-norm signature after one more observation."""
    if reference is None:
        return value.copy()
    mixed = (1.0 - alpha) * reference + alpha * value
    norm = float(np.linalg.norm(mixed))
    return mixed / norm if norm > 0.0 else value.copy()


class Tracker:
    """Multi-person tracker; see the module docstring for the rules."""

    def __init__(self, config: Optional[TrackerConfig] = None,
                 zones: Iterable[Zone] = ()) -> None:
        """Keep the config and the zones (measurement-plane rectangles)."""
        self.config = config or TrackerConfig()
        self.zones = check_zones(zones)
        c = self.config
        self._dim = c.measurement_dim
        self._r = c.measurement_std ** 2
        self._q = c.acceleration_psd
        self._v0 = c.initial_velocity_std ** 2
        self._share_r = c.share_std ** 2
        # chi-square quantile: 2 * P^-1(k / 2, p) (scipy.special loads faster than .stats)
        self._gate = float(2.0 * gammaincinv(0.5 * self._dim, c.gate_probability))
        self._appearance_length = c.appearance_length
        self._associate = (np.asarray(c.associate_signature, dtype=float)
                           if c.associate_signature else None)
        # Learned uniform (no configured signature): sum of the signatures of tracks born
        # at a staff door, and the ids that taught it.
        self._uniform_sum: Optional[NDArray] = None
        self._uniform_teachers: set[int] = set()
        self._tracks: list[_Track] = []
        self._candidates: list[_Candidate] = []
        self._next_id: Optional[int] = c.first_track_id or None
        self._last_stamp_ns: Optional[int] = None
        self.counters: dict[str, int] = {}
        self.last_rejections: list[Rejection] = []
        self.ended: list[tuple[int, str]] = []  # (track id, 'exit' | 'lost') this frame

    # -- public -------------------------------------------------------------------------

    @property
    def last_stamp_ns(self) -> Optional[int]:
        """Return the stamp of the last accepted frame."""
        return self._last_stamp_ns

    def link_visit(self, track_ids: Iterable[int], visit_id: str, account_id: str) -> int:
        """Attach a visit (opened at the entry gate) to live tracks; return how many."""
        wanted = set(int(t) for t in track_ids)
        linked = 0
        for track in self._tracks:
            if track.track_id in wanted:
                track.visit_id, track.account_id = visit_id, account_id
                linked += 1
        return linked

    def update(self, detections: Sequence[Detection], stamp_ns: int,
               now_ns: Optional[int] = None) -> list[Track]:
        """Fuse one frame of detections taken at ``stamp_ns``; return every live track.

        ``now_ns`` (the caller's clock) lets a frame from the future be refused.
        Raises ``TrackerInputError`` for a refused frame; the state is then unchanged.
        """
        self.last_rejections = []
        self.ended = []
        self._check_stamp(stamp_ns, now_ns)
        if not detections:
            self._count('empty_frames')
        clean = self._clean(detections)
        dt_s = 0.0 if self._last_stamp_ns is None else \
            (stamp_ns - self._last_stamp_ns) / NS_PER_SECOND
        self._last_stamp_ns = stamp_ns
        if self._next_id is None:
            self._next_id = (stamp_ns // 1_000_000) * 1000 + 1
        self._predict(dt_s, stamp_ns)
        free = self._associate_tracks(clean, stamp_ns)
        self._share_detections(clean)
        free = self._associate_candidates(clean, free, stamp_ns)
        self._spawn_candidates(clean, free, stamp_ns)
        self._promote_candidates(stamp_ns)
        self._update_tangles(stamp_ns)
        for track in self._tracks:
            # Only a detection of one person alone teaches stature and signature: not a
            # shared blob, not while tangled.
            if track.body.detection is not None and track.body.last_seen_ns == stamp_ns \
                    and not track.body.shared and track.tangle is None:
                self._learn_features(track, track.body.detection)
        self._end_tracks(stamp_ns)
        self._update_roles(stamp_ns)
        self._count('frames')
        return self.tracks(stamp_ns)

    def tracks(self, stamp_ns: Optional[int] = None) -> list[Track]:
        """Return every live track (at the last frame's stamp unless given)."""
        stamp = self._last_stamp_ns if stamp_ns is None else stamp_ns
        result = []
        for track in self._tracks:
            body = track.body
            unseen_s = 0.0 if stamp is None else max(0.0, (stamp - body.last_seen_ns)
                                                     / NS_PER_SECOND)
            tangled_with = tuple(sorted(m.track_id for m in track.tangle.members
                                        if m is not track)) if track.tangle else ()
            result.append(Track(
                track_id=track.track_id, position=body.kf.position.copy(),
                velocity=body.kf.velocity.copy(),
                position_covariance=body.kf.position_covariance().copy(),
                height_m=track.height_ref, confidence=self._reported_confidence(track),
                tangled=track.tangle is not None, tangled_with=tangled_with,
                role=track.role, last_seen_ns=body.last_seen_ns, born_ns=track.born_ns,
                unseen_s=unseen_s, identity_confirmed=track.identity_confirmed,
                visit_id=track.visit_id, account_id=track.account_id))
        return result

    # -- input --------------------------------------------------------------------------

    def _count(self, key: str, increment: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + increment

    def _reject(self, reason: str, detail: str) -> None:
        self._count(reason)
        self.last_rejections.append(Rejection(reason, detail))

    def _check_stamp(self, stamp_ns: int, now_ns: Optional[int]) -> None:
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)):
            self._count('dropped_bad_stamp')
            raise TrackerInputError('dropped_bad_stamp', f'stamp {stamp_ns!r} is not int ns')
        last = self._last_stamp_ns
        if last is not None and stamp_ns <= last:
            reason = 'dropped_repeated_stamp' if stamp_ns == last else 'dropped_stale_stamp'
            self._count(reason)
            raise TrackerInputError(
                reason, f'frame stamped {stamp_ns} ns is not after the last frame '
                        f'({last} ns, {(last - stamp_ns) / NS_PER_SECOND:.3f} s later)')
        if now_ns is not None and stamp_ns > now_ns + self.config.max_future_s * NS_PER_SECOND:
            self._count('dropped_future_stamp')
            raise TrackerInputError(
                'dropped_future_stamp', f'frame stamped {(stamp_ns - now_ns) / NS_PER_SECOND:.3f}'
                f' s ahead of the clock (limit {self.config.max_future_s} s)')

    def _clean(self, detections: Sequence[Detection]) -> list[_Clean]:
        """Validate detections; drop the bad ones (or their bad signature)."""
        clean = []
        for index, det in enumerate(detections):
            z = np.asarray(det.position, dtype=float).reshape(-1)
            if z.shape[0] != self._dim or not np.all(np.isfinite(z)):
                self._reject('dropped_bad_position',
                             f'detection {index}: position {tuple(det.position)} is not '
                             f'{self._dim} finite numbers')
                continue
            if self.config.mode == 'image_box' and (z[2] <= 0.0 or z[3] <= 0.0):
                self._reject('dropped_bad_position', f'detection {index}: empty box {z}')
                continue
            height = float(det.height_m)
            if math.isinf(height) or (math.isfinite(height) and not 0.0 <= height <= 3.0):
                self._reject('dropped_bad_height',
                             f'detection {index}: height {height} m is not in [0, 3]')
                continue
            confidence = float(det.confidence)
            if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
                self._reject('dropped_bad_confidence',
                             f'detection {index}: confidence {confidence} not in [0, 1]')
                continue
            clean.append(_Clean(z, height, confidence, self._clean_appearance(index, det)))
        return clean

    def _clean_appearance(self, index: int, det: Detection) -> Optional[NDArray]:
        if len(det.appearance) == 0:
            return None
        a = np.asarray(det.appearance, dtype=float).reshape(-1)
        if self._appearance_length == 0:
            self._appearance_length = a.shape[0]  # learnt from the first signature
        if a.shape[0] != self._appearance_length:
            self._reject('dropped_bad_appearance_length',
                         f'detection {index}: signature has {a.shape[0]} values, expected '
                         f'{self._appearance_length}; the detection is kept without it')
            return None
        norm = float(np.linalg.norm(a)) if np.all(np.isfinite(a)) else math.nan
        if not (math.isfinite(norm) and norm > 0.0):
            self._reject('dropped_bad_appearance',
                         f'detection {index}: signature is not finite or is all zero')
            return None
        return a / norm

    # -- motion -------------------------------------------------------------------------

    def _predict(self, dt_s: float, stamp_ns: int) -> None:
        if dt_s <= 0.0:
            return
        tau = self.config.coast_velocity_tau_s
        previous_ns = stamp_ns - round(dt_s * NS_PER_SECOND)
        seen_step = transition(self._dim, dt_s, self._q)
        unseen_step = transition(self._dim, dt_s, self._q, tau)
        for body in [t.body for t in self._tracks] + [c.body for c in self._candidates]:
            body.kf.predict_with(*(unseen_step if body.last_seen_ns < previous_ns
                                   else seen_step))
            body.detection = None
            body.shared = False

    def _zone_kind(self, z: NDArray) -> Optional[str]:
        for zone in self.zones:
            if zone.contains(float(z[0]), float(z[1])):
                return zone.kind
        return None

    def _fuse(self, body: _Body, det: _Clean, stamp_ns: int, shared: bool = False) -> None:
        body.kf.update(det.z, self._share_r if shared else self._r)
        body.last_seen_ns = stamp_ns
        if not shared:
            body.last_own_ns = stamp_ns
        body.detection = det
        body.shared = shared
        body.last_zone_kind = self._zone_kind(body.kf.position)

    # -- assignment ---------------------------------------------------------------------

    def _feature_cost(self, height_ref: float, appearance_ref: Optional[NDArray],
                      det: _Clean) -> float:
        """Height and appearance terms of the cost; INFEASIBLE beyond their hard gates."""
        c = self.config
        cost = 0.0
        if math.isfinite(height_ref) and math.isfinite(det.height_m):
            dh = abs(det.height_m - height_ref)
            if dh > c.height_gate_m:
                return INFEASIBLE
            cost += (dh / c.height_std_m) ** 2
        da = _cosine_distance(appearance_ref, det.appearance)
        if math.isfinite(da):
            if da > c.appearance_gate:
                return INFEASIBLE
            cost += (da / c.appearance_std) ** 2
        return cost

    def _associate_tracks(self, clean: list[_Clean], stamp_ns: int) -> list[int]:
        """Assign detections to tracks; return the indices of detections left free."""
        if not self._tracks or not clean:
            return list(range(len(clean)))
        z = np.stack([d.z for d in clean])
        cost = np.full((len(self._tracks), len(clean)), INFEASIBLE)
        for i, track in enumerate(self._tracks):
            d2 = track.body.kf.mahalanobis2(z, self._r)
            for j in np.flatnonzero(d2 <= self._gate):
                # Stature and signature are frozen while tangled (a merged blob mixes two
                # people), so they still tell two separate heads apart.
                cost[i, j] = d2[j] + self._feature_cost(
                    track.height_ref, track.appearance_ref, clean[j])
        used = set()
        for row, col in _assign_with_misses(cost, self.config.miss_cost):
            track = self._tracks[row]
            unseen_s = (stamp_ns - track.body.last_seen_ns) / NS_PER_SECOND
            if unseen_s > self.config.long_miss_s:
                self._found_after_long_miss(track, clean[col])
            self._fuse(track.body, clean[col], stamp_ns)
            used.add(col)
        return [j for j in range(len(clean)) if j not in used]

    def _found_after_long_miss(self, track: _Track, det: _Clean) -> None:
        """Keep the confidence only if stature and signature agree with the detection."""
        c = self.config
        dh = abs(det.height_m - track.height_ref)
        da = _cosine_distance(track.appearance_ref, det.appearance)
        checks = [value <= limit for value, limit in
                  ((dh, 2.0 * c.height_std_m), (da, 2.0 * c.appearance_std))
                  if math.isfinite(value)]
        agree = bool(checks) and all(checks)
        if not agree:
            track.confidence = min(track.confidence, c.confidence_guess)
            track.identity_confirmed = False
            self._count('found_after_long_miss_unconfirmed')
        else:
            self._count('found_after_long_miss_confirmed')

    def _learn_features(self, track: _Track, det: _Clean) -> None:
        alpha = self.config.feature_alpha
        if math.isfinite(det.height_m):
            track.height_ref = det.height_m if not math.isfinite(track.height_ref) else \
                (1.0 - alpha) * track.height_ref + alpha * det.height_m
        if det.appearance is not None:
            track.appearance_ref = _blend(track.appearance_ref, det.appearance, alpha)

    def _share_detections(self, clean: list[_Clean]) -> None:
        """Let a missed track share the detection a track next to it took (a tangle)."""
        c = self.config
        owners = [t for t in self._tracks if t.body.detection is not None]
        for track in self._tracks:
            if track.body.detection is not None:
                continue
            best: Optional[_Track] = None
            best_distance = c.contact_m
            for owner in owners:
                det = owner.body.detection
                assert det is not None
                distance = float(np.linalg.norm(det.z[:2] - track.body.kf.position[:2]))
                if distance < best_distance and \
                        track.body.kf.mahalanobis2(det.z, self._share_r)[0] <= self._gate:
                    best, best_distance = owner, distance
            if best is not None:
                assert best.body.detection is not None
                self._fuse(track.body, best.body.detection, best.body.last_seen_ns,
                           shared=True)
                best.body.shared = True
                self._join_tangle(track, best)
                self._count('shared_detections')

    def _associate_candidates(self, clean: list[_Clean], free: list[int],
                              stamp_ns: int) -> list[int]:
        """Assign free detections to candidates on motion alone; return those left."""
        if not self._candidates or not free:
            return free
        z = np.stack([clean[j].z for j in free])
        cost = np.full((len(self._candidates), len(free)), INFEASIBLE)
        for i, candidate in enumerate(self._candidates):
            d2 = candidate.body.kf.mahalanobis2(z, self._r)
            cost[i] = np.where(d2 <= self._gate, d2, INFEASIBLE)
        used = set()
        # Candidates are matched on motion alone, as many gated pairs as possible.
        for i, k in _assign_with_misses(cost, 0.0):
            candidate, det = self._candidates[i], clean[free[k]]
            self._fuse(candidate.body, det, stamp_ns)
            candidate.hits += 1
            if math.isfinite(det.height_m):
                candidate.heights.append(det.height_m)
            if det.appearance is not None:
                candidate.appearance = _blend(candidate.appearance, det.appearance,
                                              self.config.feature_alpha)
            used.add(free[k])
        return [j for j in free if j not in used]

    def _spawn_candidates(self, clean: list[_Clean], free: list[int], stamp_ns: int) -> None:
        c = self.config
        xy = np.array([t.body.kf.position[:2] for t in self._tracks]).reshape(-1, 2)
        for j in free:
            det = clean[j]
            zone = self._zone_kind(det.z)
            beside = bool(xy.size) and \
                float((((xy - det.z[:2]) ** 2).sum(axis=1)).min()) < c.contact_m ** 2
            if beside and (c.birth_beside_track_hits == 0 or zone not in BESIDE_BIRTH_KINDS):
                # A second blob on a tracked person (an arm, a bag) is not a new person.
                self._count('ignored_next_to_track')
                continue
            body = _Body(ConstantVelocityFilter(det.z, self._r, self._v0), stamp_ns, zone,
                         detection=det)
            self._candidates.append(_Candidate(
                body, stamp_ns, body.last_zone_kind,
                heights=[det.height_m] if math.isfinite(det.height_m) else [],
                appearance=None if det.appearance is None else det.appearance.copy(),
                beside_track=beside))

    def _promote_candidates(self, stamp_ns: int) -> None:
        c = self.config
        kept = []
        for candidate in self._candidates:
            body = candidate.body
            age_s = (stamp_ns - candidate.first_ns) / NS_PER_SECOND
            unseen_s = (stamp_ns - body.last_seen_ns) / NS_PER_SECOND
            in_birth_zone = candidate.first_zone_kind in BIRTH_KINDS
            if unseen_s > c.candidate_max_unseen_s:
                continue
            hits = c.birth_beside_track_hits if candidate.beside_track else c.birth_min_hits
            if in_birth_zone and candidate.hits >= hits:
                role = ROLE_ASSOCIATE if candidate.first_zone_kind == 'staff' else ROLE_SHOPPER
                self._birth(candidate, role, c.confidence_entry, 'born_in_zone')
            elif not in_birth_zone and age_s >= c.birth_anywhere_after_s and \
                    candidate.hits >= hits:
                self._birth(candidate, ROLE_SHOPPER, c.confidence_anywhere, 'born_anywhere')
            else:
                kept.append(candidate)
        self._candidates = kept

    def _birth(self, candidate: _Candidate, role: str, confidence: float, counter: str) -> None:
        assert self._next_id is not None
        heights = candidate.heights
        track = _Track(
            track_id=self._next_id, body=candidate.body, born_ns=candidate.first_ns,
            role=role, confidence=confidence,
            height_ref=float(np.median(heights)) if heights else math.nan,
            appearance_ref=candidate.appearance,
            identity_confirmed=confidence >= self.config.confidence_entry,
            born_zone_kind=candidate.first_zone_kind)
        self._next_id += 1
        self._tracks.append(track)
        self._count(counter)

    # -- tangles ------------------------------------------------------------------------

    def _join_tangle(self, a: _Track, b: _Track) -> None:
        if a.tangle is not None and a.tangle is b.tangle:
            return
        members: list[_Track] = []
        for track in (a, b):
            for member in (track.tangle.members if track.tangle else [track]):
                if member not in members:
                    members.append(member)
        started = [m.tangle.started_ns for m in members if m.tangle is not None]
        tangle = _Tangle(members, min(started) if started else self._stamp_ns())
        for member in members:
            if member.tangle is None:
                member.pre_tangle_confidence = member.confidence
                member.pre_tangle_velocity = member.body.kf.velocity.copy()
                self._count('tangled_tracks')
            member.tangle = tangle
        for member in members:
            member.body.sep_heights.clear()
            member.body.sep_appearances.clear()

    def _stamp_ns(self) -> int:
        assert self._last_stamp_ns is not None
        return self._last_stamp_ns

    def _update_tangles(self, stamp_ns: int) -> None:
        c = self.config
        seen = [t for t in self._tracks if t.body.last_seen_ns == stamp_ns]
        if len(seen) > 1:
            xy = np.array([t.body.kf.position[:2] for t in seen])
            distance2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
            for i, j in zip(*np.nonzero(np.triu(distance2 < c.contact_m ** 2, k=1)),
                            strict=True):
                self._join_tangle(seen[int(i)], seen[int(j)])
        tangles = {id(t.tangle): t.tangle for t in self._tracks if t.tangle is not None}
        for tangle in tangles.values():
            self._step_tangle(tangle, stamp_ns)

    def _step_tangle(self, tangle: _Tangle, stamp_ns: int) -> None:
        """Watch a tangle come apart; re-identify its members once they are apart."""
        c = self.config
        members = tangle.members
        bodies = [m.body for m in members]
        own = all(b.detection is not None and not b.shared for b in bodies)
        apart = own and all(
            float(np.linalg.norm(a.kf.position[:2] - b.kf.position[:2])) >= c.separate_m
            for a, b in itertools.combinations(bodies, 2))
        if not apart:
            tangle.apart_since_ns = None
            for body in bodies:
                body.sep_heights.clear()
                body.sep_appearances.clear()
            return
        if tangle.apart_since_ns is None:
            tangle.apart_since_ns = stamp_ns
        for body in bodies:
            assert body.detection is not None
            if math.isfinite(body.detection.height_m):
                body.sep_heights.append(body.detection.height_m)
            if body.detection.appearance is not None:
                body.sep_appearances.append(body.detection.appearance)
        if (stamp_ns - tangle.apart_since_ns) / NS_PER_SECOND >= c.separation_confirm_s:
            self._reidentify(tangle)

    def _reid_cost(self, track: _Track, body: _Body, tangled_s: float) -> float:
        c = self.config
        cost = 0.0
        if math.isfinite(track.height_ref) and body.sep_heights:
            cost += ((float(np.median(body.sep_heights)) - track.height_ref)
                     / c.height_std_m) ** 2
        if track.appearance_ref is not None and body.sep_appearances:
            mean = np.mean(body.sep_appearances, axis=0)
            da = _cosine_distance(track.appearance_ref, mean)
            if math.isfinite(da):
                cost += (da / c.appearance_std) ** 2
        if track.pre_tangle_velocity is not None:
            # Walking through each other keeps the velocity; after a long stop together
            # the velocity before says little, so its weight fades with the tangle's age.
            dv = body.kf.velocity[:2] - track.pre_tangle_velocity[:2]
            cost += float(dv @ dv) / c.reid_velocity_std ** 2 * math.exp(
                -tangled_s / c.reid_velocity_memory_s)
        return cost

    def _reidentify(self, tangle: _Tangle) -> None:
        """Give each identity the body that fits it best; decide whether that is clear."""
        c = self.config
        members = tangle.members
        bodies = [m.body for m in members]
        assert tangle.apart_since_ns is not None
        tangled_s = (tangle.apart_since_ns - tangle.started_ns) / NS_PER_SECOND
        cost = np.array([[self._reid_cost(m, b, tangled_s) for b in bodies] for m in members])
        best, second = _best_two_assignments(cost)
        margin = second[0] - best[0]
        confirmed = margin >= c.reid_margin
        swapped = any(j != i for i, j in enumerate(best[1]))
        for member, j in zip(members, best[1], strict=True):
            member.body = bodies[j]
        for member in members:
            member.tangle = None
            member.body.sep_heights.clear()
            member.body.sep_appearances.clear()
            if confirmed:
                member.confidence = member.pre_tangle_confidence
            else:
                member.confidence = min(member.pre_tangle_confidence, c.confidence_guess)
                member.identity_confirmed = False
            member.pre_tangle_velocity = None
        self._count('reidentified_confirmed' if confirmed else 'reidentified_guess')
        if swapped:
            self._count('reidentified_swaps')

    def _leave_tangle(self, track: _Track) -> None:
        """Take an ending track out of its tangle; a lone survivor's identity is a guess."""
        tangle = track.tangle
        if tangle is None:
            return
        tangle.members.remove(track)
        track.tangle = None
        if len(tangle.members) == 1:
            survivor = tangle.members[0]
            survivor.tangle = None
            survivor.confidence = min(survivor.pre_tangle_confidence,
                                      self.config.confidence_guess)
            survivor.identity_confirmed = False
            self._count('tangles_left_alone')

    # -- ends and roles -----------------------------------------------------------------

    def _ghosts(self, stamp_ns: int) -> set[int]:
        """Return the ids of tracks that only ever share one detection with others.

        A track explained only by a detection it shares for ``max_lost_s`` is likely a
        ghost that latched onto someone (a hidden track coasting into a passer-by): it
        ends unless its stature and signature fit the detection best of the tracks
        sharing it.
        """
        c = self.config
        for track in self._tracks:
            body = track.body
            if body.detection is None:
                continue
            if not body.shared:
                body.shared_since_ns = None
            elif body.shared_since_ns is None:
                body.shared_since_ns = stamp_ns
        sharing: dict[int, list[_Track]] = {}
        for track in self._tracks:
            if track.body.detection is not None and track.body.shared:
                sharing.setdefault(id(track.body.detection), []).append(track)
        ghosts: set[int] = set()
        for members in sharing.values():
            det = members[0].body.detection
            assert det is not None
            best = min(members, key=lambda t: (
                self._feature_cost(t.height_ref, t.appearance_ref, det), t.born_ns))
            for track in members:
                since = track.body.shared_since_ns
                if since is None or (stamp_ns - since) / NS_PER_SECOND < c.max_lost_s:
                    continue
                if track is best:
                    track.body.shared_since_ns = None  # the person the detection is
                else:
                    ghosts.add(track.track_id)
        return ghosts

    def _end_tracks(self, stamp_ns: int) -> None:
        c = self.config
        ghosts = self._ghosts(stamp_ns)
        kept = []
        for track in self._tracks:
            unseen_s = (stamp_ns - track.body.last_seen_ns) / NS_PER_SECOND
            # At a way out, a track kept only by a detection another track took is the
            # person who already left: people go out one behind the other, and the one
            # still in the zone must not carry the tracks of those gone before.
            own_ns = track.body.last_own_ns
            own_unseen_s = unseen_s if own_ns is None else (stamp_ns - own_ns) / NS_PER_SECOND
            lost_s = c.staff_lost_s if track.body.last_zone_kind == 'staff' else c.exit_lost_s
            if track.body.last_zone_kind in LEAVE_KINDS and unseen_s > 0.0 \
                    and unseen_s >= lost_s:
                reason = 'exit'
            elif track.body.last_zone_kind in LEAVE_KINDS and track.body.shared \
                    and own_unseen_s >= lost_s and own_unseen_s > 0.0:
                reason = 'exit'
                self._count('ended_exit_shared')
            elif unseen_s >= c.max_lost_s:
                reason = 'lost'
            elif track.track_id in ghosts:
                reason = 'shared_too_long'
            else:
                kept.append(track)
                continue
            self._leave_tangle(track)
            self.ended.append((track.track_id, reason))
            self._count(f'ended_{reason}')
        self._tracks = kept

    def _learn_uniform(self, stamp_ns: int) -> None:
        """Add the signature of tracks born at a staff door, once tracked long enough."""
        after_ns = self.config.learn_uniform_after_s * NS_PER_SECOND
        for track in self._tracks:
            if track.born_zone_kind != 'staff' or track.role != ROLE_ASSOCIATE or \
                    track.track_id in self._uniform_teachers or track.tangle is not None \
                    or track.appearance_ref is None or stamp_ns - track.born_ns < after_ns:
                continue
            if self._uniform_sum is not None and \
                    self._uniform_sum.shape != track.appearance_ref.shape:
                continue
            self._uniform_sum = track.appearance_ref.copy() if self._uniform_sum is None \
                else self._uniform_sum + track.appearance_ref
            self._uniform_teachers.add(track.track_id)
            self._count('uniform_teachers')

    def _uniform(self) -> Optional[NDArray]:
        """Return the configured uniform signature, else the learned one (unit norm)."""
        if self._associate is not None:
            return self._associate
        if self._uniform_sum is None:
            return None
        norm = float(np.linalg.norm(self._uniform_sum))
        return self._uniform_sum / norm if norm > 0.0 else None

    def _update_roles(self, stamp_ns: int) -> None:
        if self._associate is None and self.config.learn_uniform_after_s > 0.0:
            self._learn_uniform(stamp_ns)
        uniform = self._uniform()
        if uniform is None:
            return
        learned = self._associate is None
        for track in self._tracks:
            # A shopper who checked in is billed whatever they wear; with a learned
            # uniform, someone who came in by a shoppers' entrance stays a shopper (the
            # gate links them at the scan).
            if track.role == ROLE_ASSOCIATE or track.visit_id or \
                    (learned and track.born_zone_kind == 'entry') or \
                    track.tangle is not None or track.appearance_ref is None or \
                    track.appearance_ref.shape != uniform.shape:
                continue
            similarity = float(np.dot(track.appearance_ref, uniform))
            if similarity >= self.config.associate_min_similarity:
                track.role = ROLE_ASSOCIATE
                self._count('associates_by_uniform')

    def _reported_confidence(self, track: _Track) -> float:
        c = self.config
        confidence = track.confidence
        if track.tangle is not None:
            confidence = min(confidence, c.confidence_tangled)
        return confidence


def _assign_with_misses(cost: NDArray, miss_cost: float) -> list[tuple[int, int]]:
    """Return the (row, column) pairs of the cheapest assignment where rows may stay unmatched.

    Leaving a row (a track) or a column (a detection) unmatched costs ``miss_cost``, so a
    pair costing more than twice that is never made, and one costly pair is not taken to
    match one more track (a track whose person is hidden takes the detection of the
    person next to it, whose own track then has to take another's). Pairs at
    ``INFEASIBLE`` are never made. ``miss_cost`` 0: as many feasible pairs as possible.
    """
    n_rows, n_cols = cost.shape
    if miss_cost <= 0.0:
        rows, cols = linear_sum_assignment(cost)
        return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True)
                if cost[i, j] < INFEASIBLE]
    padded = np.full((n_rows + n_cols, n_cols + n_rows), INFEASIBLE)
    padded[:n_rows, :n_cols] = cost
    padded[np.arange(n_rows), n_cols + np.arange(n_rows)] = miss_cost
    padded[n_rows + np.arange(n_cols), np.arange(n_cols)] = miss_cost
    padded[n_rows:, n_cols:] = 0.0
    rows, cols = linear_sum_assignment(padded)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True)
            if i < n_rows and j < n_cols and cost[i, j] < INFEASIBLE]


def _best_two_assignments(cost: NDArray) -> tuple[tuple[float, tuple[int, ...]],
                                                  tuple[float, tuple[int, ...]]]:
    """Return the cheapest and second-cheapest permutations (cost, column per row).

    Small groups are enumerated; larger ones take the best of the re-solves that each
    forbid one pair of the best assignment (Murty's first partition).
    """
    n = cost.shape[0]
    if n <= MAX_ENUMERATED_GROUP:
        scored = sorted((float(sum(cost[i, p[i]] for i in range(n))), p)
                        for p in itertools.permutations(range(n)))
        return scored[0], scored[1] if len(scored) > 1 else (math.inf, scored[0][1])
    rows, cols = linear_sum_assignment(cost)
    best = (float(cost[rows, cols].sum()), tuple(int(c) for c in cols))
    second = (math.inf, best[1])
    for i, j in zip(rows, cols, strict=True):
        forbidden = cost.copy()
        forbidden[i, j] = INFEASIBLE
        r2, c2 = linear_sum_assignment(forbidden)
        total = float(forbidden[r2, c2].sum())
        if total < second[0]:
            second = (total, tuple(int(c) for c in c2))
    return best, second
