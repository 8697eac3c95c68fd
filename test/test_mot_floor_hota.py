"""HOTA, DetA and AssA of floor tracks in the evaluation report (`go-store eval`)."""

import math

import pytest

from go_store_nodes.core.evaluation import evaluate, parse_truth, Predictions
from go_store_nodes.core.evaluation.data import PredictedTrackFrame

S = 1_000_000_000
T0 = 1_700_000_000 * S
TOPICS = ('/people/tracks', '/shelves/events', '/cart/events', '/visits', '/receipts',
          '/gates/check_in_result', '/calibration/status')


def _truth(frames):
    return parse_truth({
        'format': 1, 'scenario': 'hand', 'seed': 1, 'start_ns': T0, 'end_ns': T0 + 2 * S,
        'frame_period_ns': S // 10,
        'people': [{'person_id': p, 'role': 'shopper', 'account_id': f'acct_{p}',
                    'party_id': p, 'enter_ns': T0, 'exit_ns': T0 + 2 * S} for p in (1, 2)],
        'frames': frames, 'events': [], 'check_ins': [], 'touches': [], 'receipts': []})


def _report(frames, track_frames):
    counts = {t: 0 for t in TOPICS}
    counts['/people/tracks'] = len(track_frames)
    return evaluate(_truth(frames), Predictions(topic_counts=counts,
                                                track_frames=tuple(track_frames)))


def _people(k):
    return {'stamp_ns': T0 + k * S // 10,
            'people': [{'person_id': 1, 'x_m': 1.0 + 0.1 * k, 'y_m': 1.0},
                       {'person_id': 2, 'x_m': 5.0, 'y_m': 3.0}]}


def test_hota_beside_mota_in_the_report():
    frames = [_people(k) for k in range(10)]
    perfect = [PredictedTrackFrame(T0 + k * S // 10, ((11, 1.0 + 0.1 * k, 1.0),
                                                      (12, 5.0, 3.0))) for k in range(10)]
    report = _report(frames, perfect)
    assert report.get('tracking_hota').value == pytest.approx(1.0)
    names = [m.name for m in report.metrics]
    assert names.index('tracking_hota') == names.index('tracking_motp_m') + 1
    assert 'tracking_hota' in report.table() and 'tracking_assa' in report.table()
    # Person 1's track gets a new id half way: detection stays perfect, each of its two
    # pairs has |TPA| 5 of 10 truth frames (0.5), person 2's pair 1: AssA (5 x 0.5 +
    # 5 x 0.5 + 10 x 1) / 20 = 0.75.
    switched = [PredictedTrackFrame(T0 + k * S // 10, ((11 if k < 5 else 13, 1.0 + 0.1 * k,
                                                        1.0), (12, 5.0, 3.0)))
                for k in range(10)]
    report = _report(frames, switched)
    assert report.get('tracking_deta').value == pytest.approx(1.0)
    assert report.get('tracking_assa').value == pytest.approx(0.75)
    assert report.get('tracking_hota').value == pytest.approx(math.sqrt(0.75))


def test_similarity_falls_with_distance():
    # A track 0.25 m off (half the 0.5 m match distance): similarity 0.5, a true
    # positive at the alphas 0.05..0.50 only (10 of 19).
    frames = [_people(k) for k in range(10)]
    off = [PredictedTrackFrame(T0 + k * S // 10, ((11, 1.25 + 0.1 * k, 1.0),
                                                  (12, 5.0, 3.0))) for k in range(10)]
    report = _report(frames, off)
    per_alpha = report.get('tracking_hota').detail['per_alpha']
    assert per_alpha[9] > per_alpha[10]
    # Above 0.5 only person 2 matches: TP 10, FN 10, FP 10, DetA 1/3.
    assert report.get('tracking_deta').value == pytest.approx((10 * 1.0 + 9 / 3) / 19)


def test_hota_missing_without_tracks():
    report = _report([_people(0)], [])
    assert report.get('tracking_hota').missing == 'no /people/tracks messages'
