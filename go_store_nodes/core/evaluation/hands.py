"""Hand-in-bin precision and recall: which hand of which tracked person was in which bin.

Truth contacts are the hand-in-bin intervals of truth.json: every event with a bin
(pick, return, restock; [start_ns, end_ns] bound the hand's contact) and every touch.
Predictions are the pose node's skeletons: for each track and bin, the frames in which
either hand was in that bin, joined into intervals while the gaps stay within the
time tolerance. Tracks are mapped to truth people frame by frame by the assignment the
tracking metrics use (each truth frame with the track array nearest in time, optimal
one-to-one ground-plane matching within ``tracking_distance_m``); an interval belongs to
the person its track was matched to most often during it. A predicted interval is right
when a truth contact of that person on that bin overlaps it within the tolerance
(0.5 s); a contact is found when some right interval overlaps it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .data import GroundTruth, PredictedSkeletonFrame, Predictions, SKELETONS_TOPIC, TRACKS_TOPIC
from .metrics import EvaluationConfig, Metric, missing, no_messages, NS, prf
from .tracking import match_frames

HAND_TIME_TOLERANCE_S = 0.5
NAMES = ('hand_in_bin_precision', 'hand_in_bin_recall')


@dataclass(frozen=True)
class Contact:
    """A truth hand-in-bin interval."""

    key: str                           # event or touch id
    person_id: int
    bin_id: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class HandInterval:
    """A predicted hand-in-bin interval of one track."""

    track_id: int
    bin_id: str
    start_ns: int
    end_ns: int


def truth_contacts(truth: GroundTruth) -> list[Contact]:
    """Every true hand-in-bin interval: events with a bin, and touches."""
    contacts = [Contact(e.event_id, e.person_id, e.bin_id, e.start_ns, e.end_ns or e.stamp_ns)
                for e in truth.events if e.bin_id and e.kind in ('pick', 'return', 'restock')]
    contacts += [Contact(t.touch_id, t.person_id, t.bin_id, t.start_ns, t.end_ns)
                 for t in truth.touches]
    return contacts


def hand_intervals(frames: tuple[PredictedSkeletonFrame, ...] | list[PredictedSkeletonFrame],
                   max_gap_ns: int) -> list[HandInterval]:
    """Join the frames where a track had a hand in a bin into intervals (gaps <= max_gap_ns)."""
    open_: dict[tuple[int, str], list[int]] = {}
    done: list[HandInterval] = []
    for frame in sorted(frames, key=lambda f: f.stamp_ns):
        for track_id, _, bin_id in frame.hands:
            key = (track_id, bin_id)
            span = open_.get(key)
            if span is not None and frame.stamp_ns - span[1] > max_gap_ns:
                done.append(HandInterval(track_id, bin_id, span[0], span[1]))
                span = None
            if span is None:
                open_[key] = [frame.stamp_ns, frame.stamp_ns]
            else:
                span[1] = frame.stamp_ns
    done += [HandInterval(t, b, s[0], s[1]) for (t, b), s in open_.items()]
    return sorted(done, key=lambda i: (i.start_ns, i.track_id, i.bin_id))


def track_people(truth: GroundTruth, predictions: Predictions, distance_m: float,
                 tolerance_ns: int) -> list[tuple[int, dict[int, int]]]:
    """Per truth frame: (stamp, {track id: person id}) of the ground-plane assignment."""
    matched = match_frames(truth.frames, predictions.track_frames, tolerance_ns)
    mapping = []
    for frame, hypothesis in zip(truth.frames, matched, strict=True):
        pairs: dict[int, int] = {}
        if hypothesis is not None and frame.positions and hypothesis.tracks:
            gt = np.array([[p[1], p[2]] for p in frame.positions])
            hyp = np.array([[t[1], t[2]] for t in hypothesis.tracks])
            distance = np.linalg.norm(gt[:, None, :] - hyp[None, :, :], axis=2)
            cost = np.where(distance <= distance_m, distance, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if distance[r, c] <= distance_m:
                    pairs[hypothesis.tracks[c][0]] = frame.positions[r][0]
        mapping.append((frame.stamp_ns, pairs))
    return mapping


def _person_of(interval: HandInterval, mapping: list[tuple[int, dict[int, int]]],
               stamps: np.ndarray, tolerance_ns: int) -> int | None:
    """Return the person the interval's track was matched to most often during it."""
    lo = int(np.searchsorted(stamps, interval.start_ns - tolerance_ns))
    hi = int(np.searchsorted(stamps, interval.end_ns + tolerance_ns, side='right'))
    votes = Counter(mapping[i][1][interval.track_id] for i in range(lo, hi)
                    if interval.track_id in mapping[i][1])
    return votes.most_common(1)[0][0] if votes else None


def hand_in_bin_metrics(truth: GroundTruth, predictions: Predictions,
                        config: EvaluationConfig) -> list[Metric]:
    """Precision and recall of (track, bin, interval) against truth contacts."""
    if not predictions.count(SKELETONS_TOPIC):
        return [no_messages(n, SKELETONS_TOPIC, 'ratio') for n in NAMES]
    if not predictions.count(TRACKS_TOPIC):
        return [no_messages(n, TRACKS_TOPIC, 'ratio') for n in NAMES]
    if not truth.frames:
        return [missing(n, 'no frames in truth.json', 'ratio') for n in NAMES]
    tolerance_ns = int(HAND_TIME_TOLERANCE_S * NS)
    frame_tolerance_ns = int(config.frame_time_tolerance_s * NS) or max(
        truth.frame_period_ns // 2, 1)
    mapping = track_people(truth, predictions, config.tracking_distance_m, frame_tolerance_ns)
    stamps = np.array([stamp for stamp, _ in mapping], dtype=np.int64)
    contacts = truth_contacts(truth)
    intervals = hand_intervals(predictions.skeleton_frames, tolerance_ns)
    people = [_person_of(i, mapping, stamps, tolerance_ns) for i in intervals]

    def overlaps(interval: HandInterval, contact: Contact) -> bool:
        return interval.start_ns <= contact.end_ns + tolerance_ns and \
            interval.end_ns >= contact.start_ns - tolerance_ns

    found: set[str] = set()
    right = 0
    false_kinds: Counter[str] = Counter()
    for interval, person in zip(intervals, people, strict=True):
        hits = [c for c in contacts if c.bin_id == interval.bin_id and c.person_id == person
                and overlaps(interval, c)]
        if hits:
            right += 1
            found.update(c.key for c in hits)
        elif person is None:
            false_kinds['track_not_a_person'] += 1
        elif any(c.bin_id == interval.bin_id and overlaps(interval, c) for c in contacts):
            false_kinds['other_persons_contact'] += 1
        elif any(c.person_id == person and overlaps(interval, c) for c in contacts):
            false_kinds['wrong_bin'] += 1
        else:
            false_kinds['no_contact'] += 1
    missed_kinds: Counter[str] = Counter()
    for contact in contacts:
        if contact.key in found:
            continue
        near = [(i, p) for i, p in zip(intervals, people, strict=True) if overlaps(i, contact)]
        if any(i.bin_id == contact.bin_id for i, _ in near):
            missed_kinds['bin_right_person_wrong'] += 1
        elif any(p == contact.person_id for _, p in near):
            missed_kinds['person_right_bin_wrong'] += 1
        else:
            missed_kinds['no_hand_in_bin'] += 1
    precision, _, _ = prf(right, len(intervals), len(contacts))
    _, recall, _ = prf(len(found), len(intervals), len(contacts))
    detail = {'predicted_intervals': len(intervals), 'right_intervals': right,
              'contacts': len(contacts), 'contacts_found': len(found),
              'false_intervals': dict(false_kinds), 'missed_contacts': dict(missed_kinds),
              'missed': sorted(c.key for c in contacts if c.key not in found),
              'time_tolerance_s': HAND_TIME_TOLERANCE_S}
    return [Metric(NAMES[0], precision, 'ratio', detail=detail),
            Metric(NAMES[1], recall, 'ratio')]
