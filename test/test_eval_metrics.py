"""Evaluation metrics on hand-made truth/prediction pairs with known answers."""

import pytest

from go_store_nodes.core.evaluation import (
    check_bounds,
    evaluate,
    EvaluationConfig,
    MinMetricsError,
    parse_min_metrics,
    parse_truth,
    Predictions,
    TruthFormatError,
)
from go_store_nodes.core.evaluation.data import (
    PredictedCartEvent,
    PredictedReceipt,
    PredictedShelfEvent,
    PredictedTrackFrame,
    PredictedVisit,
)
from go_store_nodes.core.evaluation.tracking import load_motmetrics

S = 1_000_000_000
T0 = 1_700_000_000 * S
ALL_TOPICS = ('/people/tracks', '/shelves/events', '/cart/events', '/visits', '/receipts',
              '/gates/check_in_result', '/calibration/status')


def _truth(frames=(), touches=(), extra_people=()):
    events = [
        {'event_id': 'e1', 'kind': 'pick', 'stamp_ns': T0 + 10 * S, 'start_ns': T0 + 9 * S,
         'end_ns': T0 + 11 * S, 'person_id': 1, 'account_id': 'acct_a', 'sku': 'cola',
         'quantity': 2, 'bin_id': 'b1', 'shelf_id': 's1'},
        {'event_id': 'e2', 'kind': 'pick', 'stamp_ns': T0 + 20 * S, 'start_ns': T0 + 19 * S,
         'end_ns': T0 + 21 * S, 'person_id': 2, 'account_id': 'acct_b', 'sku': 'chips',
         'quantity': 1, 'bin_id': 'b2', 'shelf_id': 's1'},
        {'event_id': 'e3', 'kind': 'pick', 'stamp_ns': T0 + 30 * S, 'start_ns': T0 + 29 * S,
         'end_ns': T0 + 31 * S, 'person_id': 2, 'account_id': 'acct_b', 'sku': 'gum',
         'quantity': 1, 'bin_id': 'b3', 'shelf_id': 's1'},
    ]
    return parse_truth({
        'format': 1, 'scenario': 'hand', 'seed': 1, 'start_ns': T0, 'end_ns': T0 + 60 * S,
        'frame_period_ns': S // 10,
        'people': [{'person_id': 1, 'role': 'shopper', 'account_id': 'acct_a', 'party_id': 1,
                    'enter_ns': T0, 'exit_ns': T0 + 40 * S},
                   {'person_id': 2, 'role': 'shopper', 'account_id': 'acct_b', 'party_id': 2,
                    'enter_ns': T0, 'exit_ns': T0 + 50 * S},
                   {'person_id': 3, 'role': 'associate', 'account_id': None, 'party_id': None,
                    'enter_ns': T0, 'exit_ns': None}, *extra_people],
        'frames': list(frames), 'events': events, 'check_ins': [], 'touches': list(touches),
        'receipts': [{'account_id': 'acct_a', 'lines': [{'sku': 'cola', 'quantity': 2}]},
                     {'account_id': 'acct_b', 'lines': [{'sku': 'chips', 'quantity': 1},
                                                        {'sku': 'gum', 'quantity': 1}]}]})


def _receipt(account, lines, received_s, issued=True):
    return PredictedReceipt(T0 + received_s * S, T0 + received_s * S, f'v_{account}', account,
                            issued, lines)


def _cart(event_id, account, sku, quantity, at_s, received_s=None, evidence=()):
    return PredictedCartEvent(T0 + int((received_s or at_s) * S), T0 + int(at_s * S),
                              event_id, f'v_{account}', account, 1, sku, quantity,
                              tuple(evidence))


def _shelf(event_id, bin_id, at_s, kind='pick', candidates=()):
    return PredictedShelfEvent(T0 + int(at_s * S), T0 + int(at_s * S), event_id, 's1', bin_id,
                               kind, candidates=tuple(candidates))


def _perfect():
    return dict(
        receipts=(_receipt('acct_a', {'cola': 2}, 41), _receipt('acct_b', {'chips': 1, 'gum': 1},
                                                                 52)),
        cart_events=(_cart('c1', 'acct_a', 'cola', 2, 11.2, 11.5, ['se1']),
                     _cart('c2', 'acct_b', 'chips', 1, 21.1, 21.3, ['se2']),
                     _cart('c3', 'acct_b', 'gum', 1, 31.0, 31.5, ['se3'])),
        shelf_events=(_shelf('se1', 'b1', 11.2), _shelf('se2', 'b2', 21.1),
                      _shelf('se3', 'b3', 31.0)))


def _predictions(**kwargs):
    counts = {t: 0 for t in ALL_TOPICS}
    for key, topic in (('receipts', '/receipts'), ('cart_events', '/cart/events'),
                       ('shelf_events', '/shelves/events'), ('track_frames', '/people/tracks'),
                       ('visits', '/visits')):
        counts[topic] = len(kwargs.get(key, ()))
    counts['/calibration/status'] = 1
    return Predictions(topic_counts=counts, **kwargs)


def _values(report):
    return {m.name: m.value for m in report.metrics}


def test_perfect_run_scores_one_everywhere():
    values = _values(evaluate(_truth(), _predictions(real_time_factor=3.0, **_perfect())))
    for name in ('receipt_exact_match_rate', 'cart_line_precision', 'cart_line_recall',
                 'cart_line_f1', 'cart_event_line_f1', 'shelf_event_precision',
                 'shelf_event_recall', 'shelf_event_type_accuracy', 'association_accuracy'):
        assert values[name] == pytest.approx(1.0), name
    assert values['receipt_unexpected_accounts'] == 0
    assert values['review_visits'] == 0
    assert values['latency_exit_to_receipt_p50_s'] == pytest.approx(1.5)
    assert values['latency_exit_to_receipt_p99_s'] == pytest.approx(1.99)
    assert values['latency_shelf_to_cart_p50_s'] == pytest.approx(0.3)
    assert values['real_time_factor'] == 3.0
    assert values['messages./calibration/status'] == 1


def test_one_missing_line():
    run = _perfect()
    run['receipts'] = (run['receipts'][0], _receipt('acct_b', {'chips': 1}, 52))
    values = _values(evaluate(_truth(), _predictions(**run)))
    assert values['receipt_exact_match_rate'] == pytest.approx(0.5)
    assert values['cart_line_precision'] == pytest.approx(1.0)
    assert values['cart_line_recall'] == pytest.approx(2 / 3)
    assert values['cart_line_f1'] == pytest.approx(0.8)


def test_one_wrong_quantity_is_a_false_positive_and_a_miss():
    run = _perfect()
    run['receipts'] = (_receipt('acct_a', {'cola': 1}, 41), run['receipts'][1])
    run['cart_events'] = (_cart('c1', 'acct_a', 'cola', 1, 11.2), *run['cart_events'][1:])
    report = evaluate(_truth(), _predictions(**run))
    values = _values(report)
    assert values['receipt_exact_match_rate'] == pytest.approx(0.5)
    assert values['cart_line_precision'] == pytest.approx(2 / 3)
    assert values['cart_line_recall'] == pytest.approx(2 / 3)
    assert values['association_accuracy'] == pytest.approx(2 / 3)
    detail = report.get('cart_line_precision').detail
    assert detail['false_positives'] == [['acct_a', 'cola', 1]]
    assert detail['false_negatives'] == [['acct_a', 'cola', 2]]


def test_wrong_account_fails_both_accounts_and_the_association():
    run = _perfect()
    run['receipts'] = (_receipt('acct_a', {'cola': 2, 'gum': 1}, 41),
                       _receipt('acct_b', {'chips': 1}, 52))
    run['cart_events'] = (*run['cart_events'][:2], _cart('c3', 'acct_a', 'gum', 1, 31.0))
    values = _values(evaluate(_truth(), _predictions(**run)))
    assert values['receipt_exact_match_rate'] == 0.0
    assert values['cart_line_precision'] == pytest.approx(2 / 3)
    assert values['association_accuracy'] == pytest.approx(2 / 3)
    assert values['shelf_event_recall'] == 1.0


def test_held_receipt_is_no_exact_match_but_flags_a_review():
    run = _perfect()
    run['receipts'] = (run['receipts'][0],
                       _receipt('acct_b', {'chips': 1, 'gum': 1}, 52, issued=False))
    values = _values(evaluate(_truth(), _predictions(**run)))
    assert values['receipt_exact_match_rate'] == pytest.approx(0.5)
    assert values['cart_line_f1'] == 1.0
    assert values['review_visits'] == 1 and values['review_visit_rate'] == pytest.approx(0.5)


@pytest.mark.parametrize('receipt, exact', [
    (lambda: _receipt('acct_c', {}, 55), 1.0),                 # issued, nothing on it
    (lambda: _receipt('acct_c', {}, 55, issued=False), 2 / 3),  # held for review
    (lambda: None, 2 / 3),                                      # never issued
])
def test_an_empty_cart_matches_only_with_an_issued_receipt(receipt, exact):
    browser = {'person_id': 4, 'role': 'shopper', 'account_id': 'acct_c', 'party_id': 4,
               'enter_ns': T0, 'exit_ns': T0 + 54 * S}
    run = _perfect()
    made = receipt()
    run['receipts'] = (*run['receipts'], *([made] if made else []))
    report = evaluate(_truth(extra_people=[browser]), _predictions(**run))
    assert report.get('receipt_exact_match_rate').value == pytest.approx(exact)
    detail = report.get('receipt_exact_match_rate').detail['accounts']['acct_c']
    assert detail['issued'] == (exact == 1.0) and detail['predicted'] == {}


def test_sku_accuracy_scores_weight_alone_and_the_fused_cart_event():
    run = _perfect()
    # Weight alone: e1 right, e2 a same-weight sibling first, e3 no candidates at all.
    run['shelf_events'] = (
        _shelf('se1', 'b1', 11.2, candidates=[('cola', 2, 0.9), ('cola_zero', 2, 0.1)]),
        _shelf('se2', 'b2', 21.1, candidates=[('chips_paprika', 1, 0.5), ('chips', 1, 0.5)]),
        _shelf('se3', 'b3', 31.0))
    # Fused: vision puts e2 right, e3's cart event names another product, and e1 has none.
    run['cart_events'] = (_cart('c2', 'acct_b', 'chips', 1, 21.1, 21.3, ['se2']),
                          _cart('c3', 'acct_b', 'mint', 1, 31.0, 31.5, ['se3']))
    report = evaluate(_truth(), _predictions(**run))
    values = _values(report)
    assert values['sku_accuracy_weight_only'] == pytest.approx(1 / 3)
    assert values['sku_accuracy_fused'] == pytest.approx(1 / 3)
    detail = next(m.detail for m in report.metrics if m.name == 'sku_accuracy_weight_only')
    assert detail['without_cart_event'] == 1
    assert {w['truth'] for w in detail['fused_wrong']} == {'e1', 'e3'}
    perfect = _perfect()
    perfect['shelf_events'] = tuple(
        _shelf(e.event_id, e.bin_id, (e.stamp_ns - T0) / S, candidates=[(sku, q, 1.0)])
        for e, (sku, q) in zip(perfect['shelf_events'],
                               (('cola', 2), ('chips', 1), ('gum', 1)), strict=True))
    values = _values(evaluate(_truth(), _predictions(**perfect)))
    assert values['sku_accuracy_weight_only'] == values['sku_accuracy_fused'] == 1.0


def test_shelf_events_match_by_bin_and_time_tolerance():
    run = _perfect()
    run['shelf_events'] = (_shelf('se1', 'b1', 11.2), _shelf('se2', 'b9', 21.1),
                           _shelf('se3', 'b3', 35.0), _shelf('se4', 'b3', 31.5, 'return'))
    values = _values(evaluate(_truth(), _predictions(**run), EvaluationConfig(2.0)))
    assert values['shelf_event_precision'] == pytest.approx(2 / 4)
    assert values['shelf_event_recall'] == pytest.approx(2 / 3)
    assert values['shelf_event_type_accuracy'] == pytest.approx(1 / 2)


def test_touches_are_never_expected_as_shelf_events():
    touch = {'touch_id': 't0001', 'stamp_ns': T0 + 40 * S, 'start_ns': T0 + 39 * S,
             'end_ns': T0 + 41 * S, 'person_id': 1, 'account_id': 'acct_a', 'sku': 'chips',
             'bin_id': 'b2', 'shelf_id': 's1', 'lifted_grams': 158.2}
    truth = _truth(touches=[touch])
    assert [t.bin_id for t in truth.touches] == ['b2']
    perfect = _values(evaluate(truth, _predictions(**_perfect())))
    assert perfect['shelf_event_recall'] == 1.0 and perfect['shelf_event_precision'] == 1.0
    assert perfect['cart_line_recall'] == 1.0
    run = _perfect()
    run['shelf_events'] = (*run['shelf_events'], _shelf('se9', 'b2', 41.5))
    report = evaluate(truth, _predictions(**run))
    values = _values(report)
    assert values['shelf_event_precision'] == pytest.approx(3 / 4)
    assert values['shelf_event_recall'] == 1.0
    precision = next(m for m in report.metrics if m.name == 'shelf_event_precision')
    assert precision.detail['unmatched_on_touches'] == 1


def test_duplicate_cart_event_ids_count_once():
    run = _perfect()
    run['cart_events'] = (*run['cart_events'], run['cart_events'][0])
    values = _values(evaluate(_truth(), _predictions(**run)))
    assert values['cart_event_line_precision'] == 1.0
    assert values['association_accuracy'] == 1.0


def test_missing_producers_are_reported_missing_not_computed():
    report = evaluate(_truth(), _predictions())
    for name, topic in (('receipt_exact_match_rate', '/receipts'),
                        ('cart_line_f1', '/receipts'), ('association_accuracy', '/cart/events'),
                        ('shelf_event_recall', '/shelves/events'),
                        ('tracking_mota', '/people/tracks'),
                        ('latency_shelf_to_cart_p50_s', '/shelves/events'),
                        ('check_in_accepted_rate', '/gates/check_in_result')):
        metric = report.get(name)
        assert metric.value is None and metric.missing == f'no {topic} messages', name
        assert f'missing (no {topic} messages)' in report.table()
    assert report.get('real_time_factor').value is None
    assert report.get('messages./receipts').value == 0
    assert report.to_dict()['metrics']['cart_line_f1']['missing'] == 'no /receipts messages'


def _frame(k, people):
    return {'stamp_ns': T0 + k * S // 10,
            'people': [{'person_id': p, 'x_m': x, 'y_m': y} for p, x, y in people]}


def _track_frame(k, tracks):
    return PredictedTrackFrame(T0 + k * S // 10, tuple(tracks))


def test_tracking_perfect_and_with_one_id_switch():
    if load_motmetrics() is None:
        pytest.skip('motmetrics not installed (pip install motmetrics==1.4.0 pandas)')
    frames = [_frame(k, [(1, 1.0 + 0.1 * k, 1.0), (2, 5.0, 3.0)]) for k in range(10)]
    truth = _truth(frames)
    perfect = [_track_frame(k, [(11, 1.0 + 0.1 * k, 1.05), (12, 5.0, 3.0)]) for k in range(10)]
    values = _values(evaluate(truth, _predictions(track_frames=tuple(perfect))))
    assert values['tracking_mota'] == pytest.approx(1.0)
    assert values['tracking_idf1'] == pytest.approx(1.0)
    assert values['tracking_id_switches'] == 0
    assert values['tracking_motp_m'] == pytest.approx(0.025)
    # Person 1's track is replaced by a new id half way: one switch, 20 objects.
    switched = [_track_frame(k, [(11 if k < 5 else 13, 1.0 + 0.1 * k, 1.0), (12, 5.0, 3.0)])
                for k in range(10)]
    values = _values(evaluate(truth, _predictions(track_frames=tuple(switched))))
    assert values['tracking_id_switches'] == 1
    assert values['tracking_mota'] == pytest.approx(1 - 1 / 20)
    assert values['tracking_idf1'] == pytest.approx(0.75)
    # A track 0.6 m away is no match (0.5 m threshold): a miss and a false positive.
    far = [_track_frame(k, [(11, 1.6 + 0.1 * k, 1.0), (12, 5.0, 3.0)]) for k in range(10)]
    values = _values(evaluate(truth, _predictions(track_frames=tuple(far))))
    assert values['tracking_mota'] == pytest.approx(1 - 20 / 20)


def test_min_metrics_bounds():
    report = evaluate(_truth(), _predictions(real_time_factor=0.8, **_perfect()))
    bounds = parse_min_metrics({'metrics': {
        'receipt_exact_match_rate': {'min': 1.0}, 'real_time_factor': {'min': 0.5},
        'latency_exit_to_receipt_p99_s': {'max': 5}, 'messages./calibration/status':
        {'min': 1}}})
    assert check_bounds(report, bounds) == []
    failing = parse_min_metrics({'metrics': {
        'real_time_factor': {'min': 1.0}, 'tracking_mota': {'present': True},
        'no_such_metric': {'min': 0}}})
    failures = check_bounds(report, failing)
    assert failures == ['real_time_factor: 0.800 < min 1',
                        'tracking_mota: missing (no /people/tracks messages)',
                        'no_such_metric: no such metric']
    for bad in ({}, {'metrics': {'x': {'minimum': 1}}}, {'metrics': {'x': {'min': 'a'}}},
                {'metrics': {'x': {'present': False}}}):
        with pytest.raises(MinMetricsError):
            parse_min_metrics(bad)


def test_truth_format_is_checked():
    with pytest.raises(TruthFormatError, match='format'):
        parse_truth({'format': 2})
    with pytest.raises(TruthFormatError, match='malformed'):
        parse_truth({'format': 1, 'people': [{'role': 'shopper'}]})
    with pytest.raises(ValueError):
        EvaluationConfig(event_time_tolerance_s=0.0)


def _visit(k, visit_id, account, started, tracks):
    return PredictedVisit(received_ns=T0 + k * S // 10, stamp_ns=T0 + k * S // 10,
                          visit_id=visit_id, account_id=account, started=started,
                          track_ids=tuple(tracks))


def test_visit_links_tailgaters_and_open_visits():
    frames = [_frame(k, [(1, 1.0 + 0.1 * k, 1.0), (2, 5.0, 3.0), (4, 8.0, 1.0)])
              for k in range(10)]
    truth = parse_truth({'format': 1, 'scenario': 'hand',
                         'seed': 1, 'start_ns': T0, 'end_ns': T0 + 60 * S,
                         'frame_period_ns': S // 10,
                         'people': [
                             {'person_id': 1, 'role': 'shopper', 'account_id': 'acct_a',
                              'party_id': 1, 'enter_ns': T0, 'exit_ns': T0 + 40 * S},
                             {'person_id': 2, 'role': 'shopper', 'account_id': 'acct_b',
                              'party_id': 2, 'enter_ns': T0, 'exit_ns': T0 + 50 * S},
                             # A tailgater: a shopper without an account.
                             {'person_id': 4, 'role': 'shopper', 'account_id': None,
                              'party_id': None, 'enter_ns': T0, 'exit_ns': T0 + 50 * S}],
                         'frames': frames, 'events': [], 'check_ins': [], 'touches': [],
                         'receipts': []})
    # Person 1 mostly on track 11 (7 of 10 frames), then track 13; person 2 on 12, 4 on 14.
    tracks = [_track_frame(k, [(11 if k < 7 else 13, 1.0 + 0.1 * k, 1.0), (12, 5.0, 3.0),
                               (14, 8.0, 1.1)]) for k in range(10)]
    visits = (_visit(0, 'v1', 'acct_a', True, [11]), _visit(1, 'v2', 'acct_a', True, [12, 14]),
              _visit(50, 'v1', 'acct_a', False, [11]))
    values = _values(evaluate(truth, _predictions(track_frames=tuple(tracks), visits=visits)))
    # Person 1 right, person 2 in the wrong account's visit.
    assert values['visit_link_accuracy'] == pytest.approx(0.5)
    assert values['tailgaters_billed'] == 1
    assert values['visits_left_open'] == 1  # v2 never ended
    fixed = (_visit(0, 'v1', 'acct_a', True, [11]), _visit(1, 'v2', 'acct_b', True, [12]),
             _visit(50, 'v1', 'acct_a', False, [11]), _visit(51, 'v2', 'acct_b', False, [12]))
    values = _values(evaluate(truth, _predictions(track_frames=tuple(tracks), visits=fixed)))
    assert values['visit_link_accuracy'] == pytest.approx(1.0)
    assert (values['tailgaters_billed'], values['visits_left_open']) == (0, 0)
    # The tailgater linked to v2, whose receipt staff must confirm: flagged, not billed.
    held = PredictedReceipt(T0 + 52 * S, T0 + 52 * S, 'v2', 'acct_a', False, {})
    values = _values(evaluate(truth, _predictions(track_frames=tuple(tracks), visits=visits,
                                                  receipts=(held,))))
    assert (values['tailgaters_billed'], values['tailgaters_held_for_review']) == (0, 1)
