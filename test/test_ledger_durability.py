"""Durability of the cart ledger through the node processes, driven by the busy truth feed.

The gate and cart_ledger run in their own processes on one database (a SQLite file, or a
fresh PostgreSQL schema when GO_STORE_TEST_POSTGRES_URL is set). The input is the truth
feed of config/scenarios/busy.yaml (go_store_nodes.core.ledger.truth_feed: a test harness,
never a perception output), played by ``FeedPlayer`` as fast as the nodes acknowledge it.
No fixed sleeps: the player waits on matching, CheckInResult, Visit updates, get_cart, the
diagnostics counters and (for charges) the database itself.

The truth stamps are simulated time (November 2023) and the nodes run on wall time, so
every grace period is over when an exit is recorded: the receipt follows at the next
receipt check. The player therefore gets a visit's cart events acknowledged before it
sends the snapshot that ends the visit.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import signal

from go_store.msg import Visit
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_gate_dds import database_url
from test_ledger_backends import BACKENDS, open_backend

from go_store_nodes.core.ledger.models import CartEventRow, ChargeRow, ReceiptRow, VisitRow
from go_store_nodes.core.ledger.truth_feed import FeedCartEvent, FeedTracks, simulate_feed
from go_store_nodes.ros.ledger_node_bench import FeedPlayer, LedgerNodes, NODES

pytestmark = pytest.mark.slow
LEDGER = '/cart_ledger'
OVERLAP = 5  # already acknowledged events a reconnecting upstream sends again
SHORT_GRACE = {'grace_period_s': 0.3, 'receipt_check_period_s': 0.1}

# A slow disk: each cart event takes 60 ms more to commit (the process killed mid-stream).
SLOW_APPLY = (
    'import time\n'
    'from go_store_nodes.core.ledger.ledger import Ledger\n'
    '_apply = Ledger.apply_cart_event\n'
    'def _slow(self, *args, **kwargs):\n'
    '    time.sleep(0.06)\n'
    '    return _apply(self, *args, **kwargs)\n'
    'Ledger.apply_cart_event = _slow\n')
# Test hooks run in the cart_ledger process before the node starts (LedgerNodes.start).
HOOKS = {
    # Killed after transaction 1 (receipt written, visit closed), before the charge claim.
    'after_receipt': (
        'import os, signal\n'
        'from go_store_nodes.core.ledger.ledger import Ledger\n'
        'def _die(self, receipt_id, now_ns):\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n'
        'Ledger._settle_receipt = _die\n'),
    # Killed inside the provider call: the charge row is pending (claimed, not recorded).
    'in_provider': (
        'import os, signal\n'
        'from go_store_nodes.core.ledger.payment import LedgerPaymentProvider\n'
        'def _die(self, request):\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n'
        'LedgerPaymentProvider.charge = _die\n'),
    # The provider is unreachable once; the node lives on.
    'provider_fails_once': (
        'from go_store_nodes.core.ledger.payment import LedgerPaymentProvider\n'
        '_charge, _failed = LedgerPaymentProvider.charge, []\n'
        'def _flaky(self, request):\n'
        '    if not _failed:\n'
        '        _failed.append(request.charge_id)\n'
        "        raise ConnectionError('payment provider unreachable (test hook)')\n"
        '    return _charge(self, request)\n'
        'LedgerPaymentProvider.charge = _flaky\n'),
}


@pytest.fixture(scope='module')
def busy(repo):
    return simulate_feed(repo / 'config' / 'scenarios' / 'busy.yaml')


def receipt_view(msg):
    """Return what must be identical between runs: account, lines, total, currency."""
    return (msg.account_id, tuple(sorted(
        (line.sku, line.name, line.quantity, line.unit_price_cents, line.line_total_cents)
        for line in msg.lines)), msg.total_cents, msg.currency)


def truth_view(feed, account):
    receipt = feed.receipts[account]
    return (tuple(sorted((line.sku, line.quantity, line.unit_price_cents)
                         for line in receipt.lines)), receipt.total_cents)


def message_view(msg):
    return (tuple(sorted((line.sku, line.quantity, line.unit_price_cents)
                         for line in msg.lines)), msg.total_cents)


@dataclass
class Books:
    """The ledger database after a run: visits, receipts, charges and cart events."""

    visits: dict[str, tuple[str, str]]  # visit id -> (account, state)
    receipts: dict[str, ReceiptRow]  # visit id -> receipt
    charges: list[ChargeRow]
    events: list[CartEventRow]


def books(backend) -> Books:
    engine = backend.new_engine()
    with Session(engine) as session:
        visits = {row.visit_id: (row.account_id, row.state)
                  for row in session.scalars(select(VisitRow))}
        receipts = {row.visit_id: row for row in session.scalars(select(ReceiptRow))}
        charges = list(session.scalars(select(ChargeRow)))
        events = list(session.scalars(select(CartEventRow)))
        session.expunge_all()
    engine.dispose()
    return Books(visits, receipts, charges, events)


def check_books(feed, player, found: Books) -> None:
    """Every visit has one receipt equal to the truth, one succeeded charge; no event twice."""
    accounts = {player.visit_of[a]: a for a in feed.parties}
    assert set(found.visits) == set(accounts)
    assert set(found.receipts) == set(accounts)
    for visit_id, receipt in found.receipts.items():
        lines = tuple(sorted((line['sku'], line['quantity'], line['unit_price_cents'])
                             for line in json.loads(receipt.lines_json)))
        assert (lines, receipt.total_cents) == truth_view(feed, accounts[visit_id]), visit_id
        assert found.visits[visit_id] == (accounts[visit_id], 'closed')
    by_receipt = {}
    for charge in found.charges:
        assert charge.receipt_id not in by_receipt, 'two charges for one receipt'
        by_receipt[charge.receipt_id] = charge
    assert set(by_receipt) == {r.receipt_id for r in found.receipts.values()}
    for receipt in found.receipts.values():
        charge = by_receipt[receipt.receipt_id]
        assert (charge.state, charge.amount_cents) == ('succeeded', receipt.total_cents)
        assert charge.provider_ref == f'ledger:{charge.charge_id}'  # one idempotency key
    # Each truth pick/return is stored once, applied; nothing else was stored.
    assert sorted(e.event_id for e in found.events) == \
        sorted(e.event_id for e in feed.cart_events)
    assert {e.state for e in found.events} == {'applied'}


def one_receipt_each(feed, player) -> dict[str, object]:
    """Return account -> its one ISSUED receipt message (asserting there is exactly one)."""
    receipts = {}
    for account in feed.parties:
        issued = player.issued(player.visit_of[account])
        assert len(issued) == 1, f'{account}: {len(issued)} receipts published'
        receipts[account] = issued[0]
    return receipts


@dataclass
class Reference:
    """An uninterrupted run of the busy feed through both nodes."""

    backend_name: str
    receipts: dict[str, tuple]  # account -> receipt_view
    tracks: dict[str, tuple[list[int], list[int]]]  # account -> (STARTED, ENDED) track ids


@pytest.fixture(scope='module', params=BACKENDS)
def reference(request, busy, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f'reference-{request.param}')
    with open_backend(request.param, workdir) as backend:
        nodes = LedgerNodes(workdir, database_url(backend), **SHORT_GRACE)
        for name in NODES:
            nodes.start(name)
        player = FeedPlayer(busy, nodes)
        try:
            player.wait_for_gate()
            player.wait_for_cart_ledger()
            player.play()
            player.wait_for_receipts(busy.ending_accounts)
            # Later receipt checks publish nothing more.
            checks = player.counter(LEDGER, 'receipt_checks')
            player.spin_until(lambda: player.counter(LEDGER, 'receipt_checks') >= checks + 3,
                              'later receipt checks')
            receipts = one_receipt_each(busy, player)
            check_books(busy, player, books(backend))
            tracks = {}
            for account in busy.parties:
                visit_id = player.visit_of[account]
                assert len(player.visit_with(visit_id, Visit.ENDED)) == 1
                tracks[account] = (
                    sorted(player.visit_with(visit_id, Visit.STARTED)[-1].track_ids),
                    sorted(player.visit_with(visit_id, Visit.ENDED)[0].track_ids))
            assert player.retransmissions == 0
        finally:
            player.close()
            codes = nodes.stop()
        assert all(code in (0, -signal.SIGINT) for code in codes.values()), codes
    # The nodes are stopped: the other tests' gates must be the only ones on the graph.
    return Reference(request.param, {a: receipt_view(r) for a, r in receipts.items()},
                     tracks)


def test_uninterrupted_busy_run_gives_the_truth_receipts(reference, busy):
    assert set(reference.receipts) == set(busy.receipts)
    for account, (_, lines, total, currency) in reference.receipts.items():
        assert (tuple((sku, qty, unit) for sku, _, qty, unit, _ in lines), total) == \
            truth_view(busy, account)
        assert currency == 'EUR'


def test_a_group_of_three_on_one_scan_gets_one_receipt(reference, busy):
    groups = {a: people for a, people in busy.parties.items() if len(people) == 3}
    assert groups, 'busy has a group of three'
    for account, people in groups.items():
        started, ended = reference.tracks[account]
        assert started == ended == sorted(people)
        picked_by = {e.track_id for e in busy.cart_events if e.account_id == account}
        assert len(picked_by) >= 2, 'several members picked for the one account'
        assert reference.receipts[account][2] == busy.receipts[account].total_cents


def kill_point(feed) -> int:
    """Index of the middle of the first run of >= 6 cart events after two exits."""
    exits = 0
    index = 0
    items = feed.items
    while index < len(items):
        if isinstance(items[index], FeedTracks) and items[index].ended:
            exits += 1
        if exits >= 2 and isinstance(items[index], FeedCartEvent):
            end = index
            while end < len(items) and isinstance(items[end], FeedCartEvent):
                end += 1
            if end - index >= 6:
                return index
            index = end
            continue
        index += 1
    raise AssertionError('no run of cart events to kill the ledger in')


def committed(backend, event_ids) -> int:
    """Return how many of these cart events are in the database."""
    engine = backend.new_engine()
    with Session(engine) as session:
        count = len(session.scalars(select(CartEventRow.event_id).where(
            CartEventRow.event_id.in_(list(event_ids)))).all())
    engine.dispose()
    return count


def test_cart_ledger_killed_mid_stream_loses_and_doubles_nothing(reference, busy, tmp_path):
    with open_backend(reference.backend_name, tmp_path) as backend:
        nodes = LedgerNodes(tmp_path, database_url(backend), **SHORT_GRACE)
        nodes.start('gate')
        nodes.start('cart_ledger', hook=SLOW_APPLY)
        player = FeedPlayer(busy, nodes)
        try:
            player.wait_for_gate()
            player.wait_for_cart_ledger()
            start = kill_point(busy)
            player.play(stop=lambda item: player.position >= start)
            player.wait_for_receipts()
            receipts_out = len(player.ended)
            assert 0 < receipts_out < len(busy.parties)
            # A burst in flight; SIGKILL once part of it is committed (the first process
            # applies slowly, so the rest is not yet).
            in_flight = player.burst(6)
            burst_ids = [event.event_id for event in player.outstanding]
            player.spin_until(lambda: committed(backend, burst_ids) >= 2,
                              'part of the burst to be committed')
            matched = player.events_matched_total
            assert nodes.kill('cart_ledger') == -signal.SIGKILL
            applied_before_kill = committed(backend, burst_ids)
            assert 0 < applied_before_kill < in_flight
            nodes.start('cart_ledger')
            player.wait_for_cart_ledger(matched_before=matched)
            again = player.resend(OVERLAP)
            assert len(again) == OVERLAP + in_flight
            player.play()
            player.wait_for_receipts(busy.ending_accounts)
            duplicates = OVERLAP + applied_before_kill
            player.spin_until(
                lambda: player.counter(LEDGER, 'events_duplicate') >= duplicates
                and player.counter(LEDGER, 'receipts_issued')
                == len(busy.parties) - receipts_out,
                'the restarted ledger to count the re-sent events as duplicates')
            if player.retransmissions == 0:
                assert player.counter(LEDGER, 'events_duplicate') == duplicates
            assert player.counter(LEDGER, 'events_rejected_visit_closed') == 0
            # Reported with -s.
            print(f'burst of {in_flight}, {applied_before_kill} committed before the kill; '
                  f'{player.counter(LEDGER, "events_duplicate")} duplicates after the '
                  f'restart (overlap {OVERLAP}); receipts before the kill {receipts_out}/'
                  f'{len(busy.parties)}; {player.retransmissions} events re-sent for want '
                  'of an acknowledgement')
            receipts = one_receipt_each(busy, player)
            for account, msg in receipts.items():
                assert receipt_view(msg) == reference.receipts[account], account
                assert message_view(msg) == truth_view(busy, account), account
            found = books(backend)
            check_books(busy, player, found)
            assert {player.visit_of[a]: r.receipt_id for a, r in receipts.items()} == \
                {visit: row.receipt_id for visit, row in found.receipts.items()}
        finally:
            player.close()
            nodes.stop()


@pytest.mark.parametrize('backend_name', BACKENDS)
@pytest.mark.parametrize('hook', sorted(HOOKS))
def test_a_crash_between_receipt_and_charge_gives_one_charge(hook, backend_name, busy,
                                                             tmp_path):
    with open_backend(backend_name, tmp_path) as backend:
        nodes = LedgerNodes(tmp_path, database_url(backend), **SHORT_GRACE)
        nodes.start('gate')
        nodes.start('cart_ledger', hook=HOOKS[hook])
        if hook != 'provider_fails_once':
            nodes.expect_exit('cart_ledger')
        player = FeedPlayer(busy, nodes)
        try:
            player.wait_for_gate()
            player.wait_for_cart_ledger()
            # Up to the first exit: its receipt is the first the ledger writes.
            first_exit = next(i for i, item in enumerate(busy.items)
                              if isinstance(item, FeedTracks) and item.ended)
            player.play(stop=lambda item: player.position > first_exit, ack=False)
            visit_id = player.visit_of[player.ended[0]]
            if hook == 'provider_fails_once':
                player.spin_until(lambda: player.counter(LEDGER, 'errors') >= 1,
                                  'the failed charge to be reported')
            else:
                matched = player.events_matched_total
                assert nodes.wait_exit('cart_ledger') == -signal.SIGKILL
                crashed = books(backend)
                receipt = crashed.receipts[visit_id]
                charges = [c for c in crashed.charges if c.receipt_id == receipt.receipt_id]
                assert [c.state for c in charges] == \
                    ([] if hook == 'after_receipt' else ['pending'])
                nodes.start('cart_ledger')
                player.wait_for_cart_ledger(matched_before=matched)
            player.resend(0)  # what the dead ledger may not have applied

            def charged():
                found = books(backend)
                receipt = found.receipts[visit_id]
                return [c for c in found.charges if c.receipt_id == receipt.receipt_id
                        and c.state == 'succeeded']
            player.spin_until(charged, 'settle_pending to charge the receipt')
            player.play()
            # Every receipt is announced, the one caught by the crash or the failed charge
            # too (it was written before the charge, and announced from the ledger).
            player.wait_for_receipts(busy.ending_accounts)
            receipts = one_receipt_each(busy, player)
            for account, msg in receipts.items():
                assert message_view(msg) == truth_view(busy, account), account
            player.spin_until(lambda: len(books(backend).charges) == len(busy.parties),
                              'every receipt charged')
            check_books(busy, player, books(backend))
        finally:
            player.close()
            nodes.stop()
