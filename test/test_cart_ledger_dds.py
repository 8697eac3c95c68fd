"""Cart ledger and gate nodes over real DDS: carts, duplicates, receipts, reviews.

Both nodes run in their own processes on one test database (SQLite in tmp_path, or a fresh
PostgreSQL schema when GO_STORE_TEST_POSTGRES_URL is set); a plain rclpy probe plays
scanner, tracker and association. No fixed sleeps: the probe waits for matching, answers
and, to show that something did not happen, for later receipt checks in diagnostics.
"""

from __future__ import annotations

import signal
import time

from go_store.msg import CartEvent, Receipt, Visit
from go_store.srv import GetCart, ListReviews, ResolveReview
import pytest
from std_msgs.msg import Header
from test_gate_dds import (  # noqa: F401 - fixtures
    AISLE,
    backend,
    database_url,
    ENTRY,
    EXIT,
    probe,
    StoreProcesses,
)

from go_store_nodes.core.ledger import TokenIssuer
from go_store_nodes.nodes.cart_ledger import DURABLE_QOS
from go_store_nodes.ros.ledger_conversions import ns_to_stamp

pytestmark = pytest.mark.slow
LEDGER = '/cart_ledger'
S = 1_000_000_000


@pytest.fixture
def store(repo, tmp_path, backend):  # noqa: F811 - the imported fixture
    processes = StoreProcesses(repo, tmp_path, database_url(backend), ('gate', 'cart_ledger'))
    yield processes
    processes.stop()


def ready(store, probe):  # noqa: F811
    probe.wait_for_gate(store)
    probe.wait_for_cart_ledger(store)


def enter(store, probe, account, now, **tracks):  # noqa: F811
    """Scan in with these tracks at the entry; return the visit id once it is STARTED."""
    if tracks:
        probe.tracks(now, **tracks)
    result = probe.check_in(TokenIssuer(store.key).issue(account, now), now)
    assert result.accepted, result.detail
    probe.spin_until(lambda: probe.visit_with(result.visit_id, Visit.STARTED, len(tracks)),
                     'the visit to start with its tracks', store)
    return result.visit_id


def event(visit_id, event_id, sku, delta, track=1, stamp_ns=None, **fields):
    return CartEvent(
        header=Header(stamp=ns_to_stamp(stamp_ns or time.time_ns()), frame_id='map'),
        event_id=event_id, visit_id=visit_id, account_id='', track_id=track, sku=sku,
        quantity_delta=delta, confidence=fields.pop('confidence', 0.95), **fields)


def cart(probe, visit_id):  # noqa: F811
    return probe.call(probe.get_cart_client, GetCart.Request(visit_id=visit_id))


def lines(response):
    return {(line.sku, line.name, line.quantity, line.unit_price_cents, line.line_total_cents)
            for line in response.lines}


def receipts_of(probe, visit_id, status):  # noqa: F811
    return [r for r in probe.receipts if r.visit_id == visit_id and r.status == status]


def later_receipt_checks(store, probe, checks=3):  # noqa: F811
    """Wait until the cart ledger reports ``checks`` more receipt checks than now."""
    start = probe.counter(LEDGER, 'receipt_checks')
    probe.spin_until(lambda: probe.counter(LEDGER, 'receipt_checks') >= start + checks,
                     'later receipt checks', store)


def test_duplicated_and_bad_cart_events_change_nothing(store, probe):  # noqa: F811
    ready(store, probe)
    now = time.time_ns()
    visit_id = enter(store, probe, 'acct-dup', now, t1=ENTRY)
    pick = event(visit_id, 'ev-1', 'fizz_cola_330ml', 2, stamp_ns=now + S)
    for _ in range(3):
        probe.events_pub.publish(pick)
    probe.events_pub.publish(event(visit_id, 'ev-2', 'no_such_sku', 1))
    probe.events_pub.publish(event('no-such-visit', 'ev-3', 'fizz_cola_330ml', 1))
    probe.events_pub.publish(event(visit_id, 'ev-4', 'fizz_cola_330ml', 1, confidence=2.0))
    probe.events_pub.publish(event(visit_id, 'ev-5', 'banana_single', 1))  # the marker
    response = probe.spin_until(
        lambda: (r := cart(probe, visit_id)).found and len(r.lines) == 2 and r, 'the marker')
    assert lines(response) == {('fizz_cola_330ml', 'Fizz cola 330 ml', 2, 129, 258),
                               ('banana_single', 'Banana', 1, 35, 35)}
    assert (response.account_id, response.total_cents, response.currency) == (
        'acct-dup', 293, 'EUR')
    probe.spin_until(lambda: probe.counter(LEDGER, 'events_duplicate') == 2
                     and probe.counter(LEDGER, 'events_rejected_unknown_sku') == 1
                     and probe.counter(LEDGER, 'events_unknown_visit') == 1
                     and probe.counter(LEDGER, 'dropped_malformed_events') == 1,
                     'the bad events counted in diagnostics', store)
    unknown = cart(probe, 'no-such-visit')
    assert not unknown.found and 'unknown visit' in unknown.message
    store.check_alive()


def test_group_of_three_two_pick_then_exit_gives_one_receipt(store, probe):  # noqa: F811
    ready(store, probe)
    now = time.time_ns()
    visit_id = enter(store, probe, 'acct-group', now, t11=ENTRY, t12=ENTRY, t13=ENTRY)
    probe.tracks(now + S, t11=AISLE, t12=AISLE, t13=AISLE)
    probe.events_pub.publish(event(visit_id, 'g-1', 'coffee_beans_250g', 1, track=11))
    probe.events_pub.publish(event(visit_id, 'g-2', 'apple_red_single', 3, track=12))
    probe.events_pub.publish(event(visit_id, 'g-3', 'apple_red_single', -1, track=12))
    probe.spin_until(lambda: cart(probe, visit_id).total_cents == 599 + 2 * 49,
                     'the picks in the cart', store)
    probe.tracks(now + 2 * S, t11=EXIT, t12=EXIT, t13=EXIT)
    probe.tracks(now + 2 * S + 100_000_000)
    probe.spin_until(lambda: probe.visit_with(visit_id, Visit.ENDED), 'Visit ENDED', store)
    issued = probe.spin_until(lambda: receipts_of(probe, visit_id, Receipt.ISSUED),
                              'the receipt', store)
    later_receipt_checks(store, probe)
    assert len([r for r in probe.receipts if r.visit_id == visit_id]) == 1
    receipt = issued[0]
    assert receipt.receipt_id and receipt.account_id == 'acct-group'
    assert {(line.sku, line.name, line.quantity, line.unit_price_cents,
             line.line_total_cents) for line in receipt.lines} == {
        ('coffee_beans_250g', 'Bean whole coffee beans 250 g', 1, 599, 599),
        ('apple_red_single', 'Red apple', 2, 49, 98)}
    assert (receipt.total_cents, receipt.currency, list(receipt.open_review_ids)) == (
        697, 'EUR', [])
    closed = cart(probe, visit_id)
    assert closed.found and closed.total_cents == 697
    # Events after the receipt are kept as rejected and change nothing.
    probe.events_pub.publish(event(visit_id, 'g-4', 'banana_single', 1, track=13))
    probe.spin_until(lambda: probe.counter(LEDGER, 'events_rejected_visit_closed') == 1,
                     'the late event counted', store)
    assert cart(probe, visit_id).total_cents == 697


def test_a_receipt_with_an_open_review_is_held_until_resolved(store, probe):  # noqa: F811
    ready(store, probe)
    now = time.time_ns()
    visit_id = enter(store, probe, 'acct-review', now, t21=ENTRY)
    probe.events_pub.publish(event(visit_id, 'r-1', 'milk_whole_1l', 1, track=21))
    probe.events_pub.publish(event(visit_id, 'r-2', 'choco_dark_100g', 1, track=21,
                                   needs_review=True, review_reason='tangled with 22'))
    response = probe.spin_until(
        lambda: (r := cart(probe, visit_id)).open_review_ids and r.lines and r,
        'the pick and the review')
    review_id = response.open_review_ids[0]
    probe.tracks(now + S, t21=EXIT)
    probe.tracks(now + S + 100_000_000)
    held = probe.spin_until(lambda: receipts_of(probe, visit_id, Receipt.HELD_FOR_REVIEW),
                            'the held notice', store)
    assert list(held[0].open_review_ids) == [review_id] and held[0].receipt_id == ''
    later_receipt_checks(store, probe)
    assert len(receipts_of(probe, visit_id, Receipt.HELD_FOR_REVIEW)) == 1, 'once, not per tick'
    assert not receipts_of(probe, visit_id, Receipt.ISSUED)

    reviews = probe.call(probe.list_reviews_client, ListReviews.Request(visit_id=''))
    item = next(i for i in reviews.items if i.review_id == review_id)
    assert (item.visit_id, item.event_id, item.sku, item.quantity_delta, item.reason,
            item.state) == (visit_id, 'r-2', 'choco_dark_100g', 1, 'tangled with 22', 'open')
    refused = probe.call(probe.resolve_client, ResolveReview.Request(
        review_id=review_id, quantity=1, resolved_by='staff-7', note=''))
    assert not refused.success and 'note' in refused.message
    unknown = probe.call(probe.resolve_client, ResolveReview.Request(
        review_id='nope', quantity=1, resolved_by='staff-7', note='video'))
    assert not unknown.success and 'unknown review' in unknown.message
    resolved = probe.call(probe.resolve_client, ResolveReview.Request(
        review_id=review_id, quantity=1, resolved_by='staff-7', note='seen on camera 3'))
    assert resolved.success, resolved.message

    issued = probe.spin_until(lambda: receipts_of(probe, visit_id, Receipt.ISSUED),
                              'the receipt after the review', store)
    assert {(line.sku, line.quantity) for line in issued[0].lines} == {
        ('milk_whole_1l', 1), ('choco_dark_100g', 1)}
    assert issued[0].total_cents == 129 + 199
    reviews = probe.call(probe.list_reviews_client, ListReviews.Request(visit_id=visit_id))
    assert [(i.state, i.resolved_by, i.note) for i in reviews.items] == [
        ('resolved', 'staff-7', 'seen on camera 3')]
    assert 'resolved by staff-7' in store.output('cart_ledger')
    assert 'seen on camera 3' in store.output('cart_ledger')


def test_a_restarted_ledger_gives_late_subscribers_the_receipts_announced_before(
        repo, tmp_path, backend, probe):  # noqa: F811
    """``receipts`` is durable across a kill: its history is refilled from the database.

    A consumer that subscribes after the ledger was killed and restarted (one that was
    starting, or reconnecting, when the receipt went out) still gets the receipt.
    """
    store = StoreProcesses(repo, tmp_path, database_url(backend), ('gate', 'cart_ledger'))
    try:
        ready(store, probe)
        now = time.time_ns()
        visit_id = enter(store, probe, 'acct-late-consumer', now, t21=ENTRY)
        probe.tracks(now + S, t21=AISLE)
        probe.events_pub.publish(event(visit_id, 'l-1', 'coffee_beans_250g', 1, track=21))
        probe.spin_until(lambda: cart(probe, visit_id).total_cents == 599,
                         'the pick in the cart', store)
        probe.tracks(now + 2 * S, t21=EXIT)
        probe.tracks(now + 2 * S + 100_000_000)
        issued = probe.spin_until(lambda: receipts_of(probe, visit_id, Receipt.ISSUED),
                                  'the receipt', store)
        # Recorded as announced (counted after the record): not announced again as new.
        probe.spin_until(lambda: probe.counter(LEDGER, 'receipts_issued') == 1,
                         'the receipt recorded as announced', store)
        assert store.kill('cart_ledger') == -signal.SIGKILL
        store.start('cart_ledger')
        probe.wait_for_cart_ledger(store)
        later_receipt_checks(store, probe)
        assert probe.counter(LEDGER, 'receipts_issued') == 0  # the new process reports
        late: list[Receipt] = []
        probe.node.create_subscription(Receipt, 'receipts', late.append, DURABLE_QOS)
        probe.spin_until(lambda: [r for r in late if r.visit_id == visit_id],
                         'the receipt at a subscriber that came after the restart', store)
        assert {(r.receipt_id, r.total_cents, r.status) for r in late
                if r.visit_id == visit_id} == {(issued[0].receipt_id, 599, Receipt.ISSUED)}
        assert probe.counter(LEDGER, 'receipts_republished') == 1
        # Issued once: the repeats are the same receipt.
        assert {r.receipt_id for r in receipts_of(probe, visit_id, Receipt.ISSUED)} == \
            {issued[0].receipt_id}
    finally:
        store.stop()
