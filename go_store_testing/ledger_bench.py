"""Throughput benchmark of the ledger: apply N cart events and print events per second.

Usage::

    python -m go_store_testing.ledger_bench --url sqlite:////tmp/bench.db --events 2000
    python -m go_store_testing.ledger_bench --url postgresql+psycopg://u@127.0.0.1:55432/db

Each run uses fresh random account and visit ids, so it can be repeated on the same
database. Figures are reported, not asserted: they depend on the disk and fsync settings.
"""

import argparse
import sys
import time
from typing import Optional, Sequence
import uuid

from go_store_nodes.core.ledger.ledger import CartEvent, Ledger, LedgerConfig

NS_PER_SECOND = 1_000_000_000
CATALOG = {f'sku-{n:03d}': 100 + n for n in range(50)}


def run(url: str, events: int, visits: int) -> dict[str, float]:
    """Apply ``events`` new events (and then the same events again) over ``visits`` visits."""
    if events < 1 or visits < 1:
        raise ValueError('events and visits must be >= 1')
    ledger = Ledger(url, LedgerConfig(grace_period_ns=0), CATALOG)
    run_id = uuid.uuid4().hex[:8]
    now_ns = time.time_ns()
    visit_ids = []
    for n in range(visits):
        account_id = f'bench-{run_id}-{n}'
        ledger.register_account(account_id, now_ns)
        visit_ids.append(ledger.open_visit(account_id, (f'{account_id}-t',), now_ns))
    skus = sorted(CATALOG)
    batch = [CartEvent(event_id=f'{run_id}-{n}', visit_id=visit_ids[n % visits],
                       sku=skus[n % len(skus)], quantity_delta=1, stamp_ns=now_ns + n)
             for n in range(events)]
    started = time.perf_counter()
    for cart_event in batch:
        ledger.apply_cart_event(cart_event)
    applied_s = time.perf_counter() - started
    started = time.perf_counter()
    for cart_event in batch:
        ledger.apply_cart_event(cart_event)
    duplicate_s = time.perf_counter() - started
    started = time.perf_counter()
    for visit_id in visit_ids:
        ledger.mark_exit(visit_id, now_ns)
        ledger.issue_receipt(visit_id, now_ns, force=True)
    receipts_s = time.perf_counter() - started
    ledger.close()
    return {
        'applied_per_s': events / applied_s,
        'duplicates_per_s': events / duplicate_s,
        'receipts_per_s': visits / receipts_s,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse arguments, run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--url', required=True, help='SQLAlchemy database URL')
    parser.add_argument('--events', type=int, default=2000, help='cart events to apply')
    parser.add_argument('--visits', type=int, default=20, help='visits the events spread over')
    args = parser.parse_args(argv)
    figures = run(args.url, args.events, args.visits)
    print(f'url={args.url.split("@")[-1]} events={args.events} visits={args.visits}')
    print(f'applied:    {figures["applied_per_s"]:9.0f} events/s')
    print(f'duplicates: {figures["duplicates_per_s"]:9.0f} events/s')
    print(f'receipts:   {figures["receipts_per_s"]:9.0f} receipts/s (with charge)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
