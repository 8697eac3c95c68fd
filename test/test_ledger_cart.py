"""Cart events: idempotency, returns, review routing, rejections (SQLite and PostgreSQL)."""

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_ledger_backends import Backend, BACKENDS, CATALOG, CONFIG, open_backend, S, T0

from go_store_nodes.core.ledger import (
    CartEvent,
    EventOutcome,
    Ledger,
    LedgerConfig,
    ReviewReason,
)
from go_store_nodes.core.ledger.models import CartEventRow, ReviewItemRow


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def ledger(backend: Backend) -> Ledger:
    return backend.new_ledger()


def open_visit(ledger: Ledger, account_id: str = 'acct-1', tracks: tuple[str, ...] = ('t1',)
               ) -> str:
    ledger.register_account(account_id, T0)
    return ledger.open_visit(account_id, tracks, T0)


def pick(visit_id: str, event_id: str, sku: str, delta: int = 1, **kwargs: object
         ) -> CartEvent:
    return CartEvent(event_id=event_id, visit_id=visit_id, sku=sku, quantity_delta=delta,
                     stamp_ns=T0 + S, track_id='t1', **kwargs)  # type: ignore[arg-type]


def quantities(ledger: Ledger, visit_id: str) -> dict[str, int]:
    return {item.sku: item.quantity for item in ledger.get_cart(visit_id).items}


def event_row(ledger: Ledger, event_id: str) -> CartEventRow:
    with Session(ledger.engine) as session:
        row = session.get(CartEventRow, event_id)
        assert row is not None
        return row


def count_events(ledger: Ledger) -> int:
    with Session(ledger.engine) as session:
        return int(session.scalar(select(func.count()).select_from(CartEventRow)) or 0)


def test_duplicated_event_ids_change_nothing(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    event = pick(visit_id, 'cam3-000001', 'apple', 2, evidence_ids=('clip-1', 'clip-2'))
    assert ledger.apply_cart_event(event) is EventOutcome.APPLIED
    for _ in range(3):
        assert ledger.apply_cart_event(event) is EventOutcome.DUPLICATE
    assert quantities(ledger, visit_id) == {'apple': 2}
    assert count_events(ledger) == 1
    assert ledger.get_cart(visit_id).total_cents == 240


def test_duplicates_are_detected_after_a_restart(backend: Backend) -> None:
    first = backend.new_ledger()
    visit_id = open_visit(first)
    event = pick(visit_id, 'e-1', 'milk')
    assert first.apply_cart_event(event) is EventOutcome.APPLIED
    restarted = backend.new_ledger()
    assert restarted.apply_cart_event(event) is EventOutcome.DUPLICATE
    assert quantities(restarted, visit_id) == {'milk': 1}


def test_reused_event_id_with_other_content_is_a_conflict(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    assert ledger.apply_cart_event(pick(visit_id, 'e-1', 'apple')) is EventOutcome.APPLIED
    assert ledger.apply_cart_event(pick(visit_id, 'e-1', 'bread', 3)) is EventOutcome.CONFLICT
    assert quantities(ledger, visit_id) == {'apple': 1}


def test_return_reverses_a_line_down_to_zero(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    ledger.apply_cart_event(pick(visit_id, 'e-1', 'apple', 2))
    ledger.apply_cart_event(pick(visit_id, 'e-2', 'milk', 1))
    assert ledger.apply_cart_event(pick(visit_id, 'e-3', 'apple', -1)) is EventOutcome.APPLIED
    assert quantities(ledger, visit_id) == {'apple': 1, 'milk': 1}
    assert ledger.apply_cart_event(pick(visit_id, 'e-4', 'apple', -1)) is EventOutcome.APPLIED
    assert quantities(ledger, visit_id) == {'milk': 1}
    assert ledger.get_cart(visit_id).total_cents == 99
    assert ledger.list_reviews(visit_id) == []


def test_return_of_an_item_not_in_the_cart_becomes_a_review(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    outcome = ledger.apply_cart_event(pick(visit_id, 'e-1', 'bread', -1))
    assert outcome is EventOutcome.QUEUED_FOR_REVIEW
    assert quantities(ledger, visit_id) == {}
    [review] = ledger.list_reviews(visit_id)
    assert review.reason == ReviewReason.RETURN_NOT_IN_CART.value
    assert (review.sku, review.quantity_delta, review.state) == ('bread', -1, 'open')
    assert event_row(ledger, 'e-1').state == 'review'


def test_return_of_more_than_the_cart_holds_becomes_a_review(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    ledger.apply_cart_event(pick(visit_id, 'e-1', 'gum', 1))
    outcome = ledger.apply_cart_event(pick(visit_id, 'e-2', 'gum', -2))
    assert outcome is EventOutcome.QUEUED_FOR_REVIEW
    assert quantities(ledger, visit_id) == {'gum': 1}
    assert ledger.list_reviews(visit_id)[0].reason == ReviewReason.RETURN_EXCEEDS_CART.value


def test_flagged_event_waits_for_review_instead_of_changing_the_cart(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    outcome = ledger.apply_cart_event(pick(visit_id, 'e-1', 'apple', 1, needs_review=True))
    assert outcome is EventOutcome.QUEUED_FOR_REVIEW
    assert quantities(ledger, visit_id) == {}
    [review] = ledger.list_reviews()
    assert review.reason == ReviewReason.FLAGGED.value
    assert review.visit_id == visit_id


def test_perception_review_reason_is_kept_and_the_cart_lists_its_holds(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    ledger.apply_cart_event(pick(visit_id, 'e-1', 'gum'))
    ledger.apply_cart_event(pick(visit_id, 'e-2', 'apple', 1, needs_review=True,
                                 review_reason='tangled: two shoppers at bin 3'))
    [review] = ledger.list_reviews(visit_id)
    assert review.reason == 'tangled: two shoppers at bin 3'
    cart = ledger.get_cart(visit_id)
    assert (cart.account_id, cart.open_review_ids) == ('acct-1', (review.review_id,))
    assert [item.sku for item in cart.items] == ['gum']


def test_low_confidence_and_large_quantities_go_to_review(backend: Backend) -> None:
    ledger = backend.new_ledger(LedgerConfig(review_below_confidence=0.6, max_quantity_delta=5))
    visit_id = open_visit(ledger)
    assert ledger.apply_cart_event(pick(visit_id, 'e-1', 'apple', confidence=0.4)) \
        is EventOutcome.QUEUED_FOR_REVIEW
    assert ledger.apply_cart_event(pick(visit_id, 'e-2', 'apple', 6)) \
        is EventOutcome.QUEUED_FOR_REVIEW
    assert ledger.apply_cart_event(pick(visit_id, 'e-3', 'apple', 1, confidence=0.9)) \
        is EventOutcome.APPLIED
    reasons = [review.reason for review in ledger.list_reviews(visit_id)]
    assert sorted(reasons) == sorted([ReviewReason.LOW_CONFIDENCE.value,
                                      ReviewReason.LARGE_QUANTITY.value])
    assert quantities(ledger, visit_id) == {'apple': 1}


def test_unknown_sku_is_rejected_but_kept(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    event = pick(visit_id, 'e-1', 'caviar', evidence_ids=('clip-9',))
    assert ledger.apply_cart_event(event) is EventOutcome.REJECTED_UNKNOWN_SKU
    row = event_row(ledger, 'e-1')
    assert (row.state, row.reject_reason, row.sku) == ('rejected', 'unknown_sku', 'caviar')
    assert row.evidence_ids == '["clip-9"]'
    assert quantities(ledger, visit_id) == {}
    assert ledger.apply_cart_event(event) is EventOutcome.DUPLICATE


def test_event_for_an_unknown_visit_is_not_stored(ledger: Ledger) -> None:
    event = pick('00000000-0000-0000-0000-000000000000', 'e-1', 'apple')
    assert ledger.apply_cart_event(event) is EventOutcome.UNKNOWN_VISIT
    assert count_events(ledger) == 0


def test_unit_price_is_fixed_at_the_time_of_the_pick(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    ledger.apply_cart_event(pick(visit_id, 'e-1', 'apple'))
    ledger.set_catalog({**CATALOG, 'apple': 999, 'milk': 50})
    ledger.apply_cart_event(pick(visit_id, 'e-2', 'apple'))
    ledger.apply_cart_event(pick(visit_id, 'e-3', 'milk'))
    cart = {item.sku: item for item in ledger.get_cart(visit_id).items}
    assert (cart['apple'].quantity, cart['apple'].unit_price_cents) == (2, 120)
    assert cart['milk'].unit_price_cents == 50


def test_late_events_apply_during_grace_and_are_rejected_after_the_receipt(
        ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    ledger.apply_cart_event(pick(visit_id, 'e-1', 'apple'))
    assert ledger.mark_exit(visit_id, T0 + 10 * S)
    assert ledger.apply_cart_event(pick(visit_id, 'e-2', 'milk')) is EventOutcome.APPLIED
    receipt = ledger.issue_receipt(visit_id, T0 + 60 * S)
    assert receipt.total_cents == 219  # type: ignore[union-attr]
    late = pick(visit_id, 'e-3', 'bread')
    assert ledger.apply_cart_event(late) is EventOutcome.REJECTED_VISIT_CLOSED
    row = event_row(ledger, 'e-3')
    assert (row.state, row.reject_reason) == ('rejected', 'visit_closed')


def test_review_rows_reference_their_events(ledger: Ledger) -> None:
    visit_id = open_visit(ledger)
    ledger.apply_cart_event(pick(visit_id, 'e-1', 'apple', needs_review=True))
    ledger.apply_cart_event(pick(visit_id, 'e-1', 'apple', needs_review=True))
    with Session(ledger.engine) as session:
        rows = session.scalars(select(ReviewItemRow)).all()
    assert [row.event_id for row in rows] == ['e-1']


@pytest.mark.parametrize('kwargs', [
    {'quantity_delta': 0},
    {'quantity_delta': True},
    {'event_id': ''},
    {'sku': 'x' * 65},
    {'confidence': 1.5},
    {'confidence': float('nan')},
    {'stamp_ns': -1},
    {'evidence_ids': ['clip']},
    {'review_reason': 'r' * 65},
])
def test_invalid_events_are_refused_on_construction(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {'event_id': 'e', 'visit_id': 'v', 'sku': 'apple',
                                 'quantity_delta': 1, 'stamp_ns': T0}
    fields.update(kwargs)
    with pytest.raises(ValueError):
        CartEvent(**fields)  # type: ignore[arg-type]


def test_default_config_is_used_when_none_is_given(backend: Backend) -> None:
    ledger = Ledger(backend.new_engine(), None, CATALOG)
    assert ledger.config == LedgerConfig()
    assert CONFIG.grace_period_ns == 30 * S
