"""Settings of the store view (markers for rviz2 and Foxglove): one frozen, validated dataclass.

Each field carries its meaning (with unit), its valid range and whether it is a whole
number as dataclass metadata, so the node declares its ROS parameters from the same table
(``VisualizationConfig.fields()``). Values for a store are in ``config/go_store.yaml``
under ``visualization``; the defaults here are the same values, for the core's own users
(tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import math
from typing import Any


def _setting(default: float, minimum: float, maximum: float, description: str) -> Any:
    return field(default=default, metadata={
        'minimum': minimum, 'maximum': maximum, 'description': description})


@dataclass(frozen=True)
class VisualizationSetting:
    """Name, meaning, range and kind (whole number or not) of one setting."""

    name: str
    description: str
    minimum: float
    maximum: float
    integer: bool


@dataclass(frozen=True)
class VisualizationConfig:
    """Every knob of the store view, in SI units (s, Hz)."""

    max_rate_hz: float = _setting(
        15.0, 0.1, 100.0, 'Hz, marker arrays are published at most this often')
    idle_period_s: float = _setting(
        1.0, 0.1, 60.0, 's between marker arrays while nothing changes (the store for viewers '
        'that joined late)')
    track_lifetime_s: float = _setting(
        1.0, 0.1, 60.0, 's a person marker stays when no update follows (a track that ends '
        'is deleted at once)')
    trail_s: float = _setting(
        10.0, 0.0, 300.0, 's of recent positions drawn behind each person')
    trail_step_m: float = _setting(
        0.1, 0.0, 5.0, 'm a person moves before the trail takes a new position')
    trail_points: int = _setting(
        50, 2, 10_000, 'positions kept per trail at most (the oldest go first)')
    unconfirmed_below: float = _setting(
        0.45, 0.0, 1.0, 'Track.confidence below which a person is drawn as unconfirmed')
    bin_fade_s: float = _setting(
        5.0, 0.1, 600.0, 's for a bin to fade from the colour of its last shelf event '
        'back to the plain bin colour')
    label_s: float = _setting(
        4.0, 0.5, 600.0, 's a shelf-event or cart-event label is shown')
    max_labels: int = _setting(
        100, 1, 10_000, 'event labels shown at once at most (the oldest go first, counted)')
    max_linked_tracks: int = _setting(
        10_000, 1, 1_000_000, 'track -> account links kept from visits at most (the oldest '
        'go first, counted)')
    max_future_s: float = _setting(
        1.0, 0.0, 60.0, 's an input stamp may be ahead of the node clock; later ones are '
        'dropped')

    def __post_init__(self) -> None:
        """Check every value against its range (ValueError naming the setting)."""
        for info in self.fields():
            value = getattr(self, info.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f'{info.name} must be a finite number, got {value!r}')
            if info.integer and float(value) != int(value):
                raise ValueError(f'{info.name} must be a whole number, got {value!r}')
            if not info.minimum <= value <= info.maximum:
                raise ValueError(f'{info.name} must be in [{info.minimum}, {info.maximum}] '
                                 f'({info.description}), got {value}')

    @classmethod
    def fields(cls) -> tuple[VisualizationSetting, ...]:
        """Every setting with its description, range and kind, in declaration order."""
        return tuple(VisualizationSetting(
            f.name, f.metadata['description'], f.metadata['minimum'], f.metadata['maximum'],
            isinstance(f.default, int)) for f in fields(cls))

    def ns(self, name: str) -> int:
        """Return a duration setting (``*_s``) in integer nanoseconds."""
        return int(round(float(getattr(self, name)) * 1e9))
