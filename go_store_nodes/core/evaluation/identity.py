"""Identity metrics beyond CLEAR MOT: roles (associate or shopper) and tangled episodes.

Both rest on the per-frame assignment of true people to tracks (``assign_tracks``: an
optimal assignment within ``tracking_distance_m``, truth frames matched to track frames
in time as for MOTA).

Role: a true person's track is the track assigned to them in most frames; its role is
the role that track had in most of those frames. The person is classified right when
that role is theirs ('associate' or 'shopper'; 'unknown' is never right). People no
track was ever assigned to are counted apart, not scored.

Tangled episode (docs/simulation.md, "Evaluation"): two true people closer than
``touch_distance_m`` in consecutive truth frames where both are in the store, for at
least ``tangle_min_s`` (the time from the first such frame to the last plus one frame
period); two such runs of the same pair less than ``tangle_merge_gap_s`` apart are one
episode. Each person's track before is the track assigned to them in most truth frames
of the ``tangle_window_s`` before the episode's first frame, their track after the same
over the window after its last frame. An episode is scored when both people are in the
store in both windows; it ends with both right when the two tracks before are two
different tracks and each person has the same track after as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .data import GroundTruth, PredictedTrackFrame, TruthFrame
from .metrics import EvaluationConfig, frame_tolerance_ns, Metric, missing, NS
from .tracking import assign_tracks, match_frames

ROLES = ('associate', 'shopper')


@dataclass(frozen=True)
class FrameAssignment:
    """One truth frame: person id -> (track id, that track's role or '')."""

    stamp_ns: int
    present: frozenset[int]
    tracks: dict[int, tuple[int, str]]


def frame_assignments(truth: GroundTruth, frames: Sequence[PredictedTrackFrame],
                      config: EvaluationConfig) -> list[FrameAssignment]:
    """Return the assignment of people to tracks in every truth frame."""
    result = []
    for frame, hypothesis in zip(truth.frames, match_frames(
            truth.frames, frames, frame_tolerance_ns(truth, config)), strict=True):
        pairs = assign_tracks(frame, hypothesis, config.tracking_distance_m)
        result.append(FrameAssignment(
            frame.stamp_ns, frozenset(p[0] for p in frame.positions),
            {person: (track, hypothesis.role_of(track) if hypothesis else '')
             for person, track in pairs.items()}))
    return result


def role_metrics(truth: GroundTruth, frames: Sequence[PredictedTrackFrame],
                 config: EvaluationConfig) -> list[Metric]:
    """Share of matched true people whose track has their role, overall and per role."""
    names = ('associate_classification_accuracy', 'associate_classification_associates',
             'associate_classification_shoppers')
    if not truth.frames:
        return [missing(n, 'no frames in truth.json', 'ratio') for n in names]
    if not any(f.roles for f in frames):
        return [missing(n, 'tracks carry no role', 'ratio') for n in names]
    matched: dict[int, Counter[int]] = {}
    roles: dict[tuple[int, int], Counter[str]] = {}
    for assignment in frame_assignments(truth, frames, config):
        for person, (track, role) in assignment.tracks.items():
            matched.setdefault(person, Counter())[track] += 1
            roles.setdefault((person, track), Counter())[role or 'unknown'] += 1
    counts = {role: {'matched': 0, 'right': 0, 'unmatched': 0} for role in ROLES}
    wrong = []
    for truth_person in truth.people:
        person, role = truth_person.person_id, truth_person.role
        counts.setdefault(role, {'matched': 0, 'right': 0, 'unmatched': 0})
        if person not in matched:
            counts[role]['unmatched'] += 1
            continue
        track = matched[person].most_common(1)[0][0]
        given = roles[(person, track)].most_common(1)[0][0]
        counts[role]['matched'] += 1
        if given == role:
            counts[role]['right'] += 1
        else:
            wrong.append({'person': person, 'role': role, 'track': track,
                          'track_role': given})
    total = sum(c['matched'] for c in counts.values())
    right = sum(c['right'] for c in counts.values())

    def share(role: str, name: str) -> Metric:
        c = counts[role]
        if not c['matched']:
            return missing(name, f'no {role} matched to a track', 'ratio')
        return Metric(name, c['right'] / c['matched'], 'ratio', detail=c)

    overall = (Metric(names[0], right / total, 'ratio',
                      detail={'matched': total, 'right': right, **counts, 'wrong': wrong})
               if total else missing(names[0], 'no true person matched to a track', 'ratio'))
    return [overall, share('associate', names[1]), share('shopper', names[2])]


@dataclass(frozen=True)
class TangledEpisode:
    """Two true people within the touch distance from ``start_ns`` to ``end_ns``."""

    person_a: int
    person_b: int
    start_ns: int
    end_ns: int


def tangled_episodes(truth_frames: Sequence[TruthFrame], frame_period_ns: int,
                     config: EvaluationConfig) -> list[TangledEpisode]:
    """Every tangled episode of the truth (module docstring), sorted by start."""
    runs: dict[tuple[int, int], list[list[int]]] = {}
    previous: set[tuple[int, int]] = set()
    for frame in sorted(truth_frames, key=lambda f: f.stamp_ns):
        ids = [p[0] for p in frame.positions]
        xy = np.array([[p[1], p[2]] for p in frame.positions], dtype=float).reshape(-1, 2)
        close: set[tuple[int, int]] = set()
        if len(ids) > 1:
            distance = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
            for i, j in zip(*np.nonzero(np.triu(distance < config.touch_distance_m, 1)),
                            strict=True):
                close.add((min(ids[i], ids[j]), max(ids[i], ids[j])))
        for pair in close:
            if pair in previous:
                runs[pair][-1][1] = frame.stamp_ns
            else:
                runs.setdefault(pair, []).append([frame.stamp_ns, frame.stamp_ns])
        previous = close
    episodes = []
    merge_ns = int(config.tangle_merge_gap_s * NS)
    for (a, b), spans in runs.items():
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start - merged[-1][1] < merge_ns:
                merged[-1][1] = end
            else:
                merged.append([start, end])
        episodes += [TangledEpisode(a, b, start, end) for start, end in merged
                     if end - start + frame_period_ns >= config.tangle_min_s * NS]
    return sorted(episodes, key=lambda e: (e.start_ns, e.person_a, e.person_b))


def _window_track(assignments: Sequence[FrameAssignment], person: int, start_ns: int,
                  end_ns: int) -> tuple[bool, int | None]:
    """(person in the store in the window, track assigned to them in most of its frames)."""
    present = False
    tracks: Counter[int] = Counter()
    for assignment in assignments:
        if start_ns <= assignment.stamp_ns <= end_ns and person in assignment.present:
            present = True
            if person in assignment.tracks:
                tracks[assignment.tracks[person][0]] += 1
    return present, (tracks.most_common(1)[0][0] if tracks else None)


def episode_outcome(assignments: Sequence[FrameAssignment], episode: TangledEpisode,
                    window_ns: int) -> dict[str, Any]:
    """How the tracks followed the two people of one episode."""
    before, after = [], []
    for person in (episode.person_a, episode.person_b):
        before.append(_window_track(assignments, person, episode.start_ns - window_ns,
                                    episode.start_ns - 1))
        after.append(_window_track(assignments, person, episode.end_ns + 1,
                                   episode.end_ns + window_ns))
    tracks_before = [t for _, t in before]
    tracks_after = [t for _, t in after]
    if not all(p for p, _ in before + after):
        outcome = 'not_scored'           # one of them entered or left around the episode
    elif None in tracks_before:
        outcome = 'untracked_before'
    elif tracks_before[0] == tracks_before[1]:
        outcome = 'one_track_for_both_before'
    elif tracks_after == tracks_before:
        outcome = 'both_right'
    elif tracks_after == tracks_before[::-1]:
        outcome = 'swapped'
    else:
        outcome = 'changed'
    return {'people': [episode.person_a, episode.person_b],
            'start_s': episode.start_ns / NS, 'duration_s': (episode.end_ns
                                                             - episode.start_ns) / NS,
            'tracks_before': tracks_before, 'tracks_after': tracks_after,
            'outcome': outcome}


def tangle_metrics(prefix: str, truth: GroundTruth, frames: Sequence[PredictedTrackFrame],
                   config: EvaluationConfig) -> list[Metric]:
    """``<prefix>tangled_episodes`` (scored) and ``<prefix>tangled_episodes_both_right``."""
    count_name, right_name = f'{prefix}tangled_episodes', f'{prefix}tangled_episodes_both_right'
    if not truth.frames:
        return [missing(count_name, 'no frames in truth.json', 'count'),
                missing(right_name, 'no frames in truth.json', 'ratio')]
    episodes = tangled_episodes(truth.frames, truth.frame_period_ns, config)
    assignments = frame_assignments(truth, frames, config)
    outcomes = [episode_outcome(assignments, e, int(config.tangle_window_s * NS))
                for e in episodes]
    scored = [o for o in outcomes if o['outcome'] != 'not_scored']
    tally = Counter(o['outcome'] for o in outcomes)
    detail = {'episodes': len(episodes), 'scored': len(scored), **tally,
              'touch_distance_m': config.touch_distance_m,
              'min_s': config.tangle_min_s, 'window_s': config.tangle_window_s,
              'list': outcomes}
    count = Metric(count_name, float(len(scored)), 'count', detail=detail)
    if not scored:
        return [count, missing(right_name, 'no scored tangled episode in truth', 'ratio')]
    return [count, Metric(right_name, tally['both_right'] / len(scored), 'ratio',
                          detail={k: v for k, v in detail.items() if k != 'list'})]
