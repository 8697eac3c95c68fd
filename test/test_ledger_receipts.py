"""Receipts, reviews and charges: grace period, holds, group entry, crash recovery."""

from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_ledger_backends import Backend, BACKENDS, open_backend, S, T0

from go_store_nodes.core.ledger import (
    CartEvent,
    ChargeRequest,
    ChargeResult,
    ChargeState,
    EventOutcome,
    HeldForReview,
    Ledger,
    LedgerError,
    Receipt,
)
from go_store_nodes.core.ledger.models import ChargeRow, ReceiptRow

GRACE = 30 * S


class SimulatedCrash(BaseException):
    """Stands for the process dying at a chosen point."""


class CountingProvider:
    """A fake card processor that honours idempotency keys like a real one must."""

    def __init__(self, crash_after_charging: int = 0, decline: bool = False) -> None:
        """Optionally crash after charging, or decline every card."""
        self.calls: list[str] = []
        self.money_taken: Counter[str] = Counter()
        self.outcomes: dict[str, ChargeResult] = {}
        self.crash_after_charging = crash_after_charging
        self.decline = decline

    @property
    def name(self) -> str:
        return 'fakecard'

    def charge(self, request: ChargeRequest) -> ChargeResult:
        self.calls.append(request.idempotency_key)
        if request.idempotency_key not in self.outcomes:
            if self.decline:
                result = ChargeResult(ChargeState.FAILED, failure_reason='card declined')
            else:
                self.money_taken[request.receipt_id] += request.amount_cents
                result = ChargeResult(ChargeState.SUCCEEDED, f'fc-{len(self.outcomes)}')
            self.outcomes[request.idempotency_key] = result
        if self.crash_after_charging > 0:
            self.crash_after_charging -= 1
            raise SimulatedCrash('died after the processor took the money')
        return self.outcomes[request.idempotency_key]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def ledger(backend: Backend) -> Ledger:
    return backend.new_ledger()


def start_visit(ledger: Ledger, tracks: tuple[str, ...] = ('t1',), account_id: str = 'acct-1'
                ) -> str:
    ledger.register_account(account_id, T0)
    return ledger.open_visit(account_id, tracks, T0)


def event(visit_id: str, event_id: str, sku: str, delta: int = 1, track_id: str = 't1',
          needs_review: bool = False) -> CartEvent:
    return CartEvent(event_id=event_id, visit_id=visit_id, sku=sku, quantity_delta=delta,
                     stamp_ns=T0 + S, track_id=track_id, needs_review=needs_review)


def issued(result: object) -> Receipt:
    assert isinstance(result, Receipt), result
    return result


def count(ledger: Ledger, model: type) -> int:
    with Session(ledger.engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_group_of_three_on_one_scan_gets_one_visit_and_one_receipt(ledger: Ledger) -> None:
    visit_id = start_visit(ledger, ('t-parent', 't-child-1', 't-child-2'))
    for track_id in ('t-parent', 't-child-1', 't-child-2'):
        assert ledger.visit_for_track(track_id) == visit_id
    assert ledger.get_visit(visit_id).track_ids == ('t-child-1', 't-child-2', 't-parent')
    ledger.apply_cart_event(event(visit_id, 'e-1', 'apple', 2, 't-parent'))
    ledger.apply_cart_event(event(visit_id, 'e-2', 'gum', 1, 't-child-1'))
    ledger.apply_cart_event(event(visit_id, 'e-3', 'milk', 1, 't-child-2'))
    ledger.mark_exit(visit_id, T0 + 100 * S)
    receipt = issued(ledger.issue_receipt(visit_id, T0 + 100 * S + GRACE))
    assert [(item.sku, item.quantity) for item in receipt.items] == [
        ('apple', 2), ('gum', 1), ('milk', 1)]
    assert receipt.total_cents == 2 * 120 + 75 + 99
    assert receipt.currency == 'EUR'
    assert receipt.charge is not None and receipt.charge.state is ChargeState.SUCCEEDED
    assert receipt.charge.amount_cents == receipt.total_cents
    assert count(ledger, ReceiptRow) == 1
    assert count(ledger, ChargeRow) == 1
    assert ledger.visit_for_track('t-parent') is None


def test_a_track_cannot_be_in_two_open_visits(ledger: Ledger) -> None:
    start_visit(ledger, ('t1', 't2'))
    ledger.register_account('acct-2', T0)
    with pytest.raises(LedgerError):
        ledger.open_visit('acct-2', ('t2',), T0 + S)


def test_receipt_waits_for_the_grace_period(ledger: Ledger) -> None:
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'bread'))
    with pytest.raises(LedgerError):
        ledger.issue_receipt(visit_id, T0 + 10 * S)  # no exit yet
    exit_ns = T0 + 50 * S
    assert ledger.mark_exit(visit_id, exit_ns)
    assert not ledger.mark_exit(visit_id, exit_ns + S)  # the first exit time is kept
    assert ledger.due_receipts(exit_ns + GRACE - 1) == []
    with pytest.raises(LedgerError):
        ledger.issue_receipt(visit_id, exit_ns + GRACE - 1)
    assert ledger.due_receipts(exit_ns + GRACE) == [visit_id]
    [receipt] = ledger.process_due(exit_ns + GRACE)
    assert issued(receipt).total_cents == 250
    assert ledger.due_receipts(exit_ns + GRACE + S) == []


def test_needs_review_holds_the_receipt_until_resolved(ledger: Ledger) -> None:
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'apple'))
    outcome = ledger.apply_cart_event(event(visit_id, 'e-2', 'bread', 2, needs_review=True))
    assert outcome is EventOutcome.QUEUED_FOR_REVIEW
    ledger.mark_exit(visit_id, T0 + 10 * S)
    now = T0 + 10 * S + GRACE
    held = ledger.issue_receipt(visit_id, now)
    assert isinstance(held, HeldForReview)
    [review] = ledger.list_reviews(visit_id)
    assert held.review_ids == (review.review_id,)
    assert ledger.due_receipts(now) == [visit_id]  # still due, still held
    assert count(ledger, ReceiptRow) == 0

    with pytest.raises(ValueError):
        ledger.resolve_review(review.review_id, 'clerk-7', '   ', 1, now)
    resolved = ledger.resolve_review(
        review.review_id, 'clerk-7', 'camera 4 shows one loaf taken, one put back', 1, now + S)
    assert (resolved.state, resolved.resolved_by, resolved.resolved_quantity) == (
        'resolved', 'clerk-7', 1)
    assert resolved.resolution_note == 'camera 4 shows one loaf taken, one put back'
    assert resolved.resolved_at_ns == now + S
    # Repeating the same decision is harmless; a different one is refused.
    assert ledger.resolve_review(
        review.review_id, 'clerk-7', 'camera 4 shows one loaf taken, one put back', 1,
        now + 2 * S) == resolved
    with pytest.raises(LedgerError):
        ledger.resolve_review(review.review_id, 'clerk-8', 'no, two', 2, now + 3 * S)

    assert ledger.list_reviews() == []
    [logged] = ledger.list_reviews(visit_id, include_resolved=True)
    assert logged == resolved
    receipt = issued(ledger.issue_receipt(visit_id, now + 5 * S))
    assert {item.sku: item.quantity for item in receipt.items} == {'apple': 1, 'bread': 1}
    assert receipt.total_cents == 120 + 250


def test_dismissed_review_leaves_the_cart_unchanged(ledger: Ledger) -> None:
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'gum'))
    ledger.apply_cart_event(event(visit_id, 'e-2', 'milk', -1))  # return of nothing
    [review] = ledger.list_reviews(visit_id)
    ledger.resolve_review(review.review_id, 'clerk-1', 'shopper never had milk', 0, T0 + S)
    assert [(item.sku, item.quantity) for item in ledger.get_cart(visit_id).items] == [
        ('gum', 1)]
    ledger.mark_exit(visit_id, T0 + S)
    assert issued(ledger.issue_receipt(visit_id, T0 + S + GRACE)).total_cents == 75


def test_resolution_cannot_drive_a_line_negative(ledger: Ledger) -> None:
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'milk', -1))
    [review] = ledger.list_reviews(visit_id)
    with pytest.raises(LedgerError):
        ledger.resolve_review(review.review_id, 'clerk-1', 'remove one milk', -1, T0 + S)
    assert ledger.list_reviews(visit_id)[0].state == 'open'


def test_issue_receipt_is_idempotent(backend: Backend) -> None:
    provider = CountingProvider()
    ledger = backend.new_ledger(payment_provider=provider)
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'apple', 3))
    ledger.mark_exit(visit_id, T0)
    first = issued(ledger.issue_receipt(visit_id, T0 + GRACE))
    second = issued(ledger.issue_receipt(visit_id, T0 + GRACE + 5 * S))
    assert first == second
    assert ledger.get_receipt(visit_id) == first
    assert len(provider.calls) == 1
    assert provider.money_taken[first.receipt_id] == 360


def test_crash_between_receipt_and_charge_is_settled_once(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    first = backend.new_ledger()
    visit_ids = [start_visit(first, (f't{n}',), f'acct-{n}') for n in range(3)]
    for n, visit_id in enumerate(visit_ids):
        first.apply_cart_event(event(visit_id, f'e-{n}', 'bread', n + 1, f't{n}'))
        first.mark_exit(visit_id, T0)

    def crash(*args: object) -> None:
        raise SimulatedCrash('died after writing the receipt')

    monkeypatch.setattr(first, '_settle_receipt', crash)
    for visit_id in visit_ids:
        with pytest.raises(SimulatedCrash):
            first.issue_receipt(visit_id, T0 + GRACE)
    assert count(first, ReceiptRow) == 3
    assert count(first, ChargeRow) == 0

    provider = CountingProvider()
    restarted = backend.new_ledger(payment_provider=provider)
    charges = restarted.settle_pending(T0 + GRACE + S)
    assert len(charges) == 3
    assert all(charge.state is ChargeState.SUCCEEDED for charge in charges)
    assert restarted.settle_pending(T0 + GRACE + 2 * S) == []
    assert len(provider.calls) == 3
    assert sorted(provider.money_taken.values()) == [250, 500, 750]
    assert count(restarted, ChargeRow) == 3
    for visit_id in visit_ids:  # reissuing finds the receipt and its charge
        receipt = issued(restarted.issue_receipt(visit_id, T0 + GRACE + 3 * S))
        assert receipt.charge is not None and receipt.charge.state is ChargeState.SUCCEEDED
    assert len(provider.calls) == 3


def test_receipts_written_before_a_crash_are_still_announced_once(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    first = backend.new_ledger()
    visit_ids = [start_visit(first, (f't{n}',), f'acct-{n}') for n in range(2)]
    for n, visit_id in enumerate(visit_ids):
        first.apply_cart_event(event(visit_id, f'e-{n}', 'bread', 1, f't{n}'))
        first.mark_exit(visit_id, T0)
    announced = issued(first.issue_receipt(visit_ids[0], T0 + GRACE))
    assert [r.receipt_id for r in first.unpublished_receipts()] == [announced.receipt_id]
    assert first.mark_receipt_published(announced.receipt_id, T0 + GRACE)
    assert not first.mark_receipt_published(announced.receipt_id, T0 + GRACE + S)

    def crash(*args: object) -> None:
        raise SimulatedCrash('died after writing the receipt')

    monkeypatch.setattr(first, '_settle_receipt', crash)
    with pytest.raises(SimulatedCrash):
        first.issue_receipt(visit_ids[1], T0 + GRACE)
    restarted = backend.new_ledger()
    waiting = restarted.unpublished_receipts()
    assert [r.visit_id for r in waiting] == [visit_ids[1]]
    assert waiting[0].total_cents == 250 and waiting[0].charge is None
    assert restarted.mark_receipt_published(waiting[0].receipt_id, T0 + GRACE + S)
    assert restarted.unpublished_receipts() == []


def test_crash_after_the_processor_took_the_money_charges_once(backend: Backend) -> None:
    provider = CountingProvider(crash_after_charging=1)
    ledger = backend.new_ledger(payment_provider=provider)
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'gum', 2))
    ledger.mark_exit(visit_id, T0)
    with pytest.raises(SimulatedCrash):
        ledger.issue_receipt(visit_id, T0 + GRACE)
    receipt = ledger.get_receipt(visit_id)
    assert receipt is not None and receipt.charge is not None
    assert receipt.charge.state is ChargeState.PENDING

    restarted = backend.new_ledger(payment_provider=provider)
    [charge] = restarted.settle_pending(T0 + GRACE + S)
    assert charge.state is ChargeState.SUCCEEDED
    assert charge.charge_id == receipt.charge.charge_id
    assert provider.calls == [charge.charge_id, charge.charge_id]  # same idempotency key
    assert provider.money_taken[receipt.receipt_id] == 150
    assert restarted.settle_pending(T0 + GRACE + 2 * S) == []


def test_declined_charge_is_recorded_and_not_retried_blindly(backend: Backend) -> None:
    provider = CountingProvider(decline=True)
    ledger = backend.new_ledger(payment_provider=provider)
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'milk'))
    ledger.mark_exit(visit_id, T0)
    receipt = issued(ledger.issue_receipt(visit_id, T0 + GRACE))
    assert receipt.charge is not None
    assert receipt.charge.state is ChargeState.FAILED
    assert receipt.charge.failure_reason == 'card declined'
    assert ledger.settle_pending(T0 + GRACE + S) == []
    assert len(provider.calls) == 1


def test_empty_cart_gets_a_waived_charge_without_calling_the_provider(backend: Backend) -> None:
    provider = CountingProvider()
    ledger = backend.new_ledger(payment_provider=provider)
    visit_id = start_visit(ledger)
    ledger.mark_exit(visit_id, T0)
    receipt = issued(ledger.issue_receipt(visit_id, T0 + GRACE))
    assert receipt.total_cents == 0 and receipt.items == ()
    assert receipt.charge is not None and receipt.charge.state is ChargeState.WAIVED
    assert provider.calls == []
    assert ledger.settle_pending(T0 + GRACE + S) == []


def test_pending_charge_of_another_provider_is_left_alone(backend: Backend) -> None:
    crashing = CountingProvider(crash_after_charging=1)
    ledger = backend.new_ledger(payment_provider=crashing)
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'apple'))
    ledger.mark_exit(visit_id, T0)
    with pytest.raises(SimulatedCrash):
        ledger.issue_receipt(visit_id, T0 + GRACE)
    other = backend.new_ledger()  # default LedgerPaymentProvider
    assert other.settle_pending(T0 + GRACE + S) == []
    receipt = other.get_receipt(visit_id)
    assert receipt is not None and receipt.charge is not None
    assert receipt.charge.state is ChargeState.PENDING


def test_default_provider_books_the_charge_in_the_ledger(ledger: Ledger) -> None:
    visit_id = start_visit(ledger)
    ledger.apply_cart_event(event(visit_id, 'e-1', 'bread'))
    ledger.mark_exit(visit_id, T0)
    receipt = issued(ledger.issue_receipt(visit_id, T0 + GRACE))
    assert receipt.charge is not None
    assert receipt.charge.provider == 'ledger'
    assert receipt.charge.provider_ref == f'ledger:{receipt.charge.charge_id}'
    with Session(ledger.engine) as session:
        row = session.scalar(select(ChargeRow).where(ChargeRow.receipt_id == receipt.receipt_id))
        assert row is not None and row.state == 'succeeded' and row.amount_cents == 250
