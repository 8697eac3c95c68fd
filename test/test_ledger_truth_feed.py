"""The truth feed (a test harness, never a perception output): what it derives from truth."""

from __future__ import annotations

import pytest

from go_store_nodes.core.ledger.tokens import load_public_key, TokenVerifier
from go_store_nodes.core.store import load_store_description
from go_store_testing.truth_feed import (
    build_feed,
    cart_after,
    EVENT_ID_PREFIX,
    FeedCartEvent,
    FeedCheckIn,
    FeedTracks,
    simulate_feed,
)


@pytest.fixture(scope='module')
def busy(repo):
    return simulate_feed(repo / 'config' / 'scenarios' / 'busy.yaml')


def test_the_cart_events_add_up_to_the_truth_receipts(busy):
    events = busy.cart_events
    assert len({event.event_id for event in events}) == len(events)
    assert all(event.event_id.startswith(EVENT_ID_PREFIX + 'busy-3-e') for event in events)
    assert any(event.quantity_delta < 0 for event in events), 'busy has returns'
    carts = cart_after(events)
    assert set(busy.receipts) == set(busy.parties)
    for account, receipt in busy.receipts.items():
        assert carts.get(account, {}) == {line.sku: line.quantity for line in receipt.lines}
    # Hand-offs and restocks give no cart event: every event is one shopper's pick/return.
    members = {person: account for account, people in busy.parties.items()
               for person in people}
    assert all(members[event.track_id] == event.account_id for event in events)


def test_check_ins_carry_the_simulators_signed_tokens(busy, repo):
    verifier = TokenVerifier(load_public_key(
        repo / 'config' / 'demo_keys' / 'store_app_public.pem'))
    check_ins = busy.check_ins
    assert len(check_ins) == len(busy.parties) == 10
    for check_in in check_ins:
        assert verifier.verify(check_in.token, check_in.stamp_ns).account_id == \
            check_in.account_id
    assert max(len(c.track_ids) for c in check_ins) == 3, 'busy has a group of three'


def test_snapshots_put_parties_at_the_entry_and_the_exit(busy, repo):
    store = load_store_description(repo / 'config' / 'store.yaml')
    entry = store.gates_of_kind('entry')[0]
    exit_gate = store.gates_of_kind('exit')[0]
    stamps = [item.stamp_ns for item in busy.items]
    assert stamps == sorted(stamps)
    previous = None
    seen_check_in = set()
    for item in busy.items:
        if isinstance(item, FeedCheckIn):
            seen_check_in.add(item.account_id)
        elif isinstance(item, FeedTracks):
            ids = [track.track_id for track in item.tracks]
            assert len(ids) == len(set(ids))
            where = {track.track_id: track for track in item.tracks}
            for account in item.joined:
                assert account in seen_check_in, 'the scan comes before its snapshot'
                for person in busy.parties[account]:
                    assert entry.contains(where[person].x_m, where[person].y_m)
                    assert not where[person].associate
            for account in item.ended:
                assert previous is not None
                before = {track.track_id: track for track in previous.tracks}
                for person in busy.parties[account]:
                    assert person not in where
                if any(person in before for person in busy.parties[account]):
                    last = [before[p] for p in busy.parties[account] if p in before]
                    assert all(exit_gate.contains(t.x_m, t.y_m) for t in last)
            previous = item
        else:
            assert isinstance(item, FeedCartEvent)
            assert item.account_id in seen_check_in, 'no event before its check-in'
    assert sorted(busy.ending_accounts) == sorted(busy.parties)
    associates = {track.track_id for item in busy.items if isinstance(item, FeedTracks)
                  for track in item.tracks if track.associate}
    assert associates, 'busy has associates'
    assert not associates & {event.track_id for event in busy.cart_events}


def test_a_check_in_without_its_token_is_refused():
    from go_store_nodes.core.sim.truth import Truth, TruthCheckIn
    truth = Truth(scenario='x', seed=1, store='s', start_ns=0, end_ns=0, frame_period_ns=1,
                  check_ins=(TruthCheckIn(5, 'gate_entry', 'acct', (1,)),))
    with pytest.raises(ValueError, match='no scanned token'):
        build_feed(truth, [])
