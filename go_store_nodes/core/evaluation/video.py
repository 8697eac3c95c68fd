"""Scores of MOTChallenge box tracks against box ground truth: MOTA, IDF1, HOTA.

CLEAR MOT and IDF1 through motmetrics with the MOTChallenge box rule (a track box matches
a truth box when their IoU is at least ``min_iou``, 0.5); HOTA, DetA and AssA by
``hota.hota`` on the IoU of every pair. Truth rows with confidence 0 are "do not
consider" in MOTChallenge ground truth and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence

import numpy as np

from ..video.mot import MotRow, rows_by_frame
from .hota import box_iou, hota, HotaFrame
from .tracking import load_motmetrics


@dataclass(frozen=True)
class VideoTrackingScores:
    """Box tracking scores of one sequence (ratios; counts of boxes and frames)."""

    mota: float
    idf1: float
    id_switches: int
    false_positives: int
    misses: int
    truth_boxes: int
    hota: float
    deta: float
    assa: float
    loca: float
    frames: int


def _xywh(rows: Sequence[MotRow]) -> np.ndarray:
    return np.array([[r.x, r.y, r.w, r.h] for r in rows], dtype=float).reshape(-1, 4)


def score_mot(truth: Sequence[MotRow], tracks: Sequence[MotRow], min_iou: float = 0.5
              ) -> VideoTrackingScores | None:
    """Score track rows against truth rows; None when motmetrics is not installed."""
    if not 0.0 < min_iou <= 1.0:
        raise ValueError(f'min_iou must be in (0, 1], got {min_iou}')
    mm = load_motmetrics()
    if mm is None:
        return None
    truth_frames = rows_by_frame(r for r in truth if r.conf != 0.0)
    track_frames = rows_by_frame(tracks)
    accumulator = mm.MOTAccumulator(auto_id=False)
    hota_frames = []
    for frame in sorted(set(truth_frames) | set(track_frames)):
        gt = truth_frames.get(frame, [])
        hyp = track_frames.get(frame, [])
        iou = box_iou(_xywh(gt), _xywh(hyp))
        distances = 1.0 - iou
        distances[iou < min_iou] = np.nan
        accumulator.update([r.track_id for r in gt], [r.track_id for r in hyp], distances,
                           frameid=frame)
        hota_frames.append(HotaFrame([r.track_id for r in gt], [r.track_id for r in hyp],
                                     np.clip(iou, 0.0, 1.0)))
    summary = mm.metrics.create().compute(
        accumulator, metrics=['mota', 'idf1', 'num_switches', 'num_false_positives',
                              'num_misses', 'num_objects'], name='run')
    row = summary.loc['run']
    detailed = hota(hota_frames)

    def ratio(key: str) -> float:
        value = float(row[key])
        return value if math.isfinite(value) else math.nan

    return VideoTrackingScores(
        mota=ratio('mota'), idf1=ratio('idf1'), id_switches=int(row['num_switches']),
        false_positives=int(row['num_false_positives']), misses=int(row['num_misses']),
        truth_boxes=int(row['num_objects']), hota=detailed.hota, deta=detailed.deta,
        assa=detailed.assa, loca=detailed.loca, frames=len(hota_frames))
