"""Ground truth: JSON round trip in the format of docs/simulation.md, receipts."""

import json

import pytest

from go_store_nodes.core.sim.truth import (
    compute_receipts,
    Truth,
    TruthCheckIn,
    TruthEpisode,
    TruthEvent,
    TruthFrame,
    TruthFramePerson,
    TruthPerson,
    TruthTouch,
)

PRICES = {'chips': 249, 'cola': 129}


def _event(index, kind, sku, account='acct_0001', quantity=1, person=1, to_person=None):
    return TruthEvent(f'e{index:04d}', kind, 100 + index, 90 + index, 110 + index, person,
                      to_person, account, sku, quantity, None if kind == 'hand_off' else 'b1',
                      None if kind == 'hand_off' else 's1', -158.0, ('return_same_bin',))


def _truth():
    events = (_event(1, 'pick', 'chips'), _event(2, 'pick', 'cola', quantity=2),
              _event(3, 'return', 'cola'), _event(4, 'hand_off', 'chips', to_person=2),
              _event(5, 'restock', 'cola', account=None, quantity=6, person=9))
    return Truth(
        scenario='t', seed=1, store='reference_store', start_ns=5, end_ns=50,
        frame_period_ns=66666667,
        people=(TruthPerson(1, 'shopper', 'acct_0001', 1, 1.72, 5, 40),
                TruthPerson(9, 'associate', None, None, 1.8, 6, None)),
        frames=(TruthFrame(10, (TruthFramePerson(1, 1.0, 2.0, {'head': [1.0, 2.0, 1.6]}),)),),
        events=events,
        check_ins=(TruthCheckIn(5, 'gate_entry', 'acct_0001', (1, 2)),),
        receipts=compute_receipts(events, ['acct_0001', 'acct_0002'], PRICES),
        behaviour_counts={'group_entry': 1, 'return_same_bin': 1},
        episodes=(TruthEpisode('group_entry', 5, 6, (1, 2)),),
        sensor_counts={'camera_frames': 3},
        touches=(TruthTouch('t0001', 30, 25, 35, 1, 'acct_0001', 'chips', 'b1', 's1', 158.4),))


def test_round_trip():
    truth = _truth()
    text = truth.to_json()
    again = Truth.from_json(text)
    assert again == truth
    assert again.to_json() == text


def test_document_has_the_contract_keys():
    document = json.loads(_truth().to_json())
    assert list(document)[:7] == ['format', 'scenario', 'seed', 'store', 'start_ns', 'end_ns',
                                  'frame_period_ns']
    for key in ('people', 'frames', 'events', 'check_ins', 'receipts', 'behaviour_counts'):
        assert key in document
    assert document['format'] == 1
    assert set(document['people'][0]) == {'person_id', 'role', 'account_id', 'party_id',
                                          'height_m', 'enter_ns', 'exit_ns'}
    assert set(document['frames'][0]['people'][0]) == {'person_id', 'x_m', 'y_m', 'joints'}
    assert set(document['events'][0]) == {
        'event_id', 'kind', 'stamp_ns', 'start_ns', 'end_ns', 'person_id', 'to_person_id',
        'account_id', 'sku', 'quantity', 'bin_id', 'shelf_id', 'delta_grams', 'behaviours'}
    assert set(document['check_ins'][0]) == {'stamp_ns', 'gate_id', 'account_id',
                                             'person_ids', 'tailgater_ids'}
    assert set(document['receipts'][0]) == {'account_id', 'lines', 'total_cents'}
    assert set(document['receipts'][0]['lines'][0]) == {'sku', 'quantity', 'unit_price_cents'}
    assert set(document['touches'][0]) == {
        'touch_id', 'stamp_ns', 'start_ns', 'end_ns', 'person_id', 'account_id', 'sku',
        'bin_id', 'shelf_id', 'lifted_grams'}


def test_touches_are_optional():
    document = json.loads(_truth().to_json())
    assert Truth.from_dict(document).touches[0].lifted_grams == 158.4
    del document['touches']
    assert Truth.from_dict(document).touches == ()


def test_receipts_are_picks_minus_returns():
    truth = _truth()
    receipt = truth.receipt('acct_0001')
    assert [(line.sku, line.quantity, line.unit_price_cents) for line in receipt.lines] == [
        ('chips', 1, 249), ('cola', 1, 129)]
    assert receipt.total_cents == 378
    empty = truth.receipt('acct_0002')
    assert empty.lines == () and empty.total_cents == 0
    with pytest.raises(KeyError):
        truth.receipt('acct_9999')


def test_returning_more_than_picked_is_an_error():
    with pytest.raises(ValueError, match='returned more'):
        compute_receipts([_event(1, 'return', 'cola')], ['acct_0001'], PRICES)


def test_malformed_documents_are_refused():
    document = json.loads(_truth().to_json())
    document['format'] = 2
    with pytest.raises(ValueError, match='format'):
        Truth.from_dict(document)
    document = json.loads(_truth().to_json())
    del document['events'][0]['sku']
    with pytest.raises(ValueError, match='malformed'):
        Truth.from_dict(document)


def test_save_and_load(tmp_path):
    truth = _truth()
    truth.save(tmp_path / 'truth.json')
    assert Truth.load(tmp_path / 'truth.json') == truth


def test_documents_without_the_optional_keys_load_with_defaults():
    document = json.loads(_truth().to_json())
    for key in ('store', 'behaviour_counts', 'episodes', 'sensor_counts', 'camera_outages',
                'camera_clocks', 'touches'):
        document.pop(key, None)
    for person in document['people']:
        del person['height_m']
    for event in document['events']:
        for key in ('to_person_id', 'delta_grams', 'behaviours'):
            del event[key]
    for receipt in document['receipts']:
        del receipt['total_cents']
    truth = Truth.from_dict(document)
    original = _truth()
    assert truth.store == '' and truth.behaviour_counts == {} and truth.touches == ()
    assert [p.height_m for p in truth.people] == [0.0] * len(original.people)
    assert [e.sku for e in truth.events] == [e.sku for e in original.events]
    assert all(e.to_person_id is None and e.delta_grams == 0.0 for e in truth.events)
    assert truth.receipts == original.receipts
