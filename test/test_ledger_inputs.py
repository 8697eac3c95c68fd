"""Hostile or faulty cart events: long reasons, huge evidence, wrong account, old stamps.

Message conversion on messages built in memory, then the ledger core. Nothing is dropped:
what does not fit is trimmed, what does not match its visit waits for a person.
"""

from pathlib import Path
from typing import Iterator

from go_store.msg import CartEvent as CartEventMsg
import pytest
from std_msgs.msg import Header
from test_ledger_backends import Backend, BACKENDS, open_backend, S, T0

from go_store_nodes.core.ledger import (
    CartEvent,
    EventOutcome,
    EVIDENCE_ID_LENGTH,
    MAX_EVIDENCE_IDS,
)
from go_store_nodes.core.ledger.models import REASON_LENGTH
from go_store_nodes.ros.ledger_conversions import cart_event_from_msg, ns_to_stamp


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


def message(**fields) -> CartEventMsg:
    msg = CartEventMsg(header=Header(stamp=ns_to_stamp(fields.pop('stamp_ns', T0 + S))),
                       event_id='e-1', visit_id='8c2d6a0e-0b1c-4f0e-9a53-3f1ab0a5d5a1',
                       account_id='acct-1', track_id=7, sku='apple_red_single',
                       quantity_delta=1, confidence=0.9)
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def test_a_long_review_reason_is_truncated_not_dropped():
    event, trimmed = cart_event_from_msg(message(needs_review=True, review_reason='x' * 300))
    assert len(event.review_reason) == REASON_LENGTH and event.needs_review
    assert trimmed == ('review_reason',)


def test_evidence_ids_are_bounded_in_count_and_length():
    huge = ['e' * 5000] * 1000  # about 5 MB
    event, trimmed = cart_event_from_msg(message(evidence_ids=huge))
    assert len(event.evidence_ids) == MAX_EVIDENCE_IDS
    assert all(len(item) == EVIDENCE_ID_LENGTH for item in event.evidence_ids)
    assert trimmed == ('evidence_ids', 'evidence_id_length')
    with pytest.raises(ValueError):
        CartEvent('e-2', 'v', 'apple', 1, T0, evidence_ids=('x',) * (MAX_EVIDENCE_IDS + 1))


def test_the_account_is_carried_to_the_ledger():
    event, _ = cart_event_from_msg(message())
    assert event.account_id == 'acct-1'
    event, _ = cart_event_from_msg(message(account_id=''))
    assert event.account_id is None


def open_visit(backend: Backend):
    ledger = backend.new_ledger()
    ledger.register_account('acct-1', T0)
    return ledger, ledger.open_visit('acct-1', ('7',), T0)


def test_an_event_naming_another_account_goes_to_review(backend):
    ledger, visit_id = open_visit(backend)
    outcome = ledger.apply_cart_event(CartEvent(
        'e-1', visit_id, 'apple', 2, T0 + S, account_id='acct-other'))
    assert outcome is EventOutcome.QUEUED_FOR_REVIEW
    assert ledger.get_cart(visit_id).items == ()
    assert [r.reason for r in ledger.list_reviews(visit_id)] == ['account_mismatch']


def test_an_event_stamped_long_before_its_visit_goes_to_review(backend):
    ledger, visit_id = open_visit(backend)
    outcome = ledger.apply_cart_event(CartEvent(
        'e-1', visit_id, 'apple', 2, T0 - 3600 * S, account_id='acct-1'))
    assert outcome is EventOutcome.QUEUED_FOR_REVIEW
    assert [r.reason for r in ledger.list_reviews(visit_id)] == ['stamped_before_visit']
    # Within the tolerance (sensor clocks a little behind the gate's) it applies.
    assert ledger.apply_cart_event(CartEvent(
        'e-2', visit_id, 'apple', 1, T0 - 5 * S, account_id='acct-1')
    ) is EventOutcome.APPLIED


def test_a_return_delivered_before_its_pick_is_applied_once_the_pick_arrives(backend):
    ledger, visit_id = open_visit(backend)
    # Stamp order: pick 2 at +1 s, return 1 at +2 s; delivered the other way round.
    assert ledger.apply_cart_event(CartEvent(
        'ret', visit_id, 'apple', -1, T0 + 2 * S)) is EventOutcome.QUEUED_FOR_REVIEW
    assert ledger.apply_cart_event(CartEvent(
        'pick', visit_id, 'apple', 2, T0 + S)) is EventOutcome.APPLIED
    assert [(i.sku, i.quantity) for i in ledger.get_cart(visit_id).items] == [('apple', 1)]
    assert ledger.get_cart(visit_id).open_review_ids == ()
    [review] = ledger.list_reviews(visit_id, include_resolved=True)
    assert (review.state, review.resolved_by, review.resolved_quantity) == (
        'resolved', 'ledger', -1)
    # A return stamped before the pick is not explained by it: it keeps waiting.
    assert ledger.apply_cart_event(CartEvent(
        'ret-early', visit_id, 'milk', -1, T0)) is EventOutcome.QUEUED_FOR_REVIEW
    assert ledger.apply_cart_event(CartEvent(
        'pick-milk', visit_id, 'milk', 1, T0 + S)) is EventOutcome.APPLIED
    assert len(ledger.get_cart(visit_id).open_review_ids) == 1
