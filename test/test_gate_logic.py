"""Gate logic (pure, on the ledger): check-in refusals, group entry, associates, exits.

Runs on SQLite and, when GO_STORE_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

import dataclasses
from pathlib import Path
from typing import Iterator

import pytest
from test_ledger_backends import Backend, BACKENDS, open_backend, S, T0

from go_store_nodes.core.gate import (
    GateConfig,
    GateLogic,
    TrackObservation,
    VisitStatus,
)
from go_store_nodes.core.ledger import LedgerError, TokenConfig, TokenIssuer
from go_store_nodes.core.ledger.tokens import generate_private_key

KEY = generate_private_key()
TOKENS = TokenConfig(default_ttl_ns=60 * S, clock_skew_ns=5 * S)
ISSUER = TokenIssuer(KEY, TOKENS)
CONFIG = GateConfig(group_window_ns=3 * S)
# Zones of config/store.yaml: entry [0, 1.2] x [0, 0.8], exit [8.8, 10] x [0, 0.8].
ENTRY = (0.6, 0.4)
EXIT = (9.4, 0.4)
AISLE = (5.0, 3.0)
OUTSIDE = (9.4, -0.5)
STAFF_DOOR = (9.7, 4.4)   # staff zone [9.4, 10] x [4.0, 4.8]
MS = 1_000_000


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


def make_gate(backend, store, config=CONFIG, key=KEY):
    return GateLogic(store, backend.new_ledger(), key.public_key(), config, TOKENS)


def at(track_id, where, associate=False):
    return TrackObservation(str(track_id), where[0], where[1], associate)


def no_visit_opened(gate, *track_ids):
    return not gate.open_visit_ids and all(
        gate._ledger.visit_for_track(str(t)) is None for t in track_ids)


@pytest.mark.parametrize(('token', 'reason'), [
    (lambda: TokenIssuer(generate_private_key(), TOKENS).issue('acct-1', T0), 'bad_signature'),
    (lambda: ISSUER.issue('acct-1', T0 - 120 * S), 'expired'),
    (lambda: ISSUER.issue('acct-1', T0 + 120 * S), 'not_yet_valid'),
    (lambda: 'not a token', 'malformed'),
    (lambda: ISSUER.issue('acct-1', T0)[:-4] + 'AAAA', 'bad_signature'),
])
def test_bad_tokens_are_refused_with_their_reason_and_open_nothing(backend, store, token,
                                                                   reason):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    outcome, updates = gate.check_in('gate_entry', token(), T0)
    assert (outcome.accepted, outcome.reason, outcome.visit_id) == (False, reason, '')
    assert outcome.detail
    assert updates == []
    assert no_visit_opened(gate, 1)


def test_a_valid_scan_opens_one_visit_and_its_replay_is_refused_even_after_restart(
        backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    token = ISSUER.issue('acct-1', T0)
    outcome, updates = gate.check_in('gate_entry', token, T0 + 100 * MS)
    assert outcome.accepted and outcome.reason == '' and outcome.visit_id
    assert outcome.track_ids == ('1',)
    assert [(u.status, u.visit_id, u.track_ids, u.stamp_ns) for u in updates] == [
        (VisitStatus.STARTED, outcome.visit_id, ('1',), T0 + 100 * MS)]
    again, updates = gate.check_in('gate_entry', token, T0 + 2 * S)
    assert (again.accepted, again.reason, updates) == (False, 'replayed', [])
    restarted = make_gate(backend, store)
    again, _ = restarted.check_in('gate_entry', token, T0 + 3 * S)
    assert (again.accepted, again.reason) == (False, 'replayed')
    assert gate.open_visit_ids == (outcome.visit_id,)


@pytest.mark.parametrize(('gate_id', 'words'), [
    ('gate_nowhere', "unknown gate 'gate_nowhere'"),
    ('gate_exit', "'gate_exit' is a exit gate"),
])
def test_unknown_and_non_entry_gates_are_refused_and_the_token_stays_unused(
        backend, store, gate_id, words):
    gate = make_gate(backend, store)
    token = ISSUER.issue('acct-1', T0)
    outcome, updates = gate.check_in(gate_id, token, T0)
    assert (outcome.accepted, outcome.reason, updates) == (False, 'malformed', [])
    assert words in outcome.detail and 'gate_entry' in outcome.detail
    assert gate.check_in('gate_entry', token, T0)[0].accepted  # not consumed


def test_registration_policy(backend, store):
    strict = make_gate(backend, store, GateConfig(require_registered_accounts=True))
    outcome, _ = strict.check_in('gate_entry', ISSUER.issue('new-acct', T0), T0)
    assert (outcome.accepted, outcome.reason) == (False, 'unknown_account')
    strict._ledger.register_account('new-acct', T0)
    assert strict.check_in('gate_entry', ISSUER.issue('new-acct', T0), T0)[0].accepted
    relaxed = make_gate(backend, store)
    assert relaxed.check_in('gate_entry', ISSUER.issue('walk-in', T0), T0)[0].accepted
    assert relaxed._ledger.account_exists('walk-in')
    relaxed._ledger.register_account('closed-acct', T0, active=False)
    outcome, _ = relaxed.check_in('gate_entry', ISSUER.issue('closed-acct', T0), T0)
    assert (outcome.accepted, outcome.reason) == (False, 'unknown_account')
    assert not relaxed._ledger.account_exists('closed-acct'), 'must not be reactivated'


def test_a_group_of_three_on_one_scan_is_one_visit_and_associates_are_never_linked(
        backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY), at(2, ENTRY), at(3, ENTRY), at(9, ENTRY, True),
                        at(5, AISLE)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0 + 50 * MS)
    assert outcome.track_ids == ('1', '2', '3')
    ledger = gate._ledger
    assert ledger.get_visit(outcome.visit_id).track_ids == ('1', '2', '3')
    # During the group window an associate walking through is still not linked.
    gate.on_tracks(T0 + S, [at(1, AISLE), at(2, AISLE), at(3, AISLE), at(9, ENTRY, True),
                            at(5, AISLE)])
    assert ledger.visit_for_track('9') is None and ledger.visit_for_track('5') is None


def test_late_group_members_join_within_the_window_only(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY), at(2, AISLE)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    assert outcome.track_ids == ('1',)
    updates = gate.on_tracks(T0 + 2 * S, [at(1, AISLE), at(2, AISLE), at(3, ENTRY)])
    assert [(u.status, u.track_ids, u.stamp_ns) for u in updates] == [
        (VisitStatus.STARTED, ('1', '3'), T0)]
    assert gate.on_tracks(T0 + 4 * S, [at(1, AISLE), at(3, AISLE), at(4, ENTRY)]) == []
    assert gate._ledger.visit_for_track('4') is None
    assert gate._ledger.get_visit(outcome.visit_id).track_ids == ('1', '3')


def test_tracks_of_one_visit_are_not_taken_by_the_next_scan(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    first, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    gate.on_tracks(T0 + 100 * MS, [at(1, ENTRY), at(2, ENTRY)])
    second, _ = gate.check_in('gate_entry', ISSUER.issue('acct-2', T0), T0 + 200 * MS)
    ledger = gate._ledger
    assert ledger.visit_for_track('1') == first.visit_id
    # Track 2 entered during the first window, so it joined the first visit.
    assert ledger.visit_for_track('2') == first.visit_id
    assert second.accepted and second.track_ids == ()


def test_more_people_at_the_scan_than_the_party_flag_the_visit_into_review(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY), at(2, ENTRY), at(3, ENTRY)])
    token = ISSUER.issue('acct-1', T0, party_size=2)
    # Three stand at the scan of a party of two, and the gate has not yet learned where
    # holders stand: it cannot tell who came with whom, so it does not guess.
    outcome, _ = gate.check_in('gate_entry', token, T0 + 100 * MS)
    ledger = gate._ledger
    assert ledger.get_visit(outcome.visit_id).track_ids == ('1', '2', '3')
    assert gate.over_party_visit_ids == (outcome.visit_id,)
    assert gate.counters['tailgaters_flagged'] == 1
    assert 'tailgaters_unlinked' not in gate.counters
    # The visit ends into review: the receipt waits for staff, nobody billed unseen.
    updates = walk_out(gate, T0 + 20 * S, [1, 2, 3])
    assert [(u.status, u.visit_id) for u in updates] == [(VisitStatus.ENDED, outcome.visit_id)]
    (review,) = ledger.list_reviews(outcome.visit_id)
    assert review.reason == 'tailgater: 3 people walked in on a party of 2'
    assert gate.over_party_visit_ids == ()


def test_someone_walking_in_after_a_complete_party_is_a_flagged_tailgater(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY), at(2, ENTRY)])
    token = ISSUER.issue('acct-1', T0, party_size=2)
    outcome, _ = gate.check_in('gate_entry', token, T0 + 100 * MS)
    assert outcome.track_ids == ('1', '2')
    assert gate.over_party_visit_ids == () and 'tailgaters_flagged' not in gate.counters
    # The whole party stood at the scan; a third person walks in behind it.
    gate.on_tracks(T0 + 2 * S, [at(1, AISLE), at(2, AISLE), at(3, ENTRY)])
    ledger = gate._ledger
    assert ledger.get_visit(outcome.visit_id).track_ids == ('1', '2')
    assert ledger.visit_for_track('3') is None
    assert gate.unlinked_track_ids == ('3',)
    assert gate.counters['tailgaters_flagged'] == gate.counters['tailgaters_unlinked'] == 1
    # Still in the zone when the next snapshot comes: flagged once, still not linked.
    gate.on_tracks(T0 + 2500 * MS, [at(1, AISLE), at(2, AISLE), at(3, ENTRY)])
    assert gate.counters['tailgaters_flagged'] == 1
    # The party's visit ends without review: nobody was billed for the tailgater.
    updates = walk_out(gate, T0 + 20 * S, [1, 2, 3])
    assert [(u.status, u.visit_id) for u in updates] == [(VisitStatus.ENDED, outcome.visit_id)]
    assert ledger.list_reviews(outcome.visit_id) == []
    assert ledger.visit_for_track('3') is None


SCANNER = (0.3, 0.55)         # where holders stand to scan
BESIDE = (0.9, 0.35)          # 0.63 m from it, inside the entry zone
CLOSE_BESIDE = (0.45, 0.45)   # 0.18 m from it


def learn_scanner(gate, first_track=100):
    """Two scans of one person standing at the scanner teach the gate where it is."""
    for n in range(2):
        t = T0 + n * 10 * S
        track = first_track + n
        gate.on_tracks(t, [at(track, SCANNER)])
        gate.check_in('gate_entry', ISSUER.issue(f'acct-solo-{n}', t, party_size=1), t)
        walk_out(gate, t + 4 * S, [track])
    return T0 + 30 * S


def test_the_holder_at_the_learned_scanner_is_the_party_of_one(backend, store):
    gate = make_gate(backend, store)
    assert gate.scanner_spot('gate_entry') is None
    t = learn_scanner(gate)
    spot = gate.scanner_spot('gate_entry')
    assert spot == pytest.approx(SCANNER)
    gate.on_tracks(t, [at(1, BESIDE), at(2, SCANNER)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', t, party_size=1), t)
    ledger = gate._ledger
    assert outcome.track_ids == ('2',)
    assert ledger.visit_for_track('1') is None and gate.unlinked_track_ids == ('1',)
    assert gate.counters['tailgaters_unlinked'] == 1
    # The tailgater stays unlinked through the group window, and the visit needs no review.
    gate.on_tracks(t + S, [at(1, ENTRY), at(2, AISLE)])
    assert ledger.visit_for_track('1') is None
    walk_out(gate, t + 20 * S, [1, 2])
    assert ledger.list_reviews(outcome.visit_id) == []


def test_a_holder_not_clearly_nearest_the_scanner_sends_the_visit_to_review(backend, store):
    gate = make_gate(backend, store)
    t = learn_scanner(gate)
    gate.on_tracks(t, [at(1, CLOSE_BESIDE), at(2, SCANNER)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', t, party_size=1), t)
    assert outcome.track_ids == ('1', '2')
    assert 'tailgaters_unlinked' not in gate.counters
    walk_out(gate, t + 20 * S, [1, 2])
    (review,) = gate._ledger.list_reviews(outcome.visit_id)
    assert review.reason == 'tailgater: 2 people walked in on a party of 1'


def test_learning_the_scanner_can_be_switched_off(backend, store):
    gate = make_gate(backend, store, GateConfig(group_window_ns=3 * S, scanner_min_scans=0))
    t = learn_scanner(gate)
    assert gate.scanner_spot('gate_entry') is None
    gate.on_tracks(t, [at(1, BESIDE), at(2, SCANNER)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', t, party_size=1), t)
    assert outcome.track_ids == ('1', '2')
    assert gate.over_party_visit_ids == (outcome.visit_id,)


def test_a_party_as_stated_or_a_token_without_one_ends_without_review(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    stated, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0, party_size=2), T0)
    gate.on_tracks(T0 + S, [at(1, AISLE), at(2, ENTRY)])        # the companion, late
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE), at(2, AISLE), at(3, ENTRY)])
    unstated, _ = gate.check_in('gate_entry', ISSUER.issue('acct-2', T0), T0 + 10 * S)
    gate.on_tracks(T0 + 11 * S, [at(1, AISLE), at(2, AISLE), at(3, AISLE), at(4, ENTRY)])
    ledger = gate._ledger
    assert ledger.get_visit(stated.visit_id).track_ids == ('1', '2')
    assert ledger.get_visit(unstated.visit_id).track_ids == ('3', '4')
    assert 'tailgaters_flagged' not in gate.counters
    walk_out(gate, T0 + 20 * S, [1, 2, 3, 4])
    assert ledger.list_reviews(stated.visit_id) == []
    assert ledger.list_reviews(unstated.visit_id) == []


def test_a_track_just_outside_the_entry_zone_is_linked_within_the_margin(backend, store):
    gate = make_gate(backend, store, GateConfig(group_window_ns=3 * S, entry_margin_m=0.3))
    # Entry zone [0, 1.2] x [0, 0.8]: 0.2 m beyond its edge is in, 0.5 m is not.
    gate.on_tracks(T0, [at(1, (0.6, 1.0)), at(2, (0.6, 1.3))])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    assert outcome.track_ids == ('1',)
    with pytest.raises(ValueError, match='entry_margin_m'):
        GateConfig(entry_margin_m=-0.1)


def walk_out(gate, stamp_ns, ids):
    """Every track to the exit zone, then out of the tracks; return the updates."""
    updates = gate.on_tracks(stamp_ns, [at(i, EXIT) for i in ids])
    return updates + gate.on_tracks(stamp_ns + 100 * MS, [])


def test_the_visit_ends_once_every_track_has_left_through_the_exit(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY), at(2, ENTRY), at(3, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE), at(2, AISLE), at(3, AISLE)])
    # Two leave; the third walks into the exit zone and back again.
    assert gate.on_tracks(T0 + 20 * S, [at(1, EXIT), at(2, EXIT), at(3, EXIT)]) == []
    assert gate.on_tracks(T0 + 21 * S, [at(3, AISLE)]) == []
    assert gate._ledger.get_visit(outcome.visit_id).state == 'open'
    gate.on_tracks(T0 + 30 * S, [at(3, EXIT)])
    updates = gate.on_tracks(T0 + 31 * S, [at(3, OUTSIDE)])  # left the store bounds
    assert [(u.status, u.visit_id, u.track_ids, u.gate_id, u.stamp_ns) for u in updates] == [
        (VisitStatus.ENDED, outcome.visit_id, ('1', '2', '3'), 'gate_exit', T0 + 31 * S)]
    info = gate._ledger.get_visit(outcome.visit_id)
    assert (info.state, info.exit_seen_at_ns) == ('closing', T0 + 31 * S)
    assert gate.on_tracks(T0 + 32 * S, []) == [] and gate.open_visit_ids == ()


def test_a_track_lost_inside_the_store_ends_its_visit_into_review_after_a_while(
        backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY), at(2, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE)])  # track 2 vanished mid-store
    assert walk_out(gate, T0 + 20 * S, [1]) == []
    assert gate.counters['tracks_lost'] == 1
    ledger = gate._ledger
    assert ledger.get_visit(outcome.visit_id).state == 'open'
    # One of the party left by the exit: the other is taken as gone after the shorter wait.
    lost_after = CONFIG.party_left_after_ns
    assert lost_after < CONFIG.visit_lost_after_ns
    # Nobody of the visit seen since T0 + 20 s: not yet lost one tick before the limit.
    assert gate.on_tracks(T0 + 20 * S + lost_after, []) == []
    updates = gate.on_tracks(T0 + 21 * S + lost_after, [])
    assert [(u.status, u.visit_id, u.stamp_ns) for u in updates] == [
        (VisitStatus.ENDED, outcome.visit_id, T0 + 20 * S)]
    assert gate.counters['visits_lost_to_review'] == 1 and gate.open_visit_ids == ()
    info = ledger.get_visit(outcome.visit_id)
    assert (info.state, info.exit_seen_at_ns) == ('closing', T0 + 20 * S)
    # The receipt waits for staff; confirming the cart releases it.
    (review,) = ledger.list_reviews(outcome.visit_id)
    assert (review.event_id, review.sku, review.quantity_delta) == ('', '', 0)
    assert review.reason.startswith('visit_lost: 1 of 2 people')
    now = T0 + 200 * S + lost_after
    assert ledger.issue_receipt(outcome.visit_id, now, force=True).review_ids == (
        review.review_id,)
    with pytest.raises(LedgerError):
        ledger.resolve_review(review.review_id, 'staff-1', 'cart checked', 1, now)
    ledger.resolve_review(review.review_id, 'staff-1', 'cart checked on camera', 0, now)
    receipt = ledger.issue_receipt(outcome.visit_id, now, force=True)
    assert receipt.visit_id == outcome.visit_id and receipt.total_cents == 0


def test_a_visit_whose_people_were_all_lost_in_the_store_waits_the_longer_time(
        backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE)])
    gate.on_tracks(T0 + 11 * S, [])                     # lost mid-store, nobody left
    assert gate.on_tracks(T0 + 10 * S + CONFIG.party_left_after_ns + S, []) == []
    assert gate.open_visit_ids == (outcome.visit_id,)
    # No snapshot comes any more (the tracker stopped): the gate's clock ends the visit.
    assert gate.on_clock(T0 + 9 * S + CONFIG.visit_lost_after_ns) == []
    updates = gate.on_clock(T0 + 11 * S + CONFIG.visit_lost_after_ns)
    assert [(u.status, u.visit_id) for u in updates] == [(VisitStatus.ENDED, outcome.visit_id)]
    assert gate.counters['visits_lost_to_review'] == 1 and gate.open_visit_ids == ()


def test_a_shopper_track_leaving_by_the_staff_door_ends_its_visit_into_review(backend, store):
    # A shopper's track that walks out through the staff door: the person left, or the
    # track took over an associate's identity. Either way the visit ends now, and staff
    # check the cart, instead of the visit waiting for the lost-visit timeout.
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE)])
    assert gate.on_tracks(T0 + 20 * S, [at(1, STAFF_DOOR)]) == []
    updates = gate.on_tracks(T0 + 21 * S, [])
    assert [(u.status, u.visit_id, u.gate_id) for u in updates] == [
        (VisitStatus.ENDED, outcome.visit_id, 'gate_staff')]
    assert gate.counters['left_by_staff_door'] == 1 and gate.open_visit_ids == ()
    (review,) = gate._ledger.list_reviews(outcome.visit_id)
    assert review.reason == 'left_by_staff_door: track 1 left by gate_staff'


def test_a_coasting_prediction_does_not_take_a_track_out_of_the_exit_zone(backend, store):
    # The tracker publishes a hidden track at its predicted position, with the stamp of
    # the detection it last fused. A prediction drifting on past the exit zone's inner
    # edge is not a sighting: the track still left by the exit when it ends.
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    seen = T0 + 20 * S
    gate.on_tracks(seen, [TrackObservation('1', *EXIT, seen_ns=seen)])
    drifted = (EXIT[0], 1.2)                   # inside the store, north of the exit zone
    assert gate.on_tracks(seen + S, [TrackObservation('1', *drifted, seen_ns=seen)]) == []
    updates = gate.on_tracks(seen + 2 * S, [])
    assert [(u.status, u.visit_id, u.gate_id) for u in updates] == [
        (VisitStatus.ENDED, outcome.visit_id, 'gate_exit')]
    # A fresh sighting there does move it out: that person turned back into the store.
    gate.on_tracks(T0 + 40 * S, [at(2, ENTRY)])
    second, _ = gate.check_in('gate_entry', ISSUER.issue('acct-2', T0 + 40 * S), T0 + 40 * S)
    seen = T0 + 60 * S
    gate.on_tracks(seen, [TrackObservation('2', *EXIT, seen_ns=seen)])
    gate.on_tracks(seen + S, [TrackObservation('2', *drifted, seen_ns=seen + S)])
    assert gate.on_tracks(seen + 2 * S, []) == []
    assert gate.open_visit_ids == (second.visit_id,) and gate.counters['tracks_lost'] == 1


def test_a_track_lost_a_step_short_of_the_exit_zone_has_left_within_the_margin(
        backend, store):
    # The exit zone ends at y = 0.8 m; the track was last seen at 0.95 m, then lost.
    short = (EXIT[0], 0.95)
    for track, margin_m, ends in ((1, 0.3, True), (2, 0.0, False)):
        gate = make_gate(backend, store, dataclasses.replace(CONFIG, exit_margin_m=margin_m))
        start = T0 + 100 * S * track
        gate.on_tracks(start, [at(track, ENTRY)])
        outcome, _ = gate.check_in('gate_entry', ISSUER.issue(f'acct-{track}', start), start)
        assert outcome.track_ids == (str(track),)
        gate.on_tracks(start + 20 * S, [at(track, short)])
        updates = gate.on_tracks(start + 21 * S, [])
        assert [(u.status, u.visit_id, u.gate_id) for u in updates] == (
            [(VisitStatus.ENDED, outcome.visit_id, 'gate_exit')] if ends else []), margin_m
        assert (outcome.visit_id in gate.open_visit_ids) is not ends


def test_a_lost_person_under_a_new_track_id_rejoins_the_visit(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE)])
    gate.on_tracks(T0 + 11 * S, [])  # lost mid-store
    # Found again 3 s later, 1.5 m away, under a new id: it continues the visit.
    updates = gate.on_tracks(T0 + 14 * S, [at(5, (AISLE[0] + 1.5, AISLE[1]))])
    assert [(u.status, u.track_ids) for u in updates] == [(VisitStatus.STARTED, ('1', '5'))]
    assert gate.counters['tracks_rejoined'] == 1 and 'unlinked_shoppers' not in gate.counters
    assert gate._ledger.visit_for_track('5') == outcome.visit_id
    # Someone appearing far beyond walking reach is flagged, not linked.
    gate.on_tracks(T0 + 15 * S, [at(5, AISLE), at(6, (9.0, 5.0))])
    assert gate.unlinked_track_ids == ('6',)
    updates = walk_out(gate, T0 + 20 * S, [5])
    assert [(u.status, u.visit_id) for u in updates] == [(VisitStatus.ENDED, outcome.visit_id)]
    assert gate._ledger.list_reviews(outcome.visit_id) == []


def test_the_scan_links_the_holder_seen_at_the_scanner_before_the_late_report(
        backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    gate.on_tracks(T0 + 2 * S, [at(1, AISLE)])  # walked on before the scan was reported
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0 + 2500 * MS)
    assert outcome.track_ids == ('1',)
    # Beyond the look-back, nobody is taken.
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE), at(2, ENTRY)])
    gate.on_tracks(T0 + 14 * S, [at(1, AISLE), at(2, AISLE)])
    late, _ = gate.check_in('gate_entry', ISSUER.issue('acct-2', T0), T0 + 14 * S)
    assert late.track_ids == ()


def test_an_exit_in_dropped_snapshots_is_inferred_only_when_snapshots_were_dropped(
        backend, store):
    near_exit = (EXIT[0] - 1.0, EXIT[1] + 0.5)
    for track, missed in ((1, False), (2, True)):
        gate = make_gate(backend, store)
        gate.on_tracks(T0, [at(track, ENTRY)])
        outcome, _ = gate.check_in('gate_entry', ISSUER.issue(f'acct-{track}', T0), T0)
        gate.on_tracks(T0 + 10 * S, [at(track, AISLE)])
        gate.on_tracks(T0 + 12 * S, [at(track, near_exit)])
        # The snapshot with the track in the exit zone was dropped (queue full): 100 ms
        # later it is gone, too soon for a gap; only the caller knows snapshots were lost.
        updates = gate.on_tracks(T0 + 12100 * MS, [], missed_before=missed)
        found = [(u.status, u.visit_id, u.gate_id) for u in updates]
        if missed:
            assert found == [(VisitStatus.ENDED, outcome.visit_id, 'gate_exit')]
            assert gate.counters['exits_inferred_after_gap'] == 1
        else:
            assert found == [] and gate.counters['tracks_lost'] == 1


@pytest.mark.parametrize('kwargs', [
    {'group_window_ns': -1}, {'group_window_ns': 61 * S}, {'group_window_ns': 1.5},
    {'require_registered_accounts': 'yes'},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        GateConfig(**kwargs)


def test_the_config_is_built_from_the_shipped_gate_parameters():
    import yaml
    repo = Path(__file__).resolve().parent.parent
    params = yaml.safe_load((repo / 'config' / 'go_store.yaml').read_text())['gate'][
        'ros__parameters']
    config = GateConfig.from_parameters(params)
    assert config.group_window_ns == round(params['group_window_s'] * S)
    assert config.visit_lost_after_ns == round(params['visit_lost_after_s'] * S)
    assert config.entry_margin_m == params['entry_margin_m']
    assert config.scanner_min_scans == params['scanner_min_scans']
    with pytest.raises(ValueError, match='holder_margin_m'):
        GateConfig.from_parameters({**params, 'holder_margin_m': -1.0})
    with pytest.raises(KeyError):
        GateConfig.from_parameters({k: v for k, v in params.items() if k != 'scan_lookback_s'})
