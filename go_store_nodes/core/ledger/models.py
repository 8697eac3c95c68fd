"""SQLAlchemy 2.x typed ORM models of the store ledger.

The schema is created and upgraded by the Alembic migrations in ``migrations/``, never by
``metadata.create_all``; a test checks that the migrated schema matches these models.
Times are integer nanoseconds since the epoch and money is integer cents.
"""

from typing import Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    'ix': 'ix_%(table_name)s_%(column_0_N_name)s',
    'uq': 'uq_%(table_name)s_%(column_0_N_name)s',
    'ck': 'ck_%(table_name)s_%(constraint_name)s',
    'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s',
    'pk': 'pk_%(table_name)s',
}

ID_LENGTH = 64
SKU_LENGTH = 64
EVENT_ID_LENGTH = 128
STATE_LENGTH = 16
REASON_LENGTH = 64

VISIT_STATES = ('open', 'closing', 'closed')
EVENT_STATES = ('applied', 'review', 'reviewed', 'rejected')
REVIEW_STATES = ('open', 'resolved')
CHARGE_STATES = ('pending', 'succeeded', 'failed', 'waived')


def _in(column: str, values: tuple[str, ...]) -> str:
    """Return a SQL check expression limiting ``column`` to ``values``."""
    quoted = ', '.join(f"'{value}'" for value in values)
    return f'{column} IN ({quoted})'


class Base(DeclarativeBase):
    """Declarative base of every ledger table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AccountRow(Base):
    """A shopper account known to the store (an opaque id from the app server)."""

    __tablename__ = 'accounts'

    account_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    created_at_ns: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean)


class VisitRow(Base):
    """One shopping trip: opened by a check-in scan, closed by its receipt."""

    __tablename__ = 'visits'
    __table_args__ = (
        CheckConstraint(_in('state', VISIT_STATES), name='state'),
        Index(None, 'state', 'exit_seen_at_ns'),
    )

    visit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey('accounts.account_id'), index=True)
    token_id: Mapped[Optional[str]] = mapped_column(String(ID_LENGTH), unique=True)
    opened_at_ns: Mapped[int] = mapped_column(BigInteger)
    exit_seen_at_ns: Mapped[Optional[int]] = mapped_column(BigInteger)
    closed_at_ns: Mapped[Optional[int]] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))


class VisitTrackRow(Base):
    """A person track belonging to a visit (several for a group entry on one scan)."""

    __tablename__ = 'visit_tracks'

    visit_id: Mapped[str] = mapped_column(
        String(36), ForeignKey('visits.visit_id'), primary_key=True)
    track_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, index=True)
    added_at_ns: Mapped[int] = mapped_column(BigInteger)


class CartLineRow(Base):
    """Quantity of one SKU in a visit's cart, priced when it was first picked."""

    __tablename__ = 'cart_lines'
    __table_args__ = (
        CheckConstraint('quantity >= 0', name='quantity_not_negative'),
        CheckConstraint('unit_price_cents >= 0', name='price_not_negative'),
    )

    visit_id: Mapped[str] = mapped_column(
        String(36), ForeignKey('visits.visit_id'), primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)


class CartEventRow(Base):
    """Every cart event ever received; ``event_id`` is the idempotency key."""

    __tablename__ = 'cart_events'
    __table_args__ = (
        CheckConstraint(_in('state', EVENT_STATES), name='state'),
        CheckConstraint('quantity_delta <> 0', name='delta_not_zero'),
    )

    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LENGTH), primary_key=True)
    visit_id: Mapped[str] = mapped_column(
        String(36), ForeignKey('visits.visit_id'), index=True)
    track_id: Mapped[Optional[str]] = mapped_column(String(ID_LENGTH))
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH))
    quantity_delta: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[Optional[int]] = mapped_column(BigInteger)
    confidence: Mapped[float] = mapped_column(Double)
    evidence_ids: Mapped[Optional[str]] = mapped_column(Text)
    needs_review: Mapped[bool] = mapped_column(Boolean)
    stamp_ns: Mapped[int] = mapped_column(BigInteger)
    applied_at_ns: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    reject_reason: Mapped[Optional[str]] = mapped_column(String(REASON_LENGTH))


class ReviewItemRow(Base):
    """A cart event waiting for (or settled by) a human decision."""

    __tablename__ = 'review_items'
    __table_args__ = (
        CheckConstraint(_in('state', REVIEW_STATES), name='state'),
        Index(None, 'visit_id', 'state'),
    )

    review_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(36), ForeignKey('visits.visit_id'))
    # NULL: the item is about the whole visit (its people were lost before the exit).
    event_id: Mapped[Optional[str]] = mapped_column(
        String(EVENT_ID_LENGTH), ForeignKey('cart_events.event_id'), unique=True)
    reason: Mapped[str] = mapped_column(String(REASON_LENGTH))
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    created_at_ns: Mapped[int] = mapped_column(BigInteger)
    resolved_by: Mapped[Optional[str]] = mapped_column(String(ID_LENGTH))
    resolution_note: Mapped[Optional[str]] = mapped_column(Text)
    resolved_quantity: Mapped[Optional[int]] = mapped_column(Integer)
    resolved_at_ns: Mapped[Optional[int]] = mapped_column(BigInteger)


class ReceiptRow(Base):
    """The immutable bill of a closed visit (at most one per visit)."""

    __tablename__ = 'receipts'
    __table_args__ = (
        CheckConstraint('total_cents >= 0', name='total_not_negative'),
    )

    receipt_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    visit_id: Mapped[str] = mapped_column(
        String(36), ForeignKey('visits.visit_id'), unique=True)
    account_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    lines_json: Mapped[str] = mapped_column(Text)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    issued_at_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    # When the receipt was first announced (the node's `receipts` topic); NULL until then,
    # so a receipt written just before a crash or a failed charge is still announced.
    published_at_ns: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)


class ChargeRow(Base):
    """The payment of a receipt (at most one per receipt)."""

    __tablename__ = 'charges'
    __table_args__ = (
        CheckConstraint(_in('state', CHARGE_STATES), name='state'),
        CheckConstraint('amount_cents >= 0', name='amount_not_negative'),
    )

    charge_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(
        String(36), ForeignKey('receipts.receipt_id'), unique=True)
    provider: Mapped[str] = mapped_column(String(REASON_LENGTH))
    provider_ref: Mapped[Optional[str]] = mapped_column(String(255))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(STATE_LENGTH), index=True)
    failure_reason: Mapped[Optional[str]] = mapped_column(Text)
    created_at_ns: Mapped[int] = mapped_column(BigInteger)
    updated_at_ns: Mapped[int] = mapped_column(BigInteger)


class UsedTokenRow(Base):
    """A check-in token already spent: the durable single-use record."""

    __tablename__ = 'used_tokens'

    token_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    used_at_ns: Mapped[int] = mapped_column(BigInteger)
    expires_at_ns: Mapped[Optional[int]] = mapped_column(BigInteger, index=True)
