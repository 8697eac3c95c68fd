"""Concurrent writers: duplicates racing each other still apply once (both back ends)."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import random
import threading
from typing import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_ledger_backends import Backend, BACKENDS, CATALOG, open_backend, S, T0

from go_store_nodes.core.ledger import (
    CartEvent,
    ChargeRequest,
    ChargeResult,
    ChargeState,
    EventOutcome,
    Receipt,
)
from go_store_nodes.core.ledger.models import ChargeRow, ReceiptRow

THREADS = 4


class ThreadSafeProvider:
    """Idempotent fake processor shared by several threads."""

    def __init__(self) -> None:
        """Start with no money taken."""
        self.lock = threading.Lock()
        self.money_taken: Counter[str] = Counter()
        self.outcomes: dict[str, ChargeResult] = {}

    @property
    def name(self) -> str:
        return 'fakecard'

    def charge(self, request: ChargeRequest) -> ChargeResult:
        with self.lock:
            if request.idempotency_key not in self.outcomes:
                self.money_taken[request.receipt_id] += request.amount_cents
                self.outcomes[request.idempotency_key] = ChargeResult(
                    ChargeState.SUCCEEDED, f'fc-{len(self.outcomes)}')
            return self.outcomes[request.idempotency_key]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


def test_racing_duplicate_events_apply_exactly_once(backend: Backend) -> None:
    ledger = backend.new_ledger()
    ledger.register_account('acct-1', T0)
    visit_id = ledger.open_visit('acct-1', ('t1',), T0)
    skus = sorted(CATALOG)
    events = [CartEvent(event_id=f'e-{n}', visit_id=visit_id, sku=skus[n % len(skus)],
                        quantity_delta=1 + n % 3, stamp_ns=T0 + n * S) for n in range(40)]
    expected = Counter[str]()
    for cart_event in events:
        expected[cart_event.sku] += cart_event.quantity_delta

    def worker(seed: int) -> Counter[EventOutcome]:
        own = backend.new_ledger()  # one 'process' per thread, same database
        order = events[:]
        random.Random(seed).shuffle(order)
        return Counter(own.apply_cart_event(cart_event) for cart_event in order)

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = sum(pool.map(worker, range(THREADS)), Counter[EventOutcome]())
    assert outcomes == {EventOutcome.APPLIED: 40, EventOutcome.DUPLICATE: 40 * (THREADS - 1)}
    assert {item.sku: item.quantity for item in ledger.get_cart(visit_id).items} == expected


def test_racing_receipts_and_settlements_charge_each_visit_once(backend: Backend) -> None:
    provider = ThreadSafeProvider()
    ledger = backend.new_ledger(payment_provider=provider)
    visit_ids = []
    for n in range(5):
        ledger.register_account(f'acct-{n}', T0)
        visit_id = ledger.open_visit(f'acct-{n}', (f't{n}',), T0)
        ledger.apply_cart_event(CartEvent(
            event_id=f'e-{n}', visit_id=visit_id, sku='bread', quantity_delta=n + 1,
            stamp_ns=T0 + S))
        ledger.mark_exit(visit_id, T0 + S)
        visit_ids.append(visit_id)
    now = T0 + 60 * S

    def worker(seed: int) -> None:
        own = backend.new_ledger(payment_provider=provider)
        order = visit_ids[:]
        random.Random(seed).shuffle(order)
        for visit_id in order:
            assert isinstance(own.issue_receipt(visit_id, now), Receipt)
        own.settle_pending(now)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    with Session(ledger.engine) as session:
        assert session.scalar(select(func.count()).select_from(ReceiptRow)) == 5
        assert session.scalar(select(func.count()).select_from(ChargeRow)) == 5
        states = set(session.scalars(select(ChargeRow.state)))
    assert states == {'succeeded'}
    assert sorted(provider.money_taken.values()) == [250, 500, 750, 1000, 1250]


def test_a_ledger_opening_while_another_process_writes_waits_for_the_lock(tmp_path) -> None:
    """Gate and cart_ledger open a new SQLite ledger together: neither may fail to start.

    The other process holds a write transaction (RESERVED) and commits while this one
    switches the file to WAL; SQLite answers that switch with 'database is locked' at
    once, without waiting, so the ledger must retry it.
    """
    import sqlite3
    import threading

    from go_store_nodes.core.ledger import Ledger

    path = tmp_path / 'ledger.sqlite'
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    holder.execute('CREATE TABLE other_writer (x INTEGER)')
    holder.execute('BEGIN IMMEDIATE')
    holder.execute('INSERT INTO other_writer VALUES (1)')
    released = threading.Timer(0.5, lambda: holder.execute('COMMIT'))
    released.start()
    try:
        ledger = Ledger(f'sqlite:///{path}')
        assert ledger.register_account('acct-1', 1)
        with ledger.engine.connect() as connection:
            assert connection.exec_driver_sql('PRAGMA journal_mode').scalar() == 'wal'
        ledger.close()
    finally:
        released.join()
        holder.close()
