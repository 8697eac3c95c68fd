"""A peer tracker for the evaluation: norfair on the detections our tracker consumed.

The replay's output bag holds ``/people/detections``, the input of go_store's tracker.
``track_detections`` runs norfair (PyPI ``norfair-enough``, the maintained fork of
tryolabs/norfair, imported as ``norfair``) over the same detection frames in stamp order
and returns track frames that the evaluation scores with exactly the code that scores
go_store's ``/people/tracks``.

Evaluation code only: it sits in ``core.evaluation``, which no node may import
(test/test_layering.py), and norfair is imported inside ``load_norfair``.

Settings, for floor points in metres (``PeerTrackerConfig``):
- one point per detection, the floor point below the head; ``distance_function`` is
  ``'euclidean'`` and ``distance_threshold_m`` the evaluation's tracking distance
  (``EvaluationConfig.tracking_distance_m``, 0.5 m): a detection further than that from
  a track's estimate is no match for it, as a track that far from a person is no match
  in the metrics either;
- ``hit_counter_max``: a track gains one hit per matched frame up to this and loses one
  per unmatched frame, and ends below 0; it is ``coast_s`` (2 s) of frames at the
  stream's median frame period, so a track seen for a while coasts 2 s unseen;
- ``initialization_delay``: ``initialization_delay_frames`` (2) matched frames before a
  track is reported (norfair's default is half of ``hit_counter_max``);
- norfair's default Kalman filter (``OptimizedKalmanFilterFactory``: R 4, Q 0.1, initial
  position variance 10, velocity variance 1). Its gains depend only on the ratios of these
  variances, so they are the same in metres as in pixels.
No appearance, stature or zones: norfair sees only the points.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib.metadata
from typing import Any, Sequence

import numpy as np

from .data import PredictedDetectionFrame, PredictedTrackFrame

PEER_DISTRIBUTIONS = ('norfair-enough', 'norfair')


@dataclass(frozen=True)
class PeerTrackerConfig:
    """norfair's settings for floor points in metres (module docstring)."""

    distance_threshold_m: float = 0.5
    coast_s: float = 2.0
    initialization_delay_frames: int = 2

    def __post_init__(self) -> None:
        """Check every setting is in range."""
        if not self.distance_threshold_m > 0.0:
            raise ValueError('distance_threshold_m must be > 0')
        if not self.coast_s > 0.0:
            raise ValueError('coast_s must be > 0')
        if self.initialization_delay_frames < 0:
            raise ValueError('initialization_delay_frames must be >= 0')

    def hit_counter_max(self, frame_period_s: float) -> int:
        """Frames of ``coast_s`` at ``frame_period_s``; above the initialization delay."""
        frames = int(round(self.coast_s / frame_period_s)) if frame_period_s > 0 else 1
        return max(frames, self.initialization_delay_frames + 1)


@dataclass(frozen=True)
class PeerRun:
    """The peer's track frames and how it was run."""

    name: str                         # distribution name and version, e.g. norfair-enough 2.4.3
    frames: tuple[PredictedTrackFrame, ...]
    settings: dict[str, Any]
    dropped_frames: int               # detection frames stamped at or before the previous one


def load_norfair() -> tuple[Any, str] | None:
    """Import norfair; return (module, 'distribution version'), or None when absent."""
    try:
        import norfair
    except ImportError:
        return None
    for distribution in PEER_DISTRIBUTIONS:
        try:
            return norfair, f'{distribution} {importlib.metadata.version(distribution)}'
        except importlib.metadata.PackageNotFoundError:
            continue
    return norfair, 'norfair'


def stamp_ordered(frames: Sequence[PredictedDetectionFrame]
                  ) -> tuple[list[PredictedDetectionFrame], int]:
    """Frames sorted by stamp; a frame stamped like the one before it is dropped.

    go_store's tracker drops a frame stamped at or before its previous one too.
    """
    ordered: list[PredictedDetectionFrame] = []
    dropped = 0
    for frame in sorted(frames, key=lambda f: f.stamp_ns):
        if ordered and frame.stamp_ns <= ordered[-1].stamp_ns:
            dropped += 1
            continue
        ordered.append(frame)
    return ordered, dropped


def median_period_s(frames: Sequence[PredictedDetectionFrame]) -> float:
    """Median time between consecutive frames, s (0 for fewer than two frames)."""
    if len(frames) < 2:
        return 0.0
    stamps = np.array([f.stamp_ns for f in frames], dtype=np.int64)
    return float(np.median(np.diff(stamps))) / 1e9


def track_detections(frames: Sequence[PredictedDetectionFrame],
                     config: PeerTrackerConfig | None = None) -> PeerRun | None:
    """Run norfair over the detection frames in stamp order (None when not installed).

    One track frame per detection frame, stamped like it, with every track norfair
    reports (initialised and not yet ended) at its estimated position.
    """
    loaded = load_norfair()
    if loaded is None:
        return None
    norfair, name = loaded
    config = config or PeerTrackerConfig()
    ordered, dropped = stamp_ordered(frames)
    period_s = median_period_s(ordered)
    settings: dict[str, Any] = {
        'distance_function': 'euclidean',
        'distance_threshold': config.distance_threshold_m,
        'hit_counter_max': config.hit_counter_max(period_s),
        'initialization_delay': config.initialization_delay_frames,
    }
    tracker = norfair.Tracker(**settings)
    tracked: list[PredictedTrackFrame] = []
    for frame in ordered:
        detections = [norfair.Detection(np.array([[x, y]], dtype=float))
                      for x, y in frame.positions if np.isfinite(x) and np.isfinite(y)]
        objects = tracker.update(detections=detections)
        tracked.append(PredictedTrackFrame(frame.stamp_ns, tuple(
            (int(o.id), float(o.estimate[0][0]), float(o.estimate[0][1]))
            for o in objects if o.id is not None)))
    settings.update(coast_s=config.coast_s, frame_period_s=period_s,
                    filter='OptimizedKalmanFilterFactory (defaults)')
    return PeerRun(name, tuple(tracked), settings, dropped)
