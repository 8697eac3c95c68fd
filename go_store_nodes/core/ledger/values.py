"""Values of the store ledger: its config, inputs, results and errors (no database).

Times are integer nanoseconds since the epoch and money is integer cents.
"""

from dataclasses import dataclass
from enum import Enum
import math
from typing import Optional

from go_store_nodes.core.ledger.models import (
    EVENT_ID_LENGTH,
    ID_LENGTH,
    REASON_LENGTH,
    SKU_LENGTH,
)
from go_store_nodes.core.ledger.payment import ChargeState

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND


class LedgerError(Exception):
    """A ledger operation was refused (the database was not changed)."""


class UnknownVisitError(LedgerError):
    """No visit has this id."""


class UnknownAccountError(LedgerError):
    """The account is not registered or is not active."""


class UnknownReviewError(LedgerError):
    """No review item has this id."""


class TokenReplayedError(LedgerError):
    """A check-in token already opened another visit."""


class DatabaseUnavailableError(ConnectionError):
    """The ledger database could not be opened (yet): try again later."""


@dataclass(frozen=True)
class LedgerConfig:
    """Policy knobs of the ledger."""

    # Longest wait after an exit for the association watermark (cart_ledger: the receipt
    # is issued once the watermark passes the exit stamp, at the latest after this).
    grace_period_ns: int = 30 * NS_PER_SECOND
    currency: str = 'EUR'
    evidence_retention_days: int = 30
    # A visit not closed this many days after it opened is abandoned (its exit was never
    # seen): its evidence is purged ``evidence_retention_days`` after that.
    stale_visit_days: int = 2
    review_below_confidence: float = 0.0
    max_quantity_delta: int = 24
    max_write_retries: int = 3
    # Longest wait for another writer's lock per statement: SQLite busy timeout, PostgreSQL
    # lock_timeout. Bounded so a stalled database fails a write that the caller retries.
    sqlite_busy_timeout_ms: int = 2_000
    postgres_lock_timeout_ms: int = 2_000
    # A cart event stamped this long before its visit opened goes to review (clock skew
    # between the shelf sensors and the gate is tolerated up to here).
    event_before_visit_tolerance_ns: int = 30 * NS_PER_SECOND
    auto_migrate: bool = True

    def __post_init__(self) -> None:
        """Validate the config."""
        if not 0 <= self.grace_period_ns <= NS_PER_DAY:
            raise ValueError(
                f'grace_period_ns must be in [0, 1 day], got {self.grace_period_ns}')
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(f'currency must be an ISO 4217 code like EUR, got {self.currency!r}')
        if not 1 <= self.evidence_retention_days <= 3650:
            raise ValueError(
                'evidence_retention_days must be in [1, 3650], '
                f'got {self.evidence_retention_days}')
        if not 1 <= self.stale_visit_days <= 365:
            raise ValueError(f'stale_visit_days must be in [1, 365], got {self.stale_visit_days}')
        if not 0.0 <= self.review_below_confidence <= 1.0:
            raise ValueError(
                'review_below_confidence must be in [0, 1], '
                f'got {self.review_below_confidence}')
        if not 1 <= self.max_quantity_delta <= 10_000:
            raise ValueError(
                f'max_quantity_delta must be in [1, 10000], got {self.max_quantity_delta}')
        if not 0 <= self.max_write_retries <= 20:
            raise ValueError(
                f'max_write_retries must be in [0, 20], got {self.max_write_retries}')
        if not 0 <= self.sqlite_busy_timeout_ms <= 600_000:
            raise ValueError(
                'sqlite_busy_timeout_ms must be in [0, 600000], '
                f'got {self.sqlite_busy_timeout_ms}')
        if not 0 <= self.postgres_lock_timeout_ms <= 600_000:
            raise ValueError(
                'postgres_lock_timeout_ms must be in [0, 600000], '
                f'got {self.postgres_lock_timeout_ms}')
        if not 0 <= self.event_before_visit_tolerance_ns <= NS_PER_DAY:
            raise ValueError(
                'event_before_visit_tolerance_ns must be in [0, 1 day], '
                f'got {self.event_before_visit_tolerance_ns}')


# Bounds of a cart event's evidence ids (a 5 MB event must not reach the database).
MAX_EVIDENCE_IDS = 32
EVIDENCE_ID_LENGTH = 128


def _check_id(name: str, value: Optional[str], max_length: int) -> None:
    """Raise ValueError unless ``value`` is a non-empty printable string short enough."""
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError(f'{name} must be a non-empty printable string, got {value!r}')
    if len(value) > max_length:
        raise ValueError(f'{name} must be at most {max_length} characters')


@dataclass(frozen=True)
class CartEvent:
    """A pick (+) or return (-) of a product attributed to a visit by perception."""

    event_id: str
    visit_id: str
    sku: str
    quantity_delta: int
    stamp_ns: int
    track_id: Optional[str] = None
    confidence: float = 1.0
    evidence_ids: tuple[str, ...] = ()
    needs_review: bool = False
    review_reason: str = ''
    account_id: Optional[str] = None  # the sender's view of the visit's account

    def __post_init__(self) -> None:
        """Validate the event."""
        _check_id('event_id', self.event_id, EVENT_ID_LENGTH)
        _check_id('visit_id', self.visit_id, 36)
        if self.account_id is not None:
            _check_id('account_id', self.account_id, ID_LENGTH)
        _check_id('sku', self.sku, SKU_LENGTH)
        if self.track_id is not None:
            _check_id('track_id', self.track_id, ID_LENGTH)
        if isinstance(self.quantity_delta, bool) or not isinstance(self.quantity_delta, int):
            raise ValueError('quantity_delta must be an int')
        if self.quantity_delta == 0:
            raise ValueError('quantity_delta must not be 0')
        if not isinstance(self.stamp_ns, int) or self.stamp_ns < 0:
            raise ValueError(f'stamp_ns must be a non-negative int, got {self.stamp_ns!r}')
        if not math.isfinite(self.confidence) or not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f'confidence must be in [0, 1], got {self.confidence}')
        if not isinstance(self.evidence_ids, tuple) or not all(
                isinstance(item, str) for item in self.evidence_ids):
            raise ValueError('evidence_ids must be a tuple of strings')
        if len(self.evidence_ids) > MAX_EVIDENCE_IDS or any(
                len(item) > EVIDENCE_ID_LENGTH for item in self.evidence_ids):
            raise ValueError(f'evidence_ids: at most {MAX_EVIDENCE_IDS} ids of at most '
                             f'{EVIDENCE_ID_LENGTH} characters')
        if not isinstance(self.review_reason, str) or len(self.review_reason) > REASON_LENGTH:
            raise ValueError(f'review_reason must be a string of at most {REASON_LENGTH} chars')


class EventOutcome(str, Enum):
    """What ``apply_cart_event`` did with an event."""

    APPLIED = 'applied'
    QUEUED_FOR_REVIEW = 'review'
    DUPLICATE = 'duplicate'
    CONFLICT = 'conflict'
    UNKNOWN_VISIT = 'unknown_visit'
    REJECTED_UNKNOWN_SKU = 'rejected_unknown_sku'
    REJECTED_VISIT_CLOSED = 'rejected_visit_closed'


class ReviewReason(str, Enum):
    """Why a cart event waits for a human."""

    FLAGGED = 'flagged_by_perception'
    LOW_CONFIDENCE = 'low_confidence'
    LARGE_QUANTITY = 'large_quantity'
    RETURN_NOT_IN_CART = 'return_not_in_cart'
    RETURN_EXCEEDS_CART = 'return_exceeds_cart'
    ACCOUNT_MISMATCH = 'account_mismatch'
    BEFORE_VISIT = 'stamped_before_visit'


@dataclass(frozen=True)
class CartItem:
    """One line of a cart or receipt."""

    sku: str
    quantity: int
    unit_price_cents: int

    @property
    def line_total_cents(self) -> int:
        """Return quantity times unit price."""
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True)
class Cart:
    """The current content of a visit's cart (lines with quantity > 0) and its holds."""

    visit_id: str
    account_id: str
    state: str
    items: tuple[CartItem, ...]
    currency: str
    open_review_ids: tuple[str, ...] = ()

    @property
    def total_cents(self) -> int:
        """Return the sum of the line totals."""
        return sum(item.line_total_cents for item in self.items)


@dataclass(frozen=True)
class VisitInfo:
    """A visit and its (not yet purged) tracks."""

    visit_id: str
    account_id: str
    state: str
    opened_at_ns: int
    exit_seen_at_ns: Optional[int]
    closed_at_ns: Optional[int]
    track_ids: tuple[str, ...]


@dataclass(frozen=True)
class Review:
    """A review item with the event it is about and, once resolved, who decided what.

    ``event_id`` is '' (and ``sku`` '', ``quantity_delta`` 0) for an item about the whole
    visit: its people were lost in the store, so staff confirm the cart before the receipt.
    """

    review_id: str
    visit_id: str
    event_id: str
    sku: str
    quantity_delta: int
    reason: str
    state: str
    created_at_ns: int
    resolved_by: Optional[str]
    resolution_note: Optional[str]
    resolved_quantity: Optional[int]
    resolved_at_ns: Optional[int]


@dataclass(frozen=True)
class Charge:
    """The payment record of a receipt."""

    charge_id: str
    receipt_id: str
    provider: str
    provider_ref: Optional[str]
    amount_cents: int
    currency: str
    state: ChargeState
    failure_reason: Optional[str]
    created_at_ns: int
    updated_at_ns: int


@dataclass(frozen=True)
class Receipt:
    """The bill of a closed visit, with its charge when one was recorded."""

    receipt_id: str
    visit_id: str
    account_id: str
    items: tuple[CartItem, ...]
    total_cents: int
    currency: str
    issued_at_ns: int
    charge: Optional[Charge] = None


@dataclass(frozen=True)
class HeldForReview:
    """A receipt that cannot be issued yet because review items are open."""

    visit_id: str
    review_ids: tuple[str, ...]


@dataclass(frozen=True)
class PurgeReport:
    """What ``purge_evidence`` removed (``visits``: visits that had evidence to remove)."""

    visits: int
    tracks_deleted: int
    events_scrubbed: int
