"""Visit metrics: shoppers in the right visit, no tailgater billed, every visit ended.

A truth person's track is the predicted track matched to them in most truth frames
(per frame, an optimal assignment within the tracking distance, as CLEAR MOT matches);
the track's visit is the last ``Visit`` message listing it. A tailgater is billed when
that visit's receipt was issued without review (or never came); one whose visit's
receipt was held for staff is flagged, not billed.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping

from ..topics import TRACKS_TOPIC, VISITS_TOPIC
from .data import GroundTruth, Predictions
from .metrics import EvaluationConfig, Metric, missing, no_messages, NS
from .tracking import frame_matches


def dominant_tracks(truth: GroundTruth, predictions: Predictions,
                    config: EvaluationConfig) -> dict[int, tuple[int, int]]:
    """Return person id -> (track id matched in most frames, frames it was matched)."""
    tolerance_ns = int(config.frame_time_tolerance_s * NS) or max(
        truth.frame_period_ns // 2, 1)
    counts: dict[int, Counter[int]] = {}
    for match in frame_matches(truth.frames, predictions.track_frames,
                               config.tracking_distance_m, tolerance_ns):
        for person, track in match.pairs:
            counts.setdefault(person, Counter())[track] += 1
    return {person: counter.most_common(1)[0] for person, counter in counts.items()}


def track_accounts(predictions: Predictions) -> Mapping[int, str]:
    """Return track id -> account of the last visit message that lists the track."""
    return {track_id: account for track_id, (_, account) in track_visits(predictions).items()}


def track_visits(predictions: Predictions) -> Mapping[int, tuple[str, str]]:
    """Return track id -> (visit id, account) of the last visit message listing the track."""
    visits: dict[int, tuple[str, str]] = {}
    for visit in sorted(predictions.visits, key=lambda v: v.received_ns):
        for track_id in visit.track_ids:
            visits[track_id] = (visit.visit_id, visit.account_id)
    return visits


def visit_metrics(truth: GroundTruth, predictions: Predictions,
                  config: EvaluationConfig) -> list[Metric]:
    """Shoppers linked to the right visit, tailgaters billed, visits left open."""
    names = (('visit_link_accuracy', 'ratio'), ('tailgaters_billed', 'count'),
             ('tailgaters_held_for_review', 'count'), ('visits_left_open', 'count'))
    if not predictions.count(VISITS_TOPIC):
        return [no_messages(n, VISITS_TOPIC, u) for n, u in names]
    started = {v.visit_id for v in predictions.visits if v.started}
    ended = {v.visit_id for v in predictions.visits if not v.started}
    left_open = Metric('visits_left_open', float(len(started - ended)), 'count',
                       detail={'visits': len(started)})
    if not predictions.count(TRACKS_TOPIC) or not truth.frames:
        reason = 'no frames in truth.json' if truth.frames == () else 'no tracks'
        return [missing(n, reason, u) for n, u in names[:3]] + [left_open]
    dominant = dominant_tracks(truth, predictions, config)
    accounts = track_accounts(predictions)
    shoppers = [p for p in truth.people if p.role == 'shopper' and p.account_id]
    tailgaters = [p for p in truth.people if p.role == 'shopper' and not p.account_id]
    outcome: Counter[str] = Counter()
    wrong: list[int] = []
    for person in shoppers:
        if person.person_id not in dominant:
            outcome['untracked'] += 1
            continue
        account = accounts.get(dominant[person.person_id][0], '')
        if account == person.account_id:
            outcome['right'] += 1
        else:
            outcome['unlinked' if not account else 'wrong'] += 1
            wrong.append(person.person_id)
    visits = track_visits(predictions)
    held = {r.visit_id for r in predictions.receipts if not r.issued}
    linked = [p.person_id for p in tailgaters
              if p.person_id in dominant and dominant[p.person_id][0] in visits]
    billed = [p for p in linked if visits[dominant[p][0]][0] not in held]
    flagged = [p for p in linked if visits[dominant[p][0]][0] in held]
    link = (Metric('visit_link_accuracy', outcome['right'] / len(shoppers), 'ratio',
                   detail={**outcome, 'shoppers': len(shoppers), 'not_right': wrong})
            if shoppers else missing('visit_link_accuracy', 'no shopper with an account',
                                     'ratio'))
    unlinked = [p.person_id for p in tailgaters
                if p.person_id in dominant and dominant[p.person_id][0] not in visits]
    return [link, Metric('tailgaters_billed', float(len(billed)), 'count',
                         detail={'tailgaters': len(tailgaters), 'billed': billed,
                                 'linked_to_no_visit': unlinked}),
            Metric('tailgaters_held_for_review', float(len(flagged)), 'count',
                   detail={'tailgaters': len(tailgaters), 'held': flagged}),
            left_open]
