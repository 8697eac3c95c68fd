"""Person boxes per video frame -> MOT rows, through the tracker's ``image_box`` mode.

The same linker core as the store (``core/tracker``: Kalman + Hungarian, tangles,
re-identification) with a measurement of (centre x, centre y, width, height) in pixels
and no stature. ``video_tracker_config`` scales its pixel values with the typical person
height so one set of defaults suits near and far cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from ..tracker import Detection, Tracker, TrackerConfig, Zone
from .mot import MotRow, tracks_to_rows

NS_PER_SECOND = 1_000_000_000
# Colour signature of a box: 8 hue x 2 saturation bins for coloured pixels, 4 grey bins
# for the rest (the layout of the store's person locator, so one appearance cost fits
# both). OpenCV HSV ranges: H 0..179, S and V 0..255.
HUE_BINS = 8
GREY_BINS = 4
SIGNATURE_LENGTH = 2 * HUE_BINS + GREY_BINS
# Grey road, walls and shadows reach a saturation of 40-60 in ordinary video: below this
# a pixel counts as grey, so clothing colour is not drowned by a bluish background.
MIN_SATURATION = 70
MIN_VALUE = 30


@dataclass(frozen=True)
class BoxDetection:
    """One detected person: box corners (px), detector score in [0, 1], signature."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    score: float = 1.0
    signature: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        """Validate the box and the score."""
        if not all(math.isfinite(v) for v in (self.x_min, self.y_min, self.x_max, self.y_max)):
            raise ValueError(f'box corners must be finite, got {self}')
        if self.x_max <= self.x_min or self.y_max <= self.y_min:
            raise ValueError(f'box must have a positive size, got {self}')
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f'score must be in [0, 1], got {self.score}')


def hsv_signature(hsv_pixels: NDArray) -> tuple[float, ...]:
    """Unit-norm colour signature of pixels given as an (n, 3) OpenCV HSV uint8 array.

    The square roots of the bin shares (so cosine similarity is the Bhattacharyya
    coefficient); () when there are no pixels.
    """
    pixels = np.asarray(hsv_pixels).reshape(-1, 3).astype(np.int32)
    if pixels.shape[0] == 0:
        return ()
    hue, saturation, value = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    coloured = (saturation >= MIN_SATURATION) & (value >= MIN_VALUE)
    counts = np.zeros(SIGNATURE_LENGTH)
    hue_bin = np.minimum(hue[coloured] * HUE_BINS // 180, HUE_BINS - 1)
    sat_bin = (saturation[coloured] >= 128).astype(np.int32)
    np.add.at(counts, hue_bin * 2 + sat_bin, 1.0)
    grey_bin = np.minimum(value[~coloured] * GREY_BINS // 256, GREY_BINS - 1)
    np.add.at(counts, 2 * HUE_BINS + grey_bin, 1.0)
    shares = np.sqrt(counts / counts.sum())
    return tuple(float(v) for v in shares / np.linalg.norm(shares))


def video_tracker_config(person_height_px: float = 120.0, **overrides: float
                         ) -> TrackerConfig:
    """Tracker settings for pedestrians in video whose boxes are about this tall (px).

    Distances and noise scale with the person height: a walker covers about 0.8 of
    their height per second, HOG and YOLO boxes jitter by about 5 % of it. No entry
    zones: in a street view people appear anywhere (from behind others, doors, posts),
    so a detection stream becomes a track after 3 hits in 0.3 s (``confidence_anywhere``);
    a track unseen for 2 s ends (a person hidden longer comes back as a new track), one
    last seen at an image edge after 0.5 s (``VideoLinker``'s exit zones). ``miss_cost``
    0: as many gated pairs as possible, as before the store's tracker got a miss cost
    (measured on the store's tiers, not on video).
    """
    if not person_height_px > 0.0:
        raise ValueError(f'person_height_px must be > 0, got {person_height_px}')
    s = person_height_px
    values: dict[str, str | float | int] = dict(
        mode='image_box', measurement_std=0.06 * s, acceleration_psd=(0.6 * s) ** 2,
        initial_velocity_std=0.5 * s, coast_velocity_tau_s=1.0, appearance_std=0.12,
        appearance_gate=0.6, appearance_length=SIGNATURE_LENGTH, birth_min_hits=3,
        birth_anywhere_after_s=0.2, candidate_max_unseen_s=0.35, max_lost_s=2.0,
        exit_lost_s=0.5, long_miss_s=1.0, contact_m=0.2 * s, separate_m=0.35 * s,
        separation_confirm_s=0.3, share_std=0.25 * s, reid_velocity_std=0.3 * s,
        reid_velocity_memory_s=1.0, first_track_id=1, miss_cost=0.0)
    values.update(overrides)
    return TrackerConfig(**values)  # type: ignore[arg-type]


def border_zones(width: float, height: float, band_px: float) -> tuple[Zone, ...]:
    """Exit zones along the four image edges, ``band_px`` deep (box centres, px).

    A track last seen there and unseen for ``exit_lost_s`` has left the view: it ends
    instead of coasting for ``max_lost_s`` and taking over the next person to come in
    at the same edge.
    """
    if not (width > 0.0 and height > 0.0 and band_px > 0.0):
        raise ValueError(f'image size and band must be > 0, got {width} x {height}, '
                         f'{band_px}')
    band_x, band_y = min(band_px, width / 2.0), min(band_px, height / 2.0)
    return (Zone('left', 'exit', (0.0, 0.0), (band_x, height)),
            Zone('right', 'exit', (width - band_x, 0.0), (width, height)),
            Zone('top', 'exit', (0.0, 0.0), (width, band_y)),
            Zone('bottom', 'exit', (0.0, height - band_y), (width, height)))


class VideoLinker:
    """Links per-frame person boxes into tracks; one call per video frame, in order."""

    def __init__(self, fps: float, config: Optional[TrackerConfig] = None,
                 width: Optional[float] = None, height: Optional[float] = None,
                 border_px: Optional[float] = None) -> None:
        """Keep the frame rate (frames/s) and the image size (px, to clip boxes).

        With the image size, bands of ``border_px`` (default: the tracker's
        ``separate_m``, about a third of a person's height) along the edges are exit
        zones (``border_zones``).
        """
        if not (math.isfinite(fps) and fps > 0.0):
            raise ValueError(f'fps must be > 0, got {fps}')
        self.config = config or video_tracker_config()
        if self.config.mode != 'image_box':
            raise ValueError(f'the video linker needs mode image_box, got {self.config.mode}')
        self.fps = fps
        self.width, self.height = width, height
        zones: tuple[Zone, ...] = ()
        if width is not None and height is not None:
            zones = border_zones(width, height, border_px or self.config.separate_m)
        self.tracker = Tracker(self.config, zones)

    def stamp_ns(self, frame_index: int) -> int:
        """Time of a 0-based frame index (ns from the first frame)."""
        return round(frame_index * NS_PER_SECOND / self.fps)

    def update(self, frame_index: int, detections: Sequence[BoxDetection]) -> list[MotRow]:
        """Fuse the detections of 0-based frame ``frame_index``; return its MOT rows.

        Rows hold the tracks matched to a detection in this frame (frame number
        ``frame_index + 1``), with the tracker's filtered box.
        """
        tracks = self.tracker.update(
            [Detection.from_box(d.x_min, d.y_min, d.x_max, d.y_max, confidence=d.score,
                                appearance=d.signature) for d in detections],
            self.stamp_ns(frame_index))
        return tracks_to_rows(frame_index + 1, tracks, 0.0, self.width, self.height)


def non_max_suppression(detections: Sequence[BoxDetection], max_overlap: float = 0.5
                        ) -> list[BoxDetection]:
    """Keep the best-scored boxes; drop a box overlapping a kept one by ``max_overlap``.

    Overlap is intersection over the smaller box, so a box nested in a better one (a
    detector firing on a person and on their legs) goes too, not only near duplicates.
    """
    kept: list[BoxDetection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        area = (det.x_max - det.x_min) * (det.y_max - det.y_min)
        for other in kept:
            w = min(det.x_max, other.x_max) - max(det.x_min, other.x_min)
            h = min(det.y_max, other.y_max) - max(det.y_min, other.y_min)
            if w > 0.0 and h > 0.0:
                smaller = min(area, (other.x_max - other.x_min) * (other.y_max - other.y_min))
                if w * h / smaller > max_overlap:
                    break
        else:
            kept.append(det)
    return kept
