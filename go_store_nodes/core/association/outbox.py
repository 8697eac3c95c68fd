"""Durable outbox of cart events: kept until the ledger acknowledges them (SQLite file).

The association writes every cart event here (one transaction per batch) *before*
publishing it, re-sends it until ``cart/event_acks`` names its id, and rebuilds its carts
from it after a restart. An event id is the primary key: writing one twice keeps the first.
Acknowledged rows are kept ``keep_acked_s`` (for the carts after a restart), then deleted.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Optional, Union

from sqlalchemy import (
    BigInteger,
    Column,
    create_engine,
    delete,
    Engine,
    event,
    Integer,
    MetaData,
    select,
    String,
    Table,
    Text,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .values import CartEventOut

METADATA = MetaData()
OUTBOX = Table(
    'association_outbox', METADATA,
    Column('event_id', String(128), primary_key=True),
    Column('stamp_ns', BigInteger, nullable=False, index=True),
    Column('payload', Text, nullable=False),        # the event as JSON
    Column('created_ns', BigInteger, nullable=False),
    Column('sends', Integer, nullable=False, default=0),
    Column('acked_ns', BigInteger, nullable=True, index=True),   # NULL: not acknowledged yet
    Column('outcome', String(32), nullable=True),   # the ledger's answer
)


def _to_json(cart_event: CartEventOut) -> str:
    return json.dumps({
        'event_id': cart_event.event_id, 'stamp_ns': cart_event.stamp_ns,
        'visit_id': cart_event.visit_id, 'account_id': cart_event.account_id,
        'track_id': cart_event.track_id, 'sku': cart_event.sku,
        'quantity_delta': cart_event.quantity_delta, 'confidence': cart_event.confidence,
        'evidence_ids': list(cart_event.evidence_ids),
        'needs_review': cart_event.needs_review, 'review_reason': cart_event.review_reason,
    }, sort_keys=True)


def _from_json(text: str) -> CartEventOut:
    data = json.loads(text)
    data['evidence_ids'] = tuple(data['evidence_ids'])
    return CartEventOut(**data)


def sqlite_url(path: Union[str, pathlib.Path]) -> str:
    """Return the SQLAlchemy URL of an outbox file (``~`` expanded, folder created)."""
    file = pathlib.Path(path).expanduser().absolute()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f'sqlite:///{file}'


class Outbox:
    """Cart events not yet acknowledged by the ledger, on a SQLite file."""

    def __init__(self, url: str, busy_timeout_ms: int = 2000) -> None:
        """Open (and create) the outbox; WAL journal so a kill never corrupts it."""
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == 'sqlite':
            @event.listens_for(self.engine, 'connect')
            def _on_connect(connection: Any, _record: Any) -> None:
                cursor = connection.cursor()
                cursor.execute(f'PRAGMA busy_timeout = {int(busy_timeout_ms)}')
                cursor.execute('PRAGMA journal_mode = WAL')
                cursor.execute('PRAGMA synchronous = NORMAL')
                cursor.close()
        METADATA.create_all(self.engine)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def add(self, events: list[CartEventOut], now_ns: int) -> list[CartEventOut]:
        """Store events (one transaction); return those that were not stored before."""
        if not events:
            return []
        with self.engine.begin() as connection:
            known = set(connection.scalars(select(OUTBOX.c.event_id).where(
                OUTBOX.c.event_id.in_([e.event_id for e in events]))))
            new = [e for e in events if e.event_id not in known]
            for cart_event in new:
                connection.execute(sqlite_insert(OUTBOX).values(
                    event_id=cart_event.event_id, stamp_ns=cart_event.stamp_ns,
                    payload=_to_json(cart_event), created_ns=now_ns, sends=0)
                    .on_conflict_do_nothing())
        return new

    def acknowledge(self, event_id: str, outcome: str, now_ns: int) -> bool:
        """Mark an event acknowledged; False when unknown here or acknowledged before."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(OUTBOX).where(OUTBOX.c.event_id == event_id,
                                     OUTBOX.c.acked_ns.is_(None))
                .values(acked_ns=now_ns, outcome=outcome[:32]))
            return bool(result.rowcount)

    def count_send(self, event_ids: list[str]) -> None:
        """Count one more send of each event (diagnostics, restarts)."""
        if event_ids:
            with self.engine.begin() as connection:
                connection.execute(update(OUTBOX).where(OUTBOX.c.event_id.in_(event_ids))
                                   .values(sends=OUTBOX.c.sends + 1))

    def unacknowledged(self) -> list[CartEventOut]:
        """Every event still waiting for its acknowledgement, oldest stamp first."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(OUTBOX.c.payload)
                                      .where(OUTBOX.c.acked_ns.is_(None))
                                      .order_by(OUTBOX.c.stamp_ns, OUTBOX.c.event_id))
            return [_from_json(row.payload) for row in rows]

    def all_events(self) -> list[CartEventOut]:
        """Every kept event (acknowledged or not), oldest stamp first."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(OUTBOX.c.payload)
                                      .order_by(OUTBOX.c.stamp_ns, OUTBOX.c.event_id))
            return [_from_json(row.payload) for row in rows]

    def outcome(self, event_id: str) -> Optional[str]:
        """Return the ledger's answer for an event, None while unacknowledged or unknown."""
        with self.engine.connect() as connection:
            return connection.scalar(select(OUTBOX.c.outcome)
                                     .where(OUTBOX.c.event_id == event_id))

    def purge_acknowledged(self, before_ns: int) -> int:
        """Delete events acknowledged before ``before_ns``; return how many."""
        with self.engine.begin() as connection:
            result = connection.execute(delete(OUTBOX).where(
                OUTBOX.c.acked_ns.is_not(None), OUTBOX.c.acked_ns < before_ns))
            return int(result.rowcount)
