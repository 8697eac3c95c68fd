"""Multi-object tracking metrics on the ground plane (CLEAR MOT and IDF1) via motmetrics.

motmetrics 1.4.0 calls ``np.asfarray``, which numpy 2 removed; ``load_motmetrics``
puts a one-line equivalent back on numpy before importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .data import PredictedTrackFrame, TruthFrame


def _asfarray(a: Any, dtype: Any = np.float64) -> np.ndarray:
    if not np.issubdtype(np.dtype(dtype), np.floating):
        dtype = np.float64
    return np.asarray(a, dtype=dtype)


def load_motmetrics() -> Any:
    """Import motmetrics (None when it is not installed), numpy 2 compatible."""
    if not hasattr(np, 'asfarray'):
        setattr(np, 'asfarray', _asfarray)  # noqa: B010 (numpy has no such attribute)
    try:
        import motmetrics
    except ImportError:
        return None
    return motmetrics


@dataclass(frozen=True)
class TrackingResult:
    """CLEAR MOT and identity metrics of one run."""

    mota: float
    motp_m: float
    idf1: float
    id_switches: int
    false_positives: int
    misses: int
    ground_truth_objects: int
    frames: int
    unmatched_frames: int


def match_frames(truth: Sequence[TruthFrame], predicted: Sequence[PredictedTrackFrame],
                 tolerance_ns: int) -> list[PredictedTrackFrame | None]:
    """For each truth frame, the predicted frame nearest in time within the tolerance."""
    stamps = np.array([p.stamp_ns for p in predicted], dtype=np.int64)
    order = np.argsort(stamps, kind='stable')
    stamps = stamps[order]
    matched: list[PredictedTrackFrame | None] = []
    for frame in truth:
        if not len(stamps):
            matched.append(None)
            continue
        i = int(np.searchsorted(stamps, frame.stamp_ns))
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(stamps) and abs(int(stamps[j]) - frame.stamp_ns) <= tolerance_ns:
                if best is None or abs(int(stamps[j]) - frame.stamp_ns) < abs(
                        int(stamps[best]) - frame.stamp_ns):
                    best = j
        matched.append(None if best is None else predicted[int(order[best])])
    return matched


def assign_tracks(frame: TruthFrame, hypothesis: PredictedTrackFrame | None,
                  distance_m: float) -> dict[int, int]:
    """Person id -> track id of one frame: optimal assignment within ``distance_m``."""
    if hypothesis is None or not frame.positions or not hypothesis.tracks:
        return {}
    gt = np.array([[p[1], p[2]] for p in frame.positions], dtype=float)
    hyp = np.array([[t[1], t[2]] for t in hypothesis.tracks], dtype=float)
    distances = np.linalg.norm(gt[:, None, :] - hyp[None, :, :], axis=2)
    cost = np.where(distances <= distance_m, distances, 1e6)
    return {frame.positions[row][0]: hypothesis.tracks[col][0]
            for row, col in zip(*linear_sum_assignment(cost), strict=True)
            if cost[row, col] < 1e6}


@dataclass(frozen=True)
class FrameMatch:
    """One truth frame, the track frame matched to it in time, and who matched whom.

    ``pairs``: (person_id, track_id) of an optimal one-to-one ground-plane assignment
    within the tracking distance (empty when no track frame is near in time).
    """

    truth: TruthFrame
    tracks: PredictedTrackFrame | None
    pairs: tuple[tuple[int, int], ...]


def frame_matches(truth: Sequence[TruthFrame], predicted: Sequence[PredictedTrackFrame],
                  distance_m: float, tolerance_ns: int) -> list[FrameMatch]:
    """Match people to tracks in every truth frame, as CLEAR MOT does (Hungarian, gated)."""
    return [FrameMatch(frame, hypothesis,
                       tuple(assign_tracks(frame, hypothesis, distance_m).items()))
            for frame, hypothesis in zip(truth, match_frames(truth, predicted, tolerance_ns),
                                         strict=True)]


def tracking_metrics(truth: Sequence[TruthFrame], predicted: Sequence[PredictedTrackFrame],
                     distance_m: float = 0.5, tolerance_ns: int = 33_333_333
                     ) -> TrackingResult | None:
    """MOTA, MOTP, IDF1 and ID switches with a ``distance_m`` match threshold.

    Returns None when motmetrics is not installed. Truth frames without a predicted
    frame within ``tolerance_ns`` count as frames with no hypotheses.
    """
    mm = load_motmetrics()
    if mm is None:
        return None
    accumulator = mm.MOTAccumulator(auto_id=True)
    matched = match_frames(truth, predicted, tolerance_ns)
    for frame, hypothesis in zip(truth, matched, strict=True):
        gt_ids = [p[0] for p in frame.positions]
        gt_xy = np.array([[p[1], p[2]] for p in frame.positions], dtype=float).reshape(-1, 2)
        tracks = hypothesis.tracks if hypothesis is not None else ()
        hyp_ids = [t[0] for t in tracks]
        hyp_xy = np.array([[t[1], t[2]] for t in tracks], dtype=float).reshape(-1, 2)
        distances = np.linalg.norm(gt_xy[:, None, :] - hyp_xy[None, :, :], axis=2)
        distances[distances > distance_m] = np.nan
        accumulator.update(gt_ids, hyp_ids, distances)
    summary = mm.metrics.create().compute(
        accumulator, metrics=['mota', 'motp', 'idf1', 'num_switches', 'num_false_positives',
                              'num_misses', 'num_objects'], name='run')
    row = summary.loc['run']

    def number(key: str) -> float:
        value = float(row[key])
        return value if np.isfinite(value) else float('nan')

    return TrackingResult(
        mota=number('mota'), motp_m=number('motp'), idf1=number('idf1'),
        id_switches=int(row['num_switches']), false_positives=int(row['num_false_positives']),
        misses=int(row['num_misses']), ground_truth_objects=int(row['num_objects']),
        frames=len(truth), unmatched_frames=sum(1 for m in matched if m is None))
