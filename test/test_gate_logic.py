"""Gate logic (pure, on the ledger): check-in refusals, group entry, associates, exits.

Runs on SQLite and, when GO_STORE_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

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
from go_store_nodes.core.ledger import TokenConfig, TokenIssuer
from go_store_nodes.core.ledger.tokens import generate_private_key
from go_store_nodes.core.store import load_store_description

KEY = generate_private_key()
TOKENS = TokenConfig(default_ttl_ns=60 * S, clock_skew_ns=5 * S)
ISSUER = TokenIssuer(KEY, TOKENS)
CONFIG = GateConfig(group_window_ns=3 * S)
# Zones of config/store.yaml: entry [0, 1.2] x [0, 0.8], exit [8.8, 10] x [0, 0.8].
ENTRY = (0.6, 0.4)
EXIT = (9.4, 0.4)
AISLE = (5.0, 3.0)
OUTSIDE = (9.4, -0.5)
MS = 1_000_000


@pytest.fixture(scope='module')
def store(store_path):
    return load_store_description(store_path)


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


def test_a_track_lost_inside_the_store_keeps_the_visit_open(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY), at(2, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE)])  # track 2 vanished mid-store
    assert walk_out(gate, T0 + 20 * S, [1]) == []
    assert gate.counters['tracks_lost'] == 1
    assert gate._ledger.get_visit(outcome.visit_id).state == 'open'


def test_a_restarted_gate_recovers_open_visits_from_the_ledger(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY), at(2, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    restarted = make_gate(backend, store)
    restarted.on_tracks(T0 + 10 * S, [at(1, AISLE), at(2, AISLE), at(7, ENTRY)])
    assert restarted.open_visit_ids == (outcome.visit_id,)
    updates = walk_out(restarted, T0 + 20 * S, [1, 2])
    assert [(u.status, u.visit_id, u.track_ids) for u in updates] == [
        (VisitStatus.ENDED, outcome.visit_id, ('1', '2'))]


def test_out_of_order_snapshots_are_dropped(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    assert gate.on_tracks(T0 - S, []) == []
    assert gate.counters['dropped_out_of_order_tracks'] == 1


@pytest.mark.parametrize('kwargs', [
    {'group_window_ns': -1}, {'group_window_ns': 61 * S}, {'group_window_ns': 1.5},
    {'require_registered_accounts': 'yes'},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        GateConfig(**kwargs)
