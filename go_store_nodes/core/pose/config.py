"""Settings of the pose estimator: one frozen, validated dataclass.

As for the locator, each field carries its meaning (with unit) and its valid range as
dataclass metadata, so the node declares its ROS parameters from the same table
(``PoseConfig.fields()``). Values for a store are in ``config/go_store.yaml`` under
``pose``; the defaults here are the same values, for the core's own users (tests,
benchmark). The depth pipeline (background, foreground, projection, frame sets) is the
locator's and takes a ``LocatorConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import math
from typing import Any

from ..locator.config import SettingInfo


def _setting(default: float, minimum: float, maximum: float, description: str) -> Any:
    return field(default=default, metadata={
        'minimum': minimum, 'maximum': maximum, 'description': description})


@dataclass(frozen=True)
class PoseConfig:
    """Every knob of the stick figures and the hand-in-bin test, in SI units (m, s)."""

    near_shelf_m: float = _setting(
        1.2, 0.1, 5.0, 'm, a track whose floor point is within this of a shelf front gets a '
        'stick figure')
    body_radius_m: float = _setting(
        1.1, 0.3, 3.0, 'm, foreground points within this (horizontally) of a track, and '
        'nearer to it than to any other track, are its body and arms')
    head_radius_m: float = _setting(
        0.10, 0.03, 0.3, 'm, head radius: the head joint lies this far below the top')
    head_search_m: float = _setting(
        0.22, 0.05, 1.0, 'm, the head is the highest point within this of the track')
    torso_half_depth_m: float = _setting(
        0.16, 0.02, 0.6, 'm, points farther forward than this from the head axis (towards '
        'the shelf) are outside the torso (arm candidates)')
    torso_half_width_m: float = _setting(
        0.30, 0.05, 0.8, 'm, points farther sideways than this from the head axis are '
        'outside the torso (arm candidates)')
    shoulder_search_m: float = _setting(
        0.45, 0.1, 1.0, 'm, shoulders are sought in slices down to this below the top')
    slice_m: float = _setting(
        0.04, 0.01, 0.2, 'm, height of the cross-section slices for the shoulders')
    min_arm_height_m: float = _setting(
        0.35, 0.0, 2.0, 'm, arm candidate points lower than this above the floor are '
        'ignored (knees of a crouching person, a basket)')
    arm_cell_m: float = _setting(
        0.04, 0.01, 0.2, 'm, grid cell for tracing an arm path')
    min_arm_points: float = _setting(
        12, 1, 10000, 'arm candidate components with fewer points are noise')
    max_arm_gap_m: float = _setting(
        0.10, 0.0, 1.0, 'm, an arm path must start within this of the torso region')
    min_arm_length_m: float = _setting(
        0.24, 0.0, 1.5, 'm, a hand is at least this far forward (towards the shelf) of the '
        'head axis')
    hand_end_m: float = _setting(
        0.05, 0.01, 0.3, 'm, the hand is the mean of the arm points within this of its far '
        'end')
    bin_tolerance_m: float = _setting(
        0.08, 0.0, 0.5, 'm, a bin box is grown by this on every side for the hand test')
    bin_front_tolerance_m: float = _setting(
        0.12, 0.0, 0.6, 'm, and by this in front for a hand placed at the front edge (a '
        'hand of a leaning person; an arm seen reaching must be seen inside the bin)')
    lean_front_m: float = _setting(
        0.25, 0.0, 1.0, 'm, a person whose head is within this of a shelf front leans in: '
        'a hand hidden under the body is sought at the front ahead of the head ...')
    lean_ahead_m: float = _setting(
        0.05, 0.0, 0.5, 'm, ... among points at least this far ahead of the head ...')
    lean_below_top_m: float = _setting(
        0.10, 0.0, 1.0, 'm, ... and this far below the top of the head ...')
    min_lean_points: float = _setting(
        3, 1, 1000, '... when at least this many are seen ...')
    lean_low_share: float = _setting(
        0.1, 0.01, 1.0, '... the hand at the height of their lowest share')
    weight_pad_s: float = _setting(
        0.4, 0.0, 5.0, 's, where shelves weigh their bins, a hand is in a bin when that '
        "bin's load cell was unsettled (pressed, lifted from) within this of the frame set")
    weight_snap_m: float = _setting(
        0.5, 0.0, 2.0, 'm, such a bin in the column of the hand and at most this far above or '
        'below it is taken for the bin the hand is in (a hidden hand is seen a level off); '
        'without one the hand is in no bin')
    weight_reach_m: float = _setting(
        0.7, 0.0, 2.0, 'm, a bin whose load cell is unsettled with no hand seen in it holds '
        'the hand of the person at the shelf whose head is within this of its front ...')
    weight_reach_margin_m: float = _setting(
        0.1, 0.0, 2.0, 'm, ... when everyone else not reaching elsewhere is at least this '
        "much farther (else nobody's hand is placed)")
    weight_stale_s: float = _setting(
        2.0, 0.1, 60.0, 's, a shelf whose load cells sent nothing for this long is judged by '
        'sight alone')
    weight_depart_g: float = _setting(
        8.0, 0.1, 1000.0, 'g from the settled load at which a bin counts as unsettled (as '
        "shelf_fusion's depart_g)")
    weight_stable_band_g: float = _setting(
        10.0, 0.1, 1000.0, 'g, largest spread of a still window: a bin settles again (as '
        "shelf_fusion's stable_band_g)")
    confirm_frames: float = _setting(
        2, 1, 100, 'frame sets in a row a hand must be in the same bin before it is reported '
                   '(its entry stamp is the first of them)')
    hold_s: float = _setting(
        0.3, 0.0, 5.0, 's, a hand back in the same bin within this keeps its entry stamp')
    track_wait_s: float = _setting(
        0.3, 0.0, 5.0, 's, a frame set waits at most this long (in stamps) for tracks as '
        'new as itself; then the newest tracks are used, moved with their velocity')
    max_track_age_s: float = _setting(
        1.0, 0.0, 10.0, 's, tracks older than this before a frame set are not used for it')
    max_queued_sets: float = _setting(
        8, 1, 100, 'frame sets waiting for tracks; older ones are dropped beyond this')
    inferred_confidence: float = _setting(
        0.3, 0.0, 1.0, 'confidence of joints placed from others, not seen (neck, pelvis)')

    def __post_init__(self) -> None:
        """Validate every field against its range and the fields against each other."""
        for info in self.fields():
            value = getattr(self, info.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f'{info.name} must be a finite number, got {value!r}')
            if not info.minimum <= value <= info.maximum:
                raise ValueError(f'{info.name} must be in [{info.minimum}, {info.maximum}] '
                                 f'({info.description}), got {value}')
        for name in ('min_arm_points', 'max_queued_sets', 'min_lean_points', 'confirm_frames'):
            if float(getattr(self, name)) != int(getattr(self, name)):
                raise ValueError(f'{name} must be a whole number, got {getattr(self, name)}')
        if self.head_search_m >= self.body_radius_m:
            raise ValueError(f'head_search_m ({self.head_search_m}) must be below '
                             f'body_radius_m ({self.body_radius_m})')
        if self.shoulder_search_m <= self.head_radius_m:
            raise ValueError(f'shoulder_search_m ({self.shoulder_search_m}) must exceed '
                             f'head_radius_m ({self.head_radius_m})')

    @classmethod
    def fields(cls) -> tuple[SettingInfo, ...]:
        """Every setting with its description and range, in declaration order."""
        return tuple(SettingInfo(f.name, f.metadata['description'], f.metadata['minimum'],
                                 f.metadata['maximum']) for f in fields(cls))

    def ns(self, name: str) -> int:
        """Return a duration setting (``*_s``) in integer nanoseconds."""
        return int(round(getattr(self, name) * 1e9))
