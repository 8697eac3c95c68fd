"""Configuration of the tracker and the zones where people enter and leave.

Units follow the measurement mode: ``floor`` measures the floor point below the head in
the map frame (m, m/s); ``image_point`` an image point and ``image_box`` a bounding box
(centre x, centre y, width, height) in pixels (px, px/s). Heights are metres in every
mode (NaN when the measurement has none, as in video).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import math
from typing import Iterable

from ..store import StoreDescription

MODES = ('floor', 'image_point', 'image_box')
MEASUREMENT_DIMS = {'floor': 2, 'image_point': 2, 'image_box': 4}
ZONE_KINDS = ('entry', 'exit', 'staff')
# Births happen in entry and staff zones; tracks end in exit and staff zones (associates
# leave through the staff gate they came in by).
BIRTH_KINDS = ('entry', 'staff')
LEAVE_KINDS = ('exit', 'staff')
# Where a detection beside a track may become a track of its own (birth_beside_track_hits):
# associates come in and stand together at the staff door. Shoppers at the entrance wait
# at the scanner in parties whose blobs merge and split: tracks born there beside a track
# went through long tangles and came out swapped more often than tracks born once the
# party spread out (crowd seed 4: IDF1 0.948 -> 0.929; busy seed 3: 0.970 -> 0.982
# with the staff door alone, 0.982 with both; docs/people.md, Births).
BESIDE_BIRTH_KINDS = ('staff',)


@dataclass(frozen=True)
class Zone:
    """A rectangle of the measurement plane (map m in floor mode, px in image modes)."""

    zone_id: str
    kind: str
    min_xy: tuple[float, float]
    max_xy: tuple[float, float]

    def __post_init__(self) -> None:
        """Validate kind and corners."""
        if self.kind not in ZONE_KINDS:
            raise ValueError(f'zone {self.zone_id!r}: kind must be one of {ZONE_KINDS}, '
                             f'got {self.kind!r}')
        if len(self.min_xy) != 2 or len(self.max_xy) != 2 or not all(
                math.isfinite(v) for v in (*self.min_xy, *self.max_xy)) or \
                self.min_xy[0] > self.max_xy[0] or self.min_xy[1] > self.max_xy[1]:
            raise ValueError(f'zone {self.zone_id!r}: min_xy {self.min_xy} and max_xy '
                             f'{self.max_xy} must be finite with min <= max')

    def contains(self, x: float, y: float) -> bool:
        """Whether a point of the measurement plane lies in the zone."""
        return self.min_xy[0] <= x <= self.max_xy[0] and self.min_xy[1] <= y <= self.max_xy[1]


def zones_from_store(store: StoreDescription) -> tuple[Zone, ...]:
    """Entry, exit and staff gate zones of the store description, in map metres."""
    return tuple(Zone(gate.gate_id, gate.kind, (float(gate.min_m[0]), float(gate.min_m[1])),
                      (float(gate.max_m[0]), float(gate.max_m[1])))
                 for gate in store.gates)


@dataclass(frozen=True)
class TrackerConfig:
    """Every tuning value of the tracker; defaults suit the floor mode of a small store.

    Motion and gating:
      measurement_std: std of a measured coordinate (m floor, px image).
      acceleration_psd: spectral density of the white acceleration of the
        constant-velocity model (m^2/s^3 floor, px^2/s^3 image): how abruptly people
        change speed; a hidden person's position variance grows by about this much
        times the seconds unseen (and more while the velocity is still uncertain).
      initial_velocity_std: velocity std of a new track (m/s or px/s).
      coast_velocity_tau_s: while a track is unseen its velocity decays with this time
        constant (a hidden person rarely keeps walking straight for seconds); its
        covariance keeps growing.
      gate_probability: chi-square probability of the Mahalanobis gate.
      miss_cost: cost of leaving a track without a detection, and a detection without a
        track, in the joint assignment (same units as the cost): a pair costing more
        than twice this is never made, and the assignment does not force a costly pair
        to match one more track. 0 matches as many gated pairs as possible.
    Identity cost (added to the squared Mahalanobis distance):
      height_std_m, height_gate_m: stature difference scale and hard limit (m).
      appearance_std, appearance_gate: scale and hard limit of 1 - cosine similarity of
        the unit-norm colour signatures.
      feature_alpha: weight of a new measurement in the running height and signature.
      appearance_length: expected signature length; 0 learns it from the first signature.
    Births and ends:
      birth_min_hits: detections in a row that make a track in an entry or staff zone.
      birth_beside_track_hits: detections that make a track of a candidate first seen
        within ``contact_m`` of a track in a staff zone (``BESIDE_BIRTH_KINDS``; 0, and
        anywhere else: such detections start no candidate).
      birth_anywhere_after_s: a detection seen this long outside those zones (a person
        the tracker lost) becomes a track anyway, with ``confidence_anywhere``.
      candidate_max_unseen_s: a not-yet-born detection unseen this long is forgotten.
      max_lost_s: a track unseen this long ends (a hidden person survives until then).
      exit_lost_s: a track last seen in an exit zone and unseen this long ends.
      staff_lost_s: the same in a staff zone, where associates also stand and work (a
        moment unseen in the doorway is not leaving).
      long_miss_s: a track found again after this long unseen keeps its confidence only
        when height and appearance agree (else ``confidence_guess``).
    Tangles:
      contact_m: tracks closer than this (or sharing one detection) are tangled (m floor,
        px image).
      separate_m: a tangle is over once its members are all this far apart...
      separation_confirm_s: ...for this long; then identities are re-assigned jointly.
      share_std: measurement std used when one detection explains two tracks: its
        position is the head of one of them, about a head-to-head distance (0.3-0.45 m)
        from the other.
      reid_margin: cost difference between the best and the second-best re-assignment
        above which the re-identification is confirmed.
      reid_velocity_std: scale of velocity differences (before vs after) in that cost.
      reid_velocity_memory_s: the velocity term's weight is exp(-tangle duration / this):
        people walking through each other keep their velocity, people who stood
        together for a while do not.
    Confidence (Track.confidence, the probability that the identity is right):
      confidence_entry (born in an entry or staff zone), confidence_anywhere (born
      elsewhere), confidence_tangled (while tangled), confidence_guess (after an unclear
      re-identification); a confirmed re-identification restores the confidence the
      track had before the tangle.
    Roles:
      associate_signature: unit-norm uniform colour signature; () learns it instead.
      associate_min_similarity: cosine similarity to it that makes a track an associate.
      learn_uniform_after_s: without a configured signature, a track born in a staff
        zone teaches the uniform (the mean of such tracks' signatures) once it has been
        tracked this long; 0 turns learning off. The learned uniform makes associates
        only of tracks not born at an entry door. A track linked to a visit is never
        made an associate by its colours.
    Other:
      first_track_id: first id handed out; 0 derives it from the first stamp
        (milliseconds * 1000 + 1) so a restarted tracker never reuses an earlier id.
      max_future_s: a stamp this far ahead of the caller's clock is refused.
    """

    mode: str = 'floor'
    measurement_std: float = 0.08
    acceleration_psd: float = 1.0
    initial_velocity_std: float = 1.0
    coast_velocity_tau_s: float = 0.5
    gate_probability: float = 0.999
    miss_cost: float = 24.0
    height_std_m: float = 0.06
    height_gate_m: float = 0.5
    appearance_std: float = 0.1
    appearance_gate: float = 0.7
    feature_alpha: float = 0.1
    appearance_length: int = 0
    birth_min_hits: int = 2
    birth_beside_track_hits: int = 4
    birth_anywhere_after_s: float = 1.5
    candidate_max_unseen_s: float = 0.5
    max_lost_s: float = 8.0
    exit_lost_s: float = 0.5
    staff_lost_s: float = 1.0
    long_miss_s: float = 2.0
    contact_m: float = 0.5
    separate_m: float = 0.7
    separation_confirm_s: float = 0.4
    share_std: float = 0.4
    reid_margin: float = 4.0
    reid_velocity_std: float = 0.5
    reid_velocity_memory_s: float = 1.0
    confidence_entry: float = 0.95
    confidence_anywhere: float = 0.3
    confidence_tangled: float = 0.5
    confidence_guess: float = 0.4
    associate_signature: tuple[float, ...] = ()
    associate_min_similarity: float = 0.9
    learn_uniform_after_s: float = 3.0
    first_track_id: int = 0
    max_future_s: float = 1.0

    def __post_init__(self) -> None:
        """Validate every field with a message naming it."""
        if self.mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {self.mode!r}')
        positive = ('measurement_std', 'acceleration_psd', 'initial_velocity_std',
                    'coast_velocity_tau_s', 'height_std_m', 'height_gate_m', 'appearance_std',
                    'appearance_gate', 'max_lost_s', 'contact_m', 'separate_m', 'share_std',
                    'reid_velocity_std', 'reid_velocity_memory_s', 'candidate_max_unseen_s',
                    'max_future_s')
        non_negative = ('miss_cost', 'birth_anywhere_after_s', 'exit_lost_s', 'staff_lost_s',
                        'long_miss_s', 'separation_confirm_s', 'reid_margin',
                        'learn_uniform_after_s')
        unit = ('confidence_entry', 'confidence_anywhere', 'confidence_tangled',
                'confidence_guess', 'associate_min_similarity')
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in positive + non_negative + unit + ('gate_probability',
                                                           'feature_alpha'):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        not math.isfinite(value):
                    raise ValueError(f'{f.name} must be a finite number, got {value!r}')
        for name in positive:
            if getattr(self, name) <= 0.0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)!r}')
        for name in non_negative:
            if getattr(self, name) < 0.0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)!r}')
        for name in unit:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)!r}')
        if not 0.0 < self.gate_probability < 1.0:
            raise ValueError(f'gate_probability must be in (0, 1), got {self.gate_probability}')
        if not 0.0 < self.feature_alpha <= 1.0:
            raise ValueError(f'feature_alpha must be in (0, 1], got {self.feature_alpha}')
        for name in ('appearance_length', 'birth_min_hits', 'birth_beside_track_hits',
                     'first_track_id'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f'{name} must be an int >= 0, got {value!r}')
        if self.birth_min_hits < 1:
            raise ValueError(f'birth_min_hits must be >= 1, got {self.birth_min_hits}')
        if self.separate_m < self.contact_m:
            raise ValueError(f'separate_m ({self.separate_m}) must be >= contact_m '
                             f'({self.contact_m}): the tangle needs hysteresis')
        for name in ('exit_lost_s', 'staff_lost_s'):
            if getattr(self, name) > self.max_lost_s:
                raise ValueError(f'{name} ({getattr(self, name)}) must be <= max_lost_s '
                                 f'({self.max_lost_s})')
        signature = self.associate_signature
        if signature:
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in signature):
                raise ValueError('associate_signature must hold finite numbers')
            norm = math.sqrt(sum(v * v for v in signature))
            if abs(norm - 1.0) > 1e-3:
                raise ValueError(f'associate_signature must be unit-norm, its norm is {norm:.4f}')
            if self.appearance_length and len(signature) != self.appearance_length:
                raise ValueError(f'associate_signature has {len(signature)} values but '
                                 f'appearance_length is {self.appearance_length}')

    @property
    def measurement_dim(self) -> int:
        """Number of measured coordinates: 2 (floor point, image point) or 4 (box)."""
        return MEASUREMENT_DIMS[self.mode]


def check_zones(zones: Iterable[Zone]) -> tuple[Zone, ...]:
    """Return the zones as a tuple; raise ValueError on a repeated zone id."""
    result = tuple(zones)
    ids = [zone.zone_id for zone in result]
    if len(set(ids)) != len(ids):
        raise ValueError(f'zone ids must be unique, got {ids}')
    return result
