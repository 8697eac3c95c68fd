"""Retention: track-level evidence is purged, receipts and charges are kept."""

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_ledger_backends import Backend, BACKENDS, open_backend, S, T0

from go_store_nodes.core.ledger import CartEvent, Ledger, PurgeReport, Receipt
from go_store_nodes.core.ledger.ledger import NS_PER_DAY
from go_store_nodes.core.ledger.models import CartEventRow, UsedTokenRow

RETENTION_NS = 7 * NS_PER_DAY  # CONFIG.evidence_retention_days


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


def shop(ledger: Ledger, account_id: str, tracks: tuple[str, ...], start_ns: int,
         close: bool = True) -> str:
    ledger.register_account(account_id, start_ns)
    visit_id = ledger.open_visit(account_id, tracks, start_ns)
    ledger.apply_cart_event(CartEvent(
        event_id=f'{account_id}-e1', visit_id=visit_id, sku='apple', quantity_delta=2,
        stamp_ns=start_ns + S, track_id=tracks[0], evidence_ids=('clip-a', 'clip-b')))
    if close:
        ledger.mark_exit(visit_id, start_ns + 60 * S)
        assert isinstance(ledger.issue_receipt(visit_id, start_ns + 120 * S), Receipt)
    return visit_id


def test_purge_removes_old_track_evidence_and_keeps_money_records(backend: Backend) -> None:
    ledger = backend.new_ledger()
    old = shop(ledger, 'acct-old', ('t-1', 't-2'), T0)
    recent = shop(ledger, 'acct-new', ('t-3',), T0 + 6 * NS_PER_DAY)
    still_inside = shop(ledger, 'acct-in', ('t-4',), T0, close=False)
    assert ledger.consume_token('tok-old', 'acct-old', T0, T0 + 60 * S)
    now = T0 + 120 * S + RETENTION_NS + S

    report = ledger.purge_evidence(now)
    assert (report.visits, report.tracks_deleted, report.events_scrubbed) == (1, 2, 1)
    assert ledger.get_visit(old).track_ids == ()
    assert ledger.get_visit(recent).track_ids == ('t-3',)
    assert ledger.get_visit(still_inside).track_ids == ('t-4',)
    with Session(ledger.engine) as session:
        rows = {row.visit_id: row for row in session.scalars(select(CartEventRow))}
        assert session.get(UsedTokenRow, 'tok-old') is not None  # spent ids are kept
    assert (rows[old].track_id, rows[old].evidence_ids) == (None, None)
    assert (rows[old].sku, rows[old].quantity_delta) == ('apple', 2)
    assert rows[recent].evidence_ids == '["clip-a", "clip-b"]'
    assert rows[still_inside].track_id == 't-4'

    receipt = ledger.get_receipt(old)
    assert receipt is not None and receipt.total_cents == 240
    assert receipt.charge is not None and receipt.charge.amount_cents == 240
    assert ledger.get_visit(old).account_id == 'acct-old'
    assert ledger.purge_evidence(now) == PurgeReport(0, 0, 0)
    # A captured token replayed long after, with its original stamp, stays refused.
    assert not ledger.consume_token('tok-old', 'acct-old', T0, T0 + 60 * S)


def test_recently_used_tokens_survive_the_purge(backend: Backend) -> None:
    ledger = backend.new_ledger()
    now = T0 + RETENTION_NS + NS_PER_DAY
    assert ledger.consume_token('tok-recent', 'acct-1', now - S, now + 60 * S)
    ledger.purge_evidence(now)
    assert not ledger.consume_token('tok-recent', 'acct-1', now, now + 60 * S)
