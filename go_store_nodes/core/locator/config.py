"""Settings of the person locator: one frozen, validated dataclass.

Each field carries its meaning (with unit) and its valid range as dataclass metadata, so
the node declares its ROS parameters from the same table (``LocatorConfig.fields``) and
the description and range are written once. Values for a store are in
``config/go_store.yaml`` under ``person_locator``; the defaults here are the same
values, for the core's own users (tests, benchmark).
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
    """Name, meaning and range of one locator setting."""

    name: str
    description: str
    minimum: float
    maximum: float


@dataclass(frozen=True)
class LocatorConfig:
    """Every knob of the locator, in SI units (m, s, m^2)."""

    # Depth noise model (D435: RMS depth error = Z^2 * subpixel / (f_px * baseline)).
    stereo_baseline_m: float = _setting(
        0.050, 0.005, 1.0, 'm, stereo baseline of the depth cameras (D435: 0.050)')
    depth_subpixel_rms: float = _setting(
        0.08, 0.01, 1.0, 'px, RMS disparity error of the depth cameras (D435: 0.05-0.1)')
    min_depth_m: float = _setting(
        0.3, 0.0, 10.0, 'm, depth below this is treated as no data')
    max_depth_m: float = _setting(
        8.0, 0.5, 65.0, 'm, depth beyond this is ignored (too noisy to place a person)')
    min_valid_fraction: float = _setting(
        0.05, 0.0, 1.0, 'frames with a smaller share of valid depth pixels are dropped')
    # Background and foreground.
    foreground_sigmas: float = _setting(
        3.0, 0.5, 20.0, 'foreground = nearer than the background by this many RMS depth '
        'errors at that depth ...')
    foreground_min_band_m: float = _setting(
        0.05, 0.0, 2.0, 'm, ... plus this (also the band within which depth counts as '
        'background)')
    background_rate: float = _setting(
        0.05, 0.001, 1.0, 'share of the difference the background moves per frame towards '
        'depth within the band')
    reveal_after_s: float = _setting(
        0.3, 0.0, 60.0, 's, depth farther than the background for this long replaces it '
        '(what stood there has left)')
    absorb_after_s: float = _setting(
        20.0, 0.5, 3600.0, 's, nearer depth that stays put this long joins the background '
        '(stock, a basket put down); pixels of located people never do')
    # Floor grid and blobs.
    cell_m: float = _setting(
        0.05, 0.01, 0.5, 'm, cell size of the floor height map')
    min_point_height_m: float = _setting(
        0.10, 0.0, 1.0, 'm, foreground points lower than this above the floor are dropped')
    max_sideways_error_m: float = _setting(
        0.05, 0.005, 10.0, 'm, a depth error moves a point along its ray, so a far, tilted '
        'view blurs a head sideways. A foreground point whose RMS sideways error exceeds '
        'this and sideways_error_ratio times the smallest error any camera of the frame set '
        'has at that floor cell (at standing_height_m) is dropped: a sharper view covers it')
    sideways_error_ratio: float = _setting(
        1.5, 1.0, 100.0, 'see max_sideways_error_m')
    min_blob_height_m: float = _setting(
        0.30, 0.05, 2.0, 'm, height map cells above this form blobs')
    head_separation_m: float = _setting(
        0.25, 0.1, 1.5, 'm, least distance between two heads (blob split at height maxima '
        'farther apart than this)')
    head_depth_m: float = _setting(
        0.12, 0.02, 0.5, 'm, cells within this below the top are the head region '
        '(position, covariance)')
    shoulder_reach_m: float = _setting(
        0.30, 0.05, 2.0, 'm, a part a head depth or more below a touching part and nearer '
        'its head than 1.6 head separations is a shoulder or arm of that person; one at '
        'least this far from that head with at least second_head_area_m2 is a second, '
        'shorter person beside them (the top of a shoulder lies within about 0.25 m of its '
        'head)')
    second_head_area_m2: float = _setting(
        0.13, 0.0, 2.0, 'm^2, see shoulder_reach_m (a shoulder or elbow part is smaller)')
    min_person_height_m: float = _setting(
        0.90, 0.3, 2.5, 'm, a blob whose top is lower is never a person (basket, crouching '
        'child)')
    standing_height_m: float = _setting(
        1.30, 0.3, 2.5, 'm, a blob whose top is at least this high is a person when its '
        'area is at least min_person_area_m2 ...')
    min_person_area_m2: float = _setting(
        0.08, 0.0, 2.0, 'm^2, ... (see standing_height_m)')
    bending_min_area_m2: float = _setting(
        0.15, 0.0, 4.0, 'm^2, a blob with its top between min_person_height_m and '
        'standing_height_m is a person (bending, crouching adult) only with this area')
    max_person_area_m2: float = _setting(
        1.5, 0.1, 10.0, 'm^2, a larger single-head blob is not a person')
    max_aspect_ratio: float = _setting(
        4.0, 1.0, 50.0, 'a blob longer than this times its width is not a person')
    position_sigma_m: float = _setting(
        0.03, 0.0, 1.0, 'm, RMS position error added to every detection (calibration, '
        'body sway)')
    # Appearance.
    appearance_depth_m: float = _setting(
        0.45, 0.05, 1.5, 'm, head-and-shoulder region for the colour signature: this far '
        'below the top ...')
    appearance_radius_m: float = _setting(
        0.35, 0.05, 1.5, 'm, ... and within this of the head')
    # Time.
    sync_tolerance_s: float = _setting(
        0.065, 0.0, 1.0, 's, frames of different cameras within this of the earliest one '
        'form one frame set')
    max_wait_s: float = _setting(
        0.1, 0.0, 5.0, 's, a frame set waits at most this longer for a camera that has not '
        'delivered')
    max_future_s: float = _setting(
        0.5, 0.0, 60.0, 's, a frame stamped this far after its receive time is dropped')
    outage_after_s: float = _setting(
        0.5, 0.05, 60.0, 's, a camera without a frame for this long is in outage')

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
        if self.min_depth_m >= self.max_depth_m:
            raise ValueError(f'min_depth_m ({self.min_depth_m}) must be below max_depth_m '
                             f'({self.max_depth_m})')
        if not self.min_blob_height_m <= self.min_person_height_m <= self.standing_height_m:
            raise ValueError('need min_blob_height_m <= min_person_height_m <= '
                             f'standing_height_m, got {self.min_blob_height_m}, '
                             f'{self.min_person_height_m}, {self.standing_height_m}')
        if self.min_person_area_m2 > self.max_person_area_m2:
            raise ValueError('min_person_area_m2 must not exceed max_person_area_m2')
        if self.head_separation_m < 2.0 * self.cell_m:
            raise ValueError(f'head_separation_m ({self.head_separation_m}) must be at least '
                             f'two cells ({2.0 * self.cell_m} m)')

    @classmethod
    def fields(cls) -> tuple[SettingInfo, ...]:
        """Every setting with its description and range, in declaration order."""
        return tuple(SettingInfo(f.name, f.metadata['description'], f.metadata['minimum'],
                                 f.metadata['maximum']) for f in fields(cls))

    def ns(self, name: str) -> int:
        """Return a duration setting (``*_s``) in integer nanoseconds."""
        return int(round(getattr(self, name) * 1e9))
