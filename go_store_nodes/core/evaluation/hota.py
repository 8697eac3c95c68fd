"""HOTA, DetA and AssA of tracks against truth, for any similarity between the two.

Luiten et al., "HOTA: A Higher Order Metric for Evaluating Multi-Object Tracking",
IJCV 2021 (arXiv 2009.07736, 2020).

Per frame the caller gives the truth ids, the track ids and their similarity in [0, 1]
(IoU for boxes; ``1 - distance / threshold`` for floor points). As in the paper and its
reference code (TrackEval):

1. A global alignment score per (truth id, track id) pair: the sum over frames of the
   pair's similarity normalised like an IoU within the frame, divided by the pair's
   frame counts minus that sum (how often the two are "the same object").
2. Per frame, truth and tracks are matched by the Hungarian algorithm maximising
   alignment score x similarity; a pair is a true positive at threshold ``alpha``
   when its similarity is at least ``alpha``.
3. At each alpha (0.05, 0.10, ..., 0.95): DetA = TP / (TP + FN + FP); AssA = the mean over
   true positives of |TPA| / (|TPA| + |FNA| + |FPA|) of their (truth id, track id)
   pair; HOTA = sqrt(DetA x AssA). Reported values are means over the alphas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

ALPHAS = np.arange(0.05, 0.99, 0.05)  # 19 localisation thresholds, as in the paper
EPS = np.finfo(float).eps


@dataclass(frozen=True)
class HotaFrame:
    """One frame: truth ids (n), track ids (m) and their similarity (n x m, in [0, 1])."""

    truth_ids: Sequence[int]
    track_ids: Sequence[int]
    similarity: NDArray


@dataclass(frozen=True)
class HotaResult:
    """HOTA and its parts, averaged over the alphas; ``per_alpha`` has the 19 HOTA values."""

    hota: float
    deta: float
    assa: float
    loca: float
    true_positives: float
    per_alpha: tuple[float, ...]


def _dense_ids(ids: Sequence[int], index: dict[int, int]) -> NDArray:
    return np.array([index.setdefault(int(i), len(index)) for i in ids], dtype=np.int64)


def hota(frames: Sequence[HotaFrame]) -> HotaResult:
    """Compute HOTA over a sequence; raise ValueError on a malformed frame."""
    truth_index: dict[int, int] = {}
    track_index: dict[int, int] = {}
    dense = []
    for number, frame in enumerate(frames):
        sim = np.asarray(frame.similarity, dtype=float).reshape(
            len(frame.truth_ids), len(frame.track_ids))
        if sim.size and (not np.all(np.isfinite(sim)) or sim.min() < 0.0 or sim.max() > 1.0):
            raise ValueError(f'frame {number}: similarity must be finite and in [0, 1]')
        if len(set(frame.truth_ids)) != len(frame.truth_ids) or \
                len(set(frame.track_ids)) != len(frame.track_ids):
            raise ValueError(f'frame {number}: an id appears twice')
        dense.append((_dense_ids(frame.truth_ids, truth_index),
                      _dense_ids(frame.track_ids, track_index), sim))
    n_truth, n_track = len(truth_index), len(track_index)
    truth_count = np.zeros(n_truth)
    track_count = np.zeros(n_track)
    potential = np.zeros((n_truth, n_track))
    for truth_ids, track_ids, sim in dense:
        truth_count[truth_ids] += 1
        track_count[track_ids] += 1
        if not sim.size:
            continue
        denominator = sim.sum(axis=0)[None, :] + sim.sum(axis=1)[:, None] - sim
        normalised = np.zeros_like(sim)
        mask = denominator > EPS
        normalised[mask] = sim[mask] / denominator[mask]
        potential[truth_ids[:, None], track_ids[None, :]] += normalised
    alignment = potential / np.maximum(
        truth_count[:, None] + track_count[None, :] - potential, EPS)

    tp = np.zeros(len(ALPHAS))
    fn = np.zeros(len(ALPHAS))
    fp = np.zeros(len(ALPHAS))
    loc_sum = np.zeros(len(ALPHAS))
    matches = np.zeros((len(ALPHAS), n_truth, n_track))
    for truth_ids, track_ids, sim in dense:
        if not len(truth_ids) or not len(track_ids):
            fn += len(truth_ids)
            fp += len(track_ids)
            continue
        score = alignment[truth_ids[:, None], track_ids[None, :]] * sim
        rows, cols = linear_sum_assignment(-score)
        matched_sim = sim[rows, cols]
        for a, alpha in enumerate(ALPHAS):
            ok = matched_sim >= alpha - EPS
            count = int(ok.sum())
            tp[a] += count
            fn[a] += len(truth_ids) - count
            fp[a] += len(track_ids) - count
            loc_sum[a] += matched_sim[ok].sum()
            matches[a, truth_ids[rows[ok]], track_ids[cols[ok]]] += 1

    deta = tp / np.maximum(1.0, tp + fn + fp)
    assa = np.zeros(len(ALPHAS))
    for a in range(len(ALPHAS)):
        m = matches[a]
        pair_score = m / np.maximum(1.0, truth_count[:, None] + track_count[None, :] - m)
        assa[a] = float((m * pair_score).sum()) / max(1.0, tp[a])
    loca = np.maximum(1e-10, loc_sum) / np.maximum(1e-10, tp)
    per_alpha = np.sqrt(deta * assa)
    return HotaResult(hota=float(per_alpha.mean()), deta=float(deta.mean()),
                      assa=float(assa.mean()), loca=float(loca.mean()),
                      true_positives=float(tp.mean()),
                      per_alpha=tuple(float(v) for v in per_alpha))


def box_iou(truth_xywh: NDArray, track_xywh: NDArray) -> NDArray:
    """IoU (n x m) of boxes given as (x, y, w, h) rows in the same units."""
    a = np.asarray(truth_xywh, dtype=float).reshape(-1, 4)
    b = np.asarray(track_xywh, dtype=float).reshape(-1, 4)
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.clip(np.minimum(ax1[:, None], bx1[None, :])
                - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None)
    h = np.clip(np.minimum(ay1[:, None], by1[None, :])
                - np.maximum(a[:, None, 1], b[None, :, 1]), 0.0, None)
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0.0, inter / np.where(union > 0.0, union, 1.0), 0.0)
