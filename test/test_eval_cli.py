"""`go-store eval` on an output bag: the table, JSON, and exit codes with min-metrics."""

import json

import numpy as np
import pytest

from go_store_nodes.bagio import messages
from go_store_nodes.bagio.predictions import load_predictions
from go_store_nodes.bagio.topics import CUSTOM_REAL_TIME_FACTOR
from go_store_nodes.bagio.typestore import message_class
from go_store_nodes.bagio.writer import BagWriter
from go_store_nodes.cli import main
from go_store_nodes.core.evaluation.peer import load_norfair
from go_store_nodes.core.evaluation.tracking import load_motmetrics

S = 1_000_000_000
T0 = 1_700_000_000 * S


def _truth():
    return {'format': 1, 'scenario': 'cli', 'seed': 3, 'start_ns': T0, 'end_ns': T0 + 20 * S,
            'frame_period_ns': S // 15,
            'people': [{'person_id': 1, 'role': 'shopper', 'account_id': 'acct_0001',
                        'party_id': 1, 'enter_ns': T0, 'exit_ns': T0 + 10 * S}],
            'frames': [], 'check_ins': [],
            'events': [{'event_id': 'e1', 'kind': 'pick', 'stamp_ns': T0 + 5 * S,
                        'start_ns': T0 + 4 * S, 'end_ns': T0 + 6 * S, 'person_id': 1,
                        'account_id': 'acct_0001', 'sku': 'cola', 'quantity': 1,
                        'bin_id': 'b1', 'shelf_id': 's1'}],
            'receipts': [{'account_id': 'acct_0001',
                          'lines': [{'sku': 'cola', 'quantity': 1, 'unit_price_cents': 99}],
                          'total_cents': 99}]}


def _output_bag(path, quantity=1):
    receipt = message_class('go_store/msg/Receipt')(
        header=messages.header(T0 + 11 * S, 'map'), receipt_id='r1', visit_id='v1',
        account_id='acct_0001', status=1,
        lines=[message_class('go_store/msg/ReceiptLine')(
            sku='cola', name='Cola', quantity=quantity, unit_price_cents=99,
            line_total_cents=99 * quantity)],
        total_cents=99 * quantity, currency='EUR', open_review_ids=[])
    status = message_class('go_store/msg/CalibrationStatus')(
        header=messages.header(T0, 'map'), cameras=[])
    with BagWriter(path, custom_data={CUSTOM_REAL_TIME_FACTOR: '2.5'}) as bag:
        bag.write('/calibration/status', 'go_store/msg/CalibrationStatus', T0, status)
        bag.write('/receipts', 'go_store/msg/Receipt', T0 + 11 * S, receipt)
    return path


@pytest.fixture
def files(tmp_path):
    truth = tmp_path / 'truth.json'
    truth.write_text(json.dumps(_truth()))
    return truth, _output_bag(tmp_path / 'out')


def test_output_bag_converts_to_predictions(files):
    _, bag = files
    predictions = load_predictions(bag)
    assert predictions.count('/receipts') == 1 and predictions.count('/people/tracks') == 0
    (receipt,) = predictions.receipts
    assert receipt.issued and receipt.lines == {'cola': 1} and receipt.account_id == 'acct_0001'
    assert receipt.received_ns == T0 + 11 * S
    assert predictions.real_time_factor == 2.5


def test_eval_prints_table_writes_json_and_passes(files, tmp_path, capsys):
    truth, bag = files
    limits = tmp_path / 'min.yaml'
    limits.write_text('metrics:\n  receipt_exact_match_rate: {min: 1.0}\n'
                      '  real_time_factor: {min: 1.0}\n'
                      '  messages./calibration/status: {min: 1}\n'
                      '  latency_exit_to_receipt_p99_s: {max: 2.0}\n')
    out = tmp_path / 'eval.json'
    code = main(['eval', '--truth', str(truth), '--bag', str(bag), '--json', str(out),
                 '--min-metrics', str(limits)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert 'receipt_exact_match_rate' in printed and 'all 4 min-metrics pass' in printed
    assert 'missing (no /people/tracks messages)' in printed
    report = json.loads(out.read_text())
    assert report['metrics']['receipt_exact_match_rate']['value'] == 1.0
    assert report['metrics']['latency_exit_to_receipt_p50_s']['value'] == pytest.approx(1.0)
    assert report['metrics']['tracking_mota'] == {
        'value': None, 'unit': 'ratio', 'missing': 'no /people/tracks messages'}


def test_eval_exit_codes(files, tmp_path, capsys):
    truth, _ = files
    wrong = _output_bag(tmp_path / 'wrong', quantity=2)
    limits = tmp_path / 'min.yaml'
    limits.write_text('metrics:\n  receipt_exact_match_rate: {min: 1.0}\n')
    assert main(['eval', '--truth', str(truth), '--bag', str(wrong),
                 '--min-metrics', str(limits)]) == 1
    assert 'receipt_exact_match_rate: 0.000 < min 1' in capsys.readouterr().err
    # A missing metric fails only when the file names it.
    limits.write_text('metrics:\n  messages./receipts: {min: 1}\n')
    assert main(['eval', '--truth', str(truth), '--bag', str(wrong),
                 '--min-metrics', str(limits)]) == 0
    limits.write_text('metrics:\n  tracking_idf1: {min: 0.5}\n')
    assert main(['eval', '--truth', str(truth), '--bag', str(wrong),
                 '--min-metrics', str(limits)]) == 1
    assert 'tracking_idf1: missing (no /people/tracks messages)' in capsys.readouterr().err
    # Bad input: exit 2 with a message.
    assert main(['eval', '--truth', str(tmp_path / 'nope.json'), '--bag', str(wrong)]) == 2
    assert main(['eval', '--truth', str(truth), '--bag', str(tmp_path)]) == 2
    limits.write_text('metrics: [1, 2]\n')
    assert main(['eval', '--truth', str(truth), '--bag', str(wrong),
                 '--min-metrics', str(limits)]) == 2
    assert 'metrics' in capsys.readouterr().err


def _cart_event_bag(path, event_id, evidence=()):
    event = message_class('go_store/msg/CartEvent')(
        header=messages.header(T0 + 5 * S, 'map'), event_id=event_id, visit_id='v1',
        account_id='acct_0001', track_id=1, sku='cola', quantity_delta=1, confidence=1.0,
        evidence_ids=list(evidence), needs_review=False, review_reason='')
    with BagWriter(path) as bag:
        bag.write('/cart/events', 'go_store/msg/CartEvent', T0 + 5 * S, event)
    return path


@pytest.mark.parametrize('event_id, evidence', [
    ('truth-feed-cli-3-e1', ()),          # the truth-fed harness's ids
    ('e1', ()),                           # a truth event id copied as it is
    ('assoc-0001', ('shelf-7', 'e1')),    # a truth id smuggled in as evidence
])
def test_eval_refuses_output_made_from_truth(files, tmp_path, capsys, event_id, evidence):
    truth, _ = files
    bag = _cart_event_bag(tmp_path / 'peek', event_id, evidence)
    assert main(['eval', '--truth', str(truth), '--bag', str(bag)]) == 2
    err = capsys.readouterr().err
    assert 'come from ground truth' in err and 'refusing to score' in err


def test_eval_scores_output_with_its_own_ids(files, tmp_path, capsys):
    truth, _ = files
    bag = _cart_event_bag(tmp_path / 'honest', 'assoc-0001', ('shelf-7',))
    assert main(['eval', '--truth', str(truth), '--bag', str(bag)]) == 0
    assert 'cart_line' in capsys.readouterr().out


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', f'{path} is not a PNG'
    return int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')


def test_eval_draws_the_store_map_beside_the_json_or_where_asked(files, tmp_path, capsys):
    truth, bag = files
    out = tmp_path / 'report' / 'eval.json'
    assert main(['eval', '--truth', str(truth), '--bag', str(bag), '--json', str(out)]) == 0
    beside = out.parent / 'store-map.png'
    assert f'wrote store map {beside}' in capsys.readouterr().out
    width, height = _png_size(beside)
    assert width > 1000 and height > 700
    asked = tmp_path / 'maps' / 'run.png'
    assert main(['eval', '--truth', str(truth), '--bag', str(bag), '--map', str(asked)]) == 0
    assert _png_size(asked) == (width, height)
    assert f'wrote store map {asked}' in capsys.readouterr().out
    # Neither --json nor --map: no picture.
    assert main(['eval', '--truth', str(truth), '--bag', str(bag)]) == 0
    assert 'store map' not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.rglob('*.png')) == ['run.png', 'store-map.png']


def test_eval_store_map_refuses_a_store_the_truth_was_not_simulated_in(tmp_path, capsys):
    truth = tmp_path / 'truth.json'
    truth.write_text(json.dumps({**_truth(), 'store': 'another_store'}))
    bag = _output_bag(tmp_path / 'out')
    assert main(['eval', '--truth', str(truth), '--bag', str(bag)]) == 0
    assert main(['eval', '--truth', str(truth), '--bag', str(bag),
                 '--map', str(tmp_path / 'map.png')]) == 2
    err = capsys.readouterr().err
    assert "truth was simulated in 'another_store'" in err and '--store' in err
    assert not (tmp_path / 'map.png').exists()


def test_eval_help_says_where_the_store_map_goes(capsys):
    with pytest.raises(SystemExit):
        main(['eval', '--help'])
    assert 'store-map.png beside --json' in ' '.join(capsys.readouterr().out.split())


def _tracking_bag(path, frames, swap_at):
    """Write detections of two people crossing and tracks that swap ids at ``swap_at``.

    Track 12 is an associate, track 11 a shopper.
    """
    point = message_class('geometry_msgs/msg/Point')
    vector = message_class('geometry_msgs/msg/Vector3')
    detection_type = message_class('go_store/msg/PersonDetection')
    track_type = message_class('go_store/msg/Track')
    with BagWriter(path) as bag:
        for k, (stamp, people) in enumerate(frames):
            detections = [detection_type(
                header=messages.header(stamp, 'map'), position=point(x=x, y=y, z=0.0),
                position_covariance=np.diag([0.01, 0.01, 0.0]).ravel(),
                height_m=1.75, blob_area_m2=0.2, confidence=0.9,
                appearance=np.zeros(0, dtype=np.float32), camera_ids=['cam_a'])
                for _, x, y in people]
            bag.write('/people/detections', 'go_store/msg/PersonDetectionArray', stamp,
                      message_class('go_store/msg/PersonDetectionArray')(
                          header=messages.header(stamp, 'map'), detections=detections))
            ids = (11, 12) if k < swap_at else (12, 11)
            tracks = [track_type(
                header=messages.header(stamp, 'map'), track_id=track_id,
                position=point(x=x, y=y, z=0.0), velocity=vector(x=0.0, y=0.0, z=0.0),
                position_covariance=np.zeros(9), height_m=1.75, confidence=0.9,
                tangled=False, tangled_with=np.zeros(0, dtype=np.uint64),
                role=2 if track_id == 12 else 1, visit_id='', account_id='')
                for track_id, (person, x, y) in zip(ids, people, strict=True)]
            bag.write('/people/tracks', 'go_store/msg/TrackArray', stamp,
                      message_class('go_store/msg/TrackArray')(
                          header=messages.header(stamp, 'map'), tracks=tracks))
    return path


@pytest.mark.skipif(load_norfair() is None or load_motmetrics() is None,
                    reason='norfair or motmetrics not installed')
def test_eval_scores_peer_tracker_roles_and_tangles(tmp_path, capsys):
    """Ours swaps two people where they cross; the peer, on the same detections, does not."""
    period = S // 10
    frames = [(T0 + k * period, ((1, 0.1 * k, 1.0), (2, 6.0 - 0.1 * k, 1.2)))
              for k in range(60)]
    truth = _truth()
    truth['frames'] = [{'stamp_ns': stamp, 'people': [
        {'person_id': p, 'x_m': x, 'y_m': y} for p, x, y in people]}
        for stamp, people in frames]
    truth['frame_period_ns'] = period
    truth['people'].append({'person_id': 2, 'role': 'associate', 'account_id': None,
                            'party_id': None, 'enter_ns': T0, 'exit_ns': None})
    truth_path = tmp_path / 'truth.json'
    truth_path.write_text(json.dumps(truth))
    bag = _tracking_bag(tmp_path / 'tracks', frames, swap_at=31)
    predictions = load_predictions(bag)
    assert len(predictions.detection_frames) == 60
    assert predictions.track_frames[0].roles == ('shopper', 'associate')
    out = tmp_path / 'eval.json'
    assert main(['eval', '--truth', str(truth_path), '--bag', str(bag),
                 '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'tracker comparison' in printed and 'norfair' in printed
    metrics = json.loads(out.read_text())['metrics']
    assert metrics['messages./people/detections']['value'] == 60
    assert metrics['peer_tracker']['text'].startswith('norfair')
    assert metrics['peer_tracking_id_switches']['value'] == 0
    assert metrics['peer_tracking_idf1']['value'] > 0.9
    assert metrics['tracking_id_switches']['value'] == 2
    assert metrics['tracking_idf1']['value'] < metrics['peer_tracking_idf1']['value']
    assert metrics['tangled_episodes']['value'] == 1
    assert metrics['tangled_episodes_both_right']['value'] == 0.0
    assert metrics['peer_tangled_episodes_both_right']['value'] == 1.0
    # Each person's track is the one they had in most frames (31 of 60): 11 for the
    # shopper, 12 (an associate) for the associate.
    assert metrics['associate_classification_accuracy']['value'] == 1.0
    assert metrics['associate_classification_associates']['value'] == 1.0
