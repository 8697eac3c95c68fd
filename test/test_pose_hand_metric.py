"""Hand-in-bin precision and recall (core/evaluation/hands.py) on hand-made runs."""

import pytest
from test_eval_metrics import _predictions, _truth, S, T0

from go_store_nodes.core.evaluation import evaluate, EvaluationConfig
from go_store_nodes.core.evaluation.data import PredictedSkeletonFrame, PredictedTrackFrame
from go_store_nodes.core.evaluation.hands import hand_in_bin_metrics, hand_intervals

TOUCH = {'touch_id': 't0001', 'stamp_ns': T0 + 40 * S, 'start_ns': T0 + 39 * S,
         'end_ns': T0 + 41 * S, 'person_id': 1, 'account_id': 'acct_a', 'sku': 'chips',
         'bin_id': 'b2', 'shelf_id': 's1', 'lifted_grams': 0.0}


def _frames():
    """Person 1 at (1, 1) and person 2 at (3, 1), every 0.1 s from 5 s to 45 s."""
    return [{'stamp_ns': T0 + k * S // 10, 'people': [
        {'person_id': 1, 'x_m': 1.0, 'y_m': 1.0, 'joints': {}},
        {'person_id': 2, 'x_m': 3.0, 'y_m': 1.0, 'joints': {}}]} for k in range(50, 451)]


def _tracks():
    """Track 101 follows person 1, 202 person 2, 999 stands where nobody is."""
    return tuple(PredictedTrackFrame(T0 + k * S // 10 + 1_000_000, (
        (101, 1.05, 1.0), (202, 2.95, 1.02), (999, 6.0, 4.0))) for k in range(50, 451))


def _hands(track_id, side, bin_id, start_s, end_s, skip=()):
    return [PredictedSkeletonFrame(T0 + k * S // 10, ((track_id, side, bin_id),))
            for k in range(int(start_s * 10), int(end_s * 10) + 1) if k not in skip]


def _run(skeletons):
    predictions = _predictions(track_frames=_tracks())
    counts = dict(predictions.topic_counts)
    counts['/people/skeletons'] = len(skeletons)
    predictions = type(predictions)(topic_counts=counts, track_frames=_tracks(),
                                    skeleton_frames=tuple(skeletons))
    truth = _truth(frames=_frames(), touches=[TOUCH])
    return {m.name: m for m in hand_in_bin_metrics(truth, predictions, EvaluationConfig())}


def test_intervals_are_matched_by_person_bin_and_time():
    skeletons = (_hands(101, 'right', 'b1', 9.2, 10.8, skip={100, 101, 102})   # one gap
                 + _hands(202, 'left', 'b2', 19.0, 21.0)
                 + _hands(202, 'left', 'b1', 29.0, 31.0)     # e3 was in b3: wrong bin
                 + _hands(101, 'left', 'b2', 39.5, 40.0)     # the touch
                 + _hands(999, 'right', 'b1', 15.0, 15.5))   # a track of nobody
    metrics = _run(skeletons)
    precision, recall = metrics['hand_in_bin_precision'], metrics['hand_in_bin_recall']
    assert precision.value == pytest.approx(3 / 5)
    assert recall.value == pytest.approx(3 / 4)
    detail = precision.detail
    assert detail['predicted_intervals'] == 5 and detail['contacts'] == 4
    assert detail['false_intervals'] == {'wrong_bin': 1, 'track_not_a_person': 1}
    assert detail['missed_contacts'] == {'person_right_bin_wrong': 1}
    assert detail['missed'] == ['e3']


def test_an_interval_half_a_second_off_still_matches_and_one_a_second_off_does_not():
    near = _run(_hands(101, 'right', 'b1', 11.4, 12.0))
    assert near['hand_in_bin_recall'].value == pytest.approx(1 / 4)
    far = _run(_hands(101, 'right', 'b1', 11.6, 12.0))
    assert far['hand_in_bin_recall'].value == 0.0
    assert far['hand_in_bin_precision'].detail['false_intervals'] == {'no_contact': 1}


def test_the_other_persons_contact_is_not_a_match():
    metrics = _run(_hands(101, 'right', 'b2', 19.0, 21.0))      # e2 is person 2's
    assert metrics['hand_in_bin_precision'].value == 0.0
    assert metrics['hand_in_bin_precision'].detail['false_intervals'] == {
        'other_persons_contact': 1}
    assert metrics['hand_in_bin_precision'].detail['missed_contacts']['bin_right_person_wrong'] \
        == 1


def test_frames_join_into_intervals_over_short_gaps_only():
    frames = _hands(1, 'left', 'b1', 1.0, 1.4) + _hands(1, 'right', 'b1', 1.8, 2.0) + \
        _hands(1, 'left', 'b1', 3.0, 3.0) + _hands(2, 'left', 'b1', 1.0, 1.0)
    intervals = hand_intervals(frames, S // 2)
    assert [(i.track_id, (i.start_ns - T0) / S, (i.end_ns - T0) / S) for i in intervals] == [
        (1, 1.0, 2.0), (2, 1.0, 1.0), (1, 3.0, 3.0)]


def test_missing_without_skeletons_and_printed_by_evaluate():
    truth = _truth(frames=_frames(), touches=[TOUCH])
    report = evaluate(truth, _predictions(track_frames=_tracks()))
    assert report.get('hand_in_bin_precision').missing == 'no /people/skeletons messages'
    assert 'hand_in_bin_recall' in report.table()
