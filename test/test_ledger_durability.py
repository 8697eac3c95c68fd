"""Durability of the cart ledger and the gate through the node processes (busy truth feed).

The gate and cart_ledger run in their own processes on one database (a SQLite file, or a
fresh PostgreSQL schema when GO_STORE_TEST_POSTGRES_URL is set). The input is the truth
feed of config/scenarios/busy.yaml (go_store_testing.truth_feed: a test harness, never a
perception output), played by ``FeedPlayer`` as fast as the nodes acknowledge it, stamped
with the wall clock the nodes run on. No fixed sleeps: the player waits on matching,
CheckInResult, Visit updates, the cart ledger's own acknowledgements (``cart/event_acks``,
sent once an event is committed), the diagnostics counters and the database itself.

Delivery is what the product gives an upstream: an event is done when the ledger has
acknowledged it; anything not acknowledged is re-sent until it is (after a restart, a few
acknowledged ones as well, as a reconnecting sender would). The kills land where they
fall: SIGKILL at random (seeded) points while a burst larger than the ledger's input queue
is being committed, and the gate killed inside the transaction that opens a visit.
The player gets a visit's cart events acknowledged before it sends the snapshot that ends
it (grace periods are short).
"""
from __future__ import annotations

from dataclasses import dataclass
import json
import random
import signal
import time

from go_store.msg import Visit
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_gate_dds import database_url
from test_ledger_backends import BACKENDS, open_backend

from go_store_nodes.core.ledger.models import CartEventRow, ChargeRow, ReceiptRow, VisitRow
from go_store_testing.ledger_node_bench import FeedPlayer, LedgerNodes, NODES
from go_store_testing.truth_feed import FeedCartEvent, FeedTracks, simulate_feed

pytestmark = pytest.mark.slow
LEDGER = '/cart_ledger'
OVERLAP = 5  # already acknowledged events a reconnecting upstream sends again
SHORT_GRACE = {'grace_period_s': 0.3, 'receipt_check_period_s': 0.1}
# The ledger's input queue holds 4 events; bursts of 12 overflow it (then re-sent).
QUEUE_CAPACITY = 4
BURST = 12
LEDGER_KILLS = 3
SEED = 20231102

# The gate dies inside the transaction that opens the third visit: rows written, not
# committed. Its restart (without this hook) must give the re-sent scan a visit.
GATE_DIES_OPENING_A_VISIT = (
    'import os, signal\n'
    'from go_store_nodes.core.ledger.ledger import Ledger\n'
    '_write, _opened = Ledger._write, []\n'
    'def _dying(self, work, *args, **kwargs):\n'
    "    if 'open_visit_for_scan' in work.__qualname__:\n"
    '        _opened.append(1)\n'
    '        if len(_opened) == 3:\n'
    '            def _work_then_die(session):\n'
    '                work(session)\n'
    '                session.flush()\n'
    '                os.kill(os.getpid(), signal.SIGKILL)\n'
    '            return _write(self, _work_then_die, *args, **kwargs)\n'
    '    return _write(self, work, *args, **kwargs)\n'
    'Ledger._write = _dying\n')

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


def one_receipt_each(feed, player, restarted: bool = False) -> dict[str, object]:
    """Return account -> its one ISSUED receipt message.

    Exactly one message per visit, unless the ledger was restarted: a restarted ledger
    publishes the receipts announced last again (the topic's durable history), and one
    killed between publishing and recording repeats it. Then the repeats must be the same
    receipt: one receipt_id, identical content.
    """
    receipts = {}
    for account in feed.parties:
        issued = player.issued(player.visit_of[account])
        assert issued, f'{account}: no receipt published'
        if not restarted:
            assert len(issued) == 1, f'{account}: {len(issued)} receipts published'
        assert len({msg.receipt_id for msg in issued}) == 1, \
            f'{account}: {len(issued)} receipt messages with different receipt ids'
        assert len({receipt_view(msg) for msg in issued}) == 1, \
            f'{account}: repeated receipt messages differ'
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


def kill_points(feed, count: int, rng: random.Random) -> list[int]:
    """Feed positions (cart events after the first exit) where the ledger is killed."""
    first_exit = next(i for i, item in enumerate(feed.items)
                      if isinstance(item, FeedTracks) and item.ended)
    candidates = [i for i, item in enumerate(feed.items)
                  if i > first_exit and isinstance(item, FeedCartEvent)]
    return sorted(rng.sample(candidates, count))


def committed(backend, event_ids) -> int:
    """Return how many of these cart events are in the database."""
    engine = backend.new_engine()
    with Session(engine) as session:
        count = len(session.scalars(select(CartEventRow.event_id).where(
            CartEventRow.event_id.in_(list(event_ids)))).all())
    engine.dispose()
    return count


def spin_for(player, seconds: float) -> None:
    """Keep the player's executor turning for ``seconds`` (the nodes work meanwhile)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        player.executor.spin_once(timeout_sec=0.001)


def test_kills_inside_commits_lose_and_double_nothing(reference, busy, tmp_path):
    rng = random.Random(SEED)
    with open_backend(reference.backend_name, tmp_path) as backend:
        nodes = LedgerNodes(tmp_path, database_url(backend),
                            node_overrides={'cart_ledger': {
                                'input_queue_capacity': QUEUE_CAPACITY}},
                            **SHORT_GRACE)
        nodes.start('gate', hook=GATE_DIES_OPENING_A_VISIT)
        nodes.restart_on_exit.add('gate')
        nodes.start('cart_ledger')
        player = FeedPlayer(busy, nodes, window=BURST, retransmit_s=1.0)
        report = []
        try:
            player.wait_for_gate()
            player.wait_for_cart_ledger()
            for position in kill_points(busy, LEDGER_KILLS, rng):
                player.play(stop=lambda item, at=position: player.position >= at, ack=False)
                # More in flight than the ledger's queue holds: the overflow is not
                # acknowledged and comes again. SIGKILL at a random point of the commits.
                in_flight = player.burst(BURST)
                burst_ids = [event.event_id for event in player.outstanding]
                spin_for(player, rng.uniform(0.0, 0.25))
                matched = player.events_matched_total
                assert nodes.kill('cart_ledger') == -signal.SIGKILL
                report.append((in_flight, len(burst_ids), committed(backend, burst_ids)))
                nodes.start('cart_ledger')
                player.wait_for_cart_ledger(matched_before=matched)
                player.resend(OVERLAP)
            player.play()
            player.wait_for_receipts(busy.ending_accounts)
            player.spin_until(lambda: len(books(backend).charges) == len(busy.parties),
                              'every receipt written and charged')
            print(f'ledger killed {LEDGER_KILLS} times, (published, outstanding, committed '
                  f'at the kill): {report}; gate exits {nodes.exits}; '
                  f'{player.retransmissions} events and {player.scans_resent} scans re-sent '
                  'for want of an acknowledgement')
            assert nodes.exits == [('gate', -signal.SIGKILL)]
            assert player.scans_resent >= 1
            # Every event acknowledged; re-sent ones that were committed come back as
            # duplicates, nothing as a conflict or a rejection. A return that overtook its
            # pick (the pick refused by the full queue, re-sent later) waits for review
            # until the pick comes; the ledger then applies it in stamp order (check_books
            # below: every event applied).
            assert set(player.acks) == {event.event_id for event in busy.cart_events}
            assert {o for outcomes in player.acks.values() for o in outcomes} <= {
                'applied', 'duplicate', 'review'}
            deltas = {event.event_id: event.quantity_delta for event in busy.cart_events}
            overtaken = [event_id for event_id, outcomes in player.acks.items()
                         if 'review' in outcomes]
            assert all(deltas[event_id] < 0 for event_id in overtaken), overtaken
            assert any('duplicate' in outcomes for outcomes in player.acks.values())
            receipts = one_receipt_each(busy, player, restarted=True)
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
