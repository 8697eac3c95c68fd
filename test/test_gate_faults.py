"""Gate logic under faults: clock jumps and offsets, missed snapshots, crash windows.

Each test reproduces a fault seen when the gate was probed as an attacker and as a failing
store would probe it; ``now_ns`` is the gate's own clock, stamps are what senders wrote.
Runs on SQLite and, when GO_STORE_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy.exc import OperationalError
from test_gate_logic import (
    AISLE,
    at,
    CONFIG,
    ENTRY,
    EXIT,
    ISSUER,
    KEY,
    MS,
    TOKENS,
)
from test_ledger_backends import Backend, BACKENDS, open_backend, S, T0

from go_store_nodes.core.gate import GateLogic, VisitStatus
from go_store_nodes.core.ledger import Ledger
from go_store_nodes.core.ledger.ledger import NS_PER_DAY

YEAR_2038_NS = 2_147_483_647 * S


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


def make_gate(backend, store, config=CONFIG):
    return GateLogic(store, backend.new_ledger(), KEY.public_key(), config, TOKENS)


def ended(updates):
    return [u.visit_id for u in updates if u.status is VisitStatus.ENDED]


def test_a_snapshot_from_the_future_is_refused_and_later_ones_still_count(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)], now_ns=T0)
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0, now_ns=T0)
    assert outcome.track_ids == ('1',)
    # A tracker clock jump: one snapshot stamped in 2038, the store still in its present.
    assert gate.on_tracks(YEAR_2038_NS, [at(1, AISLE)], now_ns=T0 + S) == []
    assert gate.counters['refused_future_tracks'] == 1
    gate.on_tracks(T0 + 2 * S, [at(1, EXIT)], now_ns=T0 + 2 * S)
    updates = gate.on_tracks(T0 + 2 * S + 100 * MS, [], now_ns=T0 + 2 * S + 100 * MS)
    assert ended(updates) == [outcome.visit_id]
    assert 'dropped_out_of_order_tracks' not in gate.counters


def test_a_back_dated_scan_of_an_old_token_is_expired_on_the_gate_clock(backend, store):
    gate = make_gate(backend, store)
    month_ago = T0 - 30 * NS_PER_DAY
    token = ISSUER.issue('acct-1', month_ago)
    outcome, updates = gate.check_in('gate_entry', token, month_ago + S, now_ns=T0)
    assert (outcome.accepted, outcome.reason, updates) == (False, 'expired', [])
    # The token is not spent: it was refused.
    assert gate._ledger.visit_for_track('1') is None


def test_a_scanner_clock_ahead_links_the_shopper_and_bills_no_stranger(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)], now_ns=T0)
    # The scanner's clock runs 20 s ahead of the store's; its stamp is only compared.
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0 + 20 * S,
                               now_ns=T0 + 100 * MS)
    assert outcome.accepted and outcome.track_ids == ('1',)
    assert gate.counters['scan_clock_offset'] == 1
    # Two strangers come through the entry 10 and 20 s later, without scanning.
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE), at(2, ENTRY)], now_ns=T0 + 10 * S)
    gate.on_tracks(T0 + 20 * S, [at(1, AISLE), at(2, AISLE), at(3, ENTRY)],
                   now_ns=T0 + 20 * S)
    gate.on_tracks(T0 + 21 * S, [at(1, AISLE), at(2, AISLE), at(3, AISLE)],
                   now_ns=T0 + 21 * S)
    assert gate._ledger.get_visit(outcome.visit_id).track_ids == ('1',)
    assert gate._ledger.visit_for_track('2') is None
    assert gate._ledger.visit_for_track('3') is None
    assert gate.unlinked_track_ids == ('2', '3')
    assert gate.counters['unlinked_shoppers'] == 2


def test_an_exit_inside_missed_snapshots_still_ends_the_visit(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    # Walking towards the exit; then the snapshots of 3 s are lost (a stalled gate).
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE)])
    gate.on_tracks(T0 + 11 * S, [at(1, (8.0, 0.6))])
    updates = gate.on_tracks(T0 + 14 * S, [])
    assert ended(updates) == [outcome.visit_id]
    assert gate.counters['exits_inferred_after_gap'] == 1
    assert gate._ledger.get_visit(outcome.visit_id).exit_seen_at_ns == T0 + 14 * S


def test_a_track_lost_in_the_aisle_after_a_gap_does_not_end_the_visit(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    gate.on_tracks(T0 + 10 * S, [at(1, AISLE)])
    assert gate.on_tracks(T0 + 14 * S, []) == []
    assert gate._ledger.get_visit(outcome.visit_id).state == 'open'


def test_a_check_in_that_links_no_track_ends_when_its_window_closes(backend, store):
    gate = make_gate(backend, store)
    outcome, _ = gate.check_in('gate_entry', ISSUER.issue('acct-1', T0), T0)
    assert outcome.accepted and outcome.track_ids == ()
    assert gate.on_tracks(T0 + S, []) == []
    updates = gate.on_tracks(T0 + 4 * S, [])
    assert ended(updates) == [outcome.visit_id]
    assert gate._ledger.get_visit(outcome.visit_id).state == 'closing'
    assert gate.open_visit_ids == ()
    assert gate.counters['visits_ended_without_tracks'] == 1


def fail_once_opening(monkeypatch):
    """Make the first transaction that opens a visit fail like a lost connection."""
    original = Ledger._write
    failed = []

    def flaky(self, work, *args, **kwargs):
        if 'open_visit' in work.__qualname__ and not failed:
            failed.append(work.__qualname__)
            raise OperationalError('INSERT INTO visits', {}, Exception('connection lost'))
        return original(self, work, *args, **kwargs)

    monkeypatch.setattr(Ledger, '_write', flaky)
    return failed


def test_a_fault_while_opening_the_visit_leaves_the_token_usable(backend, store, monkeypatch):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    token = ISSUER.issue('acct-1', T0)
    failed = fail_once_opening(monkeypatch)
    with pytest.raises(OperationalError):
        gate.check_in('gate_entry', token, T0, now_ns=T0)
    assert failed
    # The shopper scans again: neither the token nor a visit was written.
    outcome, _ = gate.check_in('gate_entry', token, T0 + S, now_ns=T0 + S)
    assert (outcome.accepted, outcome.reason, outcome.track_ids) == (True, '', ('1',))


def test_the_same_scan_retried_after_a_gate_restart_gets_its_visit(backend, store):
    gate = make_gate(backend, store)
    gate.on_tracks(T0, [at(1, ENTRY)])
    token = ISSUER.issue('acct-1', T0)
    outcome, _ = gate.check_in('gate_entry', token, T0, now_ns=T0)
    restarted = make_gate(backend, store)  # the gate died before answering
    retried, updates = restarted.check_in('gate_entry', token, T0, now_ns=T0 + 2 * S)
    assert (retried.accepted, retried.visit_id, retried.track_ids) == (
        True, outcome.visit_id, ('1',))
    assert [u.status for u in updates] == [VisitStatus.STARTED]
    assert restarted.counters['scans_retried'] == 1
    # A new scan of the same QR code (another stamp) is a replay.
    replay, _ = restarted.check_in('gate_entry', token, T0 + 3 * S, now_ns=T0 + 3 * S)
    assert (replay.accepted, replay.reason) == (False, 'replayed')
