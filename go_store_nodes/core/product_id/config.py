"""Settings of product identification: one frozen, validated dataclass.

Each field carries its meaning (with unit), its kind (int or float) and its valid range
as dataclass metadata, so the node declares its ROS parameters from the same table
(``ProductIdConfig.fields``). Values for a store are in ``config/go_store.yaml`` under
``product_id``; the defaults here are the same values, for the core's own users.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import math
from typing import Any


def _setting(default: float, minimum: float, maximum: float, description: str) -> Any:
    return field(default=default, metadata={
        'minimum': minimum, 'maximum': maximum, 'description': description})


@dataclass(frozen=True)
class SettingInfo:
    """Name, meaning, kind and range of one setting."""

    name: str
    description: str
    minimum: float
    maximum: float
    integer: bool


@dataclass(frozen=True)
class ProductIdConfig:
    """Every knob of product identification (pixels, DN 0..255, seconds)."""

    # Frames kept per camera.
    ring_frames: int = _setting(
        90, 2, 10000, 'colour frames kept per camera (a full ring drops its oldest, counted)')
    # Which frames bracket a shelf event.
    before_margin_s: float = _setting(
        0.1, 0.0, 5.0, 's, the before frame is the last one at least this long before start')
    after_margin_s: float = _setting(
        0.1, 0.0, 5.0, 's, the after frame is the first one at least this long after end')
    max_wait_s: float = _setting(
        3.0, 0.0, 60.0, 's of node clock after the event end to wait for after frames')
    frame_candidates: int = _setting(
        4, 1, 30, 'frames on each side of the event tried; the pair that differs least '
        '(a person moved least) is used')
    hand_side_weight: float = _setting(
        0.5, 0.0, 1.0, 'weight of the changed pixels of the other frame (pick: after, '
        'return: before), where the item is in the hand beside the bin; the rest goes to '
        'the frame where it is on the shelf')
    # Bin region and changed pixels.
    bin_margin_m: float = _setting(
        0.03, 0.0, 0.5, 'm, the bin box grows by this much before it is projected')
    min_visible_share: float = _setting(
        0.3, 0.0, 1.0, "share of a bin's front units a camera must see (through the bin's "
        'opening, past other shelves) to be used')
    min_window_px: int = _setting(
        4, 1, 1000, 'px, smallest width and height of a projected bin region worth a look')
    change_threshold_dn: float = _setting(
        18.0, 1.0, 255.0, 'DN, a pixel changed when its largest channel difference exceeds this')
    mask_grow_px: int = _setting(
        0, 0, 20, 'px the changed pixels are grown by before classification (the rest of '
        'the item beside the edges that changed)')
    background_suppression: float = _setting(
        0.0, 0.0, 10.0, 'changed pixels in colours common in the unchanged part of the bin '
        'region (the shelf) count exp(-this x relative density) (0: all count fully)')
    min_changed_px: int = _setting(
        6, 1, 100000, 'changed pixels in the bin region below which nothing is classified')
    # Crops round the hand (from pose's skeletons).
    hand_record_points: int = _setting(
        6000, 10, 1000000, 'hand points (one hand of one person at one time) kept; a full '
        'record drops its oldest, counted')
    skeleton_future_s: float = _setting(
        1.0, 0.0, 60.0, 's, skeletons stamped further ahead of the node clock are dropped')
    hand_pad_s: float = _setting(
        0.3, 0.0, 5.0, "s, a hand whose skeleton puts it in the event's bin within this of "
        '[start, end] is followed')
    hand_follow_s: float = _setting(
        1.0, 0.0, 5.0, 's the hand is followed after the end of a pick (before the start '
        'of a return), where it holds the item (0: no hand crops)')
    hand_radius_m: float = _setting(
        0.08, 0.01, 0.5, 'm, radius of the ball round the hand that is projected (about an '
        "item's size)")
    hand_frame_tolerance_s: float = _setting(
        0.15, 0.0, 2.0, 's, largest gap between a hand point and the colour frame used for it')
    hand_views: int = _setting(
        4, 1, 100, 'hand points per camera and event classified (spread over the follow '
        'window)')
    hand_pixels: int = _setting(
        2, 0, 2, "which pixels of the hand's disc are the item: 0 all, 1 those that differ "
        "from the camera's frame before the reach, 2 all, colours of the person's body "
        'played down')
    hand_body_suppression: float = _setting(
        2.0, 0.0, 10.0, "with hand_pixels 2: pixels in colours common round the person's "
        'torso count exp(-this x relative density)')
    # What the person carries (basket, bag, the other hand), before and after.
    carried_follow_s: float = _setting(
        1.5, 0.0, 10.0, "s after a pick's end (before a return's start) in which what the "
        'person carries is looked at (0: no carried crops)')
    carried_reference_s: float = _setting(
        1.5, 0.1, 10.0, "s before a pick's start (after a return's end) that show what the "
        'person carried without the item')
    carried_radius_m: float = _setting(
        0.4, 0.05, 1.5, "m, radius of the ball round the person's torso point that is "
        'projected (a basket or bag held at the side)')
    carried_reach_m: float = _setting(
        1.0, 0.0, 5.0, "m: when no hand was seen in the event's bin, people whose torso came "
        "this near the bin's front during the event are looked at (0: nobody)")
    carried_views: int = _setting(
        4, 1, 100, 'times per camera and window classified (spread over the window)')
    carried_known_px: float = _setting(
        2.0, 0.1, 1000.0, 'px: a colour seen on n pixels of the crops without the item '
        'counts exp(-n / this) in the crops with it')
    carried_min_px: float = _setting(
        8.0, 0.0, 100000.0, 'summed weight of new-coloured pixels per camera below which '
        'nothing is classified')
    # Classifier.
    neighbours: int = _setting(
        3, 1, 50, 'nearest references per label averaged into its distance')
    temperature: float = _setting(
        0.08, 0.001, 10.0, 'feature distance per e-fold of likelihood (softmax scale)')
    max_skus: int = _setting(5, 1, 1000, 'SKU candidates published per observation')
    orb_min_size_px: int = _setting(
        48, 8, 10000, 'px, crops and references at least this large on both sides are '
        'also compared with ORB local features')
    orb_weight: float = _setting(
        2.0, 0.0, 100.0, 'log-likelihood added per unit share of ORB ratio-test matches')

    def __post_init__(self) -> None:
        """Validate every field against its range and its kind."""
        for info in self.fields():
            value = getattr(self, info.name)
            if info.integer:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f'{info.name} must be an integer, got {value!r}')
            elif isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f'{info.name} must be a finite number, got {value!r}')
            if not info.minimum <= value <= info.maximum:
                raise ValueError(f'{info.name} must be in [{info.minimum}, {info.maximum}] '
                                 f'({info.description}), got {value}')

    @classmethod
    def fields(cls) -> tuple[SettingInfo, ...]:
        """Every setting with its meaning, range and kind, in declaration order."""
        return tuple(SettingInfo(f.name, f.metadata['description'], f.metadata['minimum'],
                                 f.metadata['maximum'], f.type in ('int', int))
                     for f in fields(cls))
