"""The store ledger: visits, carts, reviews, receipts and charges on SQLAlchemy.

Values (config, inputs, results, errors) are in ``values.py``, database plumbing (URLs,
connection hooks, migrations) in ``database.py``; both are re-exported here.

Every public write runs in one database transaction. Cart mutations, review resolutions and
receipt issuing of a visit are serialised by a row lock on the visit (``SELECT ... FOR
UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so a receipt never misses an event
that was acknowledged as applied. Idempotency keys: ``cart_events.event_id``,
``visits.token_id``, ``receipts.visit_id`` and ``charges.receipt_id`` (all unique).
"""

from dataclasses import replace
import json
import logging
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar, Union
import uuid

from sqlalchemy import create_engine, delete, select, update
from sqlalchemy.engine import Engine, URL
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from go_store_nodes.core.ledger.database import (
    _is_transient,
    _SQLITE_BEGIN_OPTION,
    alembic_config,
    install_postgres_hooks,
    install_sqlite_hooks,
    is_retryable_database_error,
    migrate,
    MIGRATION_LOCK_KEY,
    MIGRATIONS_DIR,
    normalise_url,
)
from go_store_nodes.core.ledger.models import (
    AccountRow,
    CartEventRow,
    CartLineRow,
    ChargeRow,
    ID_LENGTH,
    REASON_LENGTH,
    ReceiptRow,
    ReviewItemRow,
    SKU_LENGTH,
    UsedTokenRow,
    VisitRow,
    VisitTrackRow,
)
from go_store_nodes.core.ledger.payment import (
    ChargeRequest,
    ChargeState,
    LedgerPaymentProvider,
    PaymentProvider,
)
from go_store_nodes.core.ledger.values import (
    _check_id,
    Cart,
    CartEvent,
    CartItem,
    Charge,
    DatabaseUnavailableError,
    EventOutcome,
    EVIDENCE_ID_LENGTH,
    HeldForReview,
    LedgerConfig,
    LedgerError,
    MAX_EVIDENCE_IDS,
    NS_PER_DAY,
    NS_PER_SECOND,
    PurgeReport,
    Receipt,
    Review,
    ReviewReason,
    TokenReplayedError,
    UnknownAccountError,
    UnknownReviewError,
    UnknownVisitError,
    VisitInfo,
)

LOGGER = logging.getLogger(__name__)

T = TypeVar('T')


def _charge_view(row: ChargeRow) -> Charge:
    """Convert a charge row to its public value."""
    return Charge(
        charge_id=row.charge_id, receipt_id=row.receipt_id, provider=row.provider,
        provider_ref=row.provider_ref, amount_cents=row.amount_cents, currency=row.currency,
        state=ChargeState(row.state), failure_reason=row.failure_reason,
        created_at_ns=row.created_at_ns, updated_at_ns=row.updated_at_ns)


def _receipt_view(row: ReceiptRow, charge: Optional[ChargeRow]) -> Receipt:
    """Convert a receipt row (and its charge row) to its public value."""
    items = tuple(
        CartItem(sku=line['sku'], quantity=line['quantity'],
                 unit_price_cents=line['unit_price_cents'])
        for line in json.loads(row.lines_json))
    return Receipt(
        receipt_id=row.receipt_id, visit_id=row.visit_id, account_id=row.account_id,
        items=items, total_cents=row.total_cents, currency=row.currency,
        issued_at_ns=row.issued_at_ns,
        charge=None if charge is None else _charge_view(charge))


def _receipt_views(session: Session, rows: Sequence[ReceiptRow]) -> list[Receipt]:
    """Convert receipt rows to public values with their charges, in the rows' order."""
    if not rows:
        return []
    charges = {c.receipt_id: c for c in session.scalars(select(ChargeRow).where(
        ChargeRow.receipt_id.in_([r.receipt_id for r in rows])))}
    return [_receipt_view(row, charges.get(row.receipt_id)) for row in rows]


def _review_view(row: ReviewItemRow, event_row: Optional[CartEventRow]) -> Review:
    """Convert a review row and its event row (None: a visit review) to the public value."""
    return Review(
        review_id=row.review_id, visit_id=row.visit_id, event_id=row.event_id or '',
        sku=event_row.sku if event_row is not None else '',
        quantity_delta=event_row.quantity_delta if event_row is not None else 0,
        reason=row.reason,
        state=row.state, created_at_ns=row.created_at_ns, resolved_by=row.resolved_by,
        resolution_note=row.resolution_note, resolved_quantity=row.resolved_quantity,
        resolved_at_ns=row.resolved_at_ns)


def _validate_catalog(catalog: Mapping[str, int]) -> Mapping[str, int]:
    """Return a read-only copy of a SKU -> unit price (cents) mapping, validated."""
    checked: dict[str, int] = {}
    for sku, price in catalog.items():
        _check_id('catalog sku', sku, SKU_LENGTH)
        if isinstance(price, bool) or not isinstance(price, int) or price < 0:
            raise ValueError(f'price of {sku!r} must be a non-negative int of cents')
        checked[sku] = price
    return MappingProxyType(checked)


class Ledger:
    """Durable money core of the store (SQLite or PostgreSQL through SQLAlchemy)."""

    def __init__(self, database: Union[str, URL, Engine],
                 config: Optional[LedgerConfig] = None,
                 catalog: Optional[Mapping[str, int]] = None,
                 payment_provider: Optional[PaymentProvider] = None) -> None:
        """Connect (an Engine is used as is), install SQLite hooks and migrate."""
        self._config = config = config or LedgerConfig()
        if isinstance(database, Engine):
            self._engine = database
            self._owns_engine = False
        else:
            self._engine = create_engine(normalise_url(database), pool_pre_ping=True)
            self._owns_engine = True
        install_sqlite_hooks(self._engine, config.sqlite_busy_timeout_ms)
        install_postgres_hooks(self._engine, config.postgres_lock_timeout_ms)
        write_engine = self._engine
        if self._engine.dialect.name == 'sqlite':
            write_engine = self._engine.execution_options(
                **{_SQLITE_BEGIN_OPTION: 'IMMEDIATE'})
        self._reader = sessionmaker(self._engine, expire_on_commit=False)
        self._writer = sessionmaker(write_engine, expire_on_commit=False)
        self._catalog = _validate_catalog(catalog or {})
        self._provider: PaymentProvider = payment_provider or LedgerPaymentProvider()
        if config.auto_migrate:
            migrate(self._engine)

    @property
    def engine(self) -> Engine:
        """Return the SQLAlchemy engine."""
        return self._engine

    @property
    def config(self) -> LedgerConfig:
        """Return the config."""
        return self._config

    def close(self) -> None:
        """Release the connection pool when the ledger created the engine."""
        if self._owns_engine:
            self._engine.dispose()

    def set_catalog(self, catalog: Mapping[str, int]) -> None:
        """Replace the SKU -> unit price (cents) catalog used for new picks."""
        self._catalog = _validate_catalog(catalog)

    # -- transactions -------------------------------------------------------------------

    def _write(self, work: Callable[[Session], T], retry_integrity: bool = False) -> T:
        """Run ``work`` in one write transaction, retrying transient failures."""
        attempts = self._config.max_write_retries + 1
        for attempt in range(attempts):
            try:
                with self._writer.begin() as session:
                    return work(session)
            except IntegrityError:
                # A concurrent writer inserted the same key: the retry sees its row.
                if not retry_integrity or attempt == attempts - 1:
                    raise
            except OperationalError as error:
                if not _is_transient(error) or attempt == attempts - 1:
                    raise
            LOGGER.debug('retrying ledger write (attempt %d)', attempt + 2)
        raise AssertionError('unreachable')

    def _read(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one read transaction."""
        with self._reader.begin() as session:
            return work(session)

    @staticmethod
    def _lock_visit(session: Session, visit_id: str) -> Optional[VisitRow]:
        """Return the visit row locked for update (None when unknown)."""
        return session.get(VisitRow, visit_id, with_for_update=True)

    # -- accounts and tokens ------------------------------------------------------------

    def register_account(self, account_id: str, now_ns: int, active: bool = True) -> bool:
        """Create or update an account; return True when it was created."""
        _check_id('account_id', account_id, ID_LENGTH)

        def work(session: Session) -> bool:
            row = session.get(AccountRow, account_id)
            if row is not None:
                row.active = active
                return False
            session.add(AccountRow(account_id=account_id, created_at_ns=now_ns, active=active))
            session.flush()
            return True

        return self._write(work, retry_integrity=True)

    def account_exists(self, account_id: str) -> bool:
        """Return True for a registered, active account (a ``TokenVerifier`` lookup)."""
        return self._read(lambda session: bool(session.scalar(
            select(AccountRow.active).where(AccountRow.account_id == account_id))))

    def consume_token(self, token_id: str, account_id: str, now_ns: int,
                      expires_at_ns: Optional[int] = None) -> bool:
        """Record a check-in token as used; return False if it was used before (replay)."""
        _check_id('token_id', token_id, ID_LENGTH)
        _check_id('account_id', account_id, ID_LENGTH)

        def work(session: Session) -> bool:
            if session.get(UsedTokenRow, token_id) is not None:
                return False
            session.add(UsedTokenRow(
                token_id=token_id, account_id=account_id, used_at_ns=now_ns,
                expires_at_ns=expires_at_ns))
            session.flush()
            return True

        try:
            return self._write(work)
        except IntegrityError:
            return False

    # -- visits -------------------------------------------------------------------------

    def open_visit(self, account_id: str, track_ids: Iterable[str], now_ns: int,
                   token_id: Optional[str] = None) -> str:
        """Open one visit for a check-in scan (several tracks for a group); return its id.

        With ``token_id`` the token is consumed in the same transaction if the verifier did
        not already do it. Retrying the same scan (same token, account and tracks) returns
        the same visit id; any other reuse of the token raises ``TokenReplayedError``.
        """
        visit_id, _ = self.open_visit_for_scan(account_id, track_ids, now_ns, token_id)
        return visit_id

    def open_visit_for_scan(self, account_id: str, track_ids: Iterable[str], now_ns: int,
                            token_id: Optional[str] = None,
                            expires_at_ns: Optional[int] = None,
                            scan_stamp_ns: Optional[int] = None) -> tuple[str, bool]:
        """Consume the token and open its visit in one transaction; return (id, created).

        A crash or fault before the commit leaves neither the token spent nor the visit
        open, so the shopper's rescan succeeds. The same scan delivered again while its
        visit is still open (the scanner retrying after a fault or a gate restart: same
        token, account and ``scan_stamp_ns``, the scanner's stamp, stored as the token's
        ``used_at_ns``) returns that visit with ``created`` False; without a scan stamp,
        a retry must name the same tracks. Any other reuse of the token (a second scan of
        the same QR code) raises ``TokenReplayedError``.
        """
        _check_id('account_id', account_id, ID_LENGTH)
        tracks = tuple(dict.fromkeys(track_ids))
        for track_id in tracks:
            _check_id('track_id', track_id, ID_LENGTH)
        if token_id is not None:
            _check_id('token_id', token_id, ID_LENGTH)

        def work(session: Session) -> tuple[str, bool]:
            account = session.get(AccountRow, account_id)
            if account is None or not account.active:
                raise UnknownAccountError(f'account {account_id!r} is unknown or inactive')
            if token_id is not None:
                previous = session.scalar(select(VisitRow).where(VisitRow.token_id == token_id))
                if previous is not None:
                    if scan_stamp_ns is None:
                        previous_tracks = set(session.scalars(
                            select(VisitTrackRow.track_id)
                            .where(VisitTrackRow.visit_id == previous.visit_id)))
                        same_scan = previous_tracks == set(tracks)
                    else:
                        used_at_ns = session.scalar(select(UsedTokenRow.used_at_ns).where(
                            UsedTokenRow.token_id == token_id))
                        same_scan = used_at_ns == scan_stamp_ns
                    if previous.account_id == account_id and previous.state == 'open' \
                            and same_scan:
                        return previous.visit_id, False  # the same scan, retried
                    raise TokenReplayedError(f'token {token_id} already opened a visit')
                used = session.get(UsedTokenRow, token_id)
                if used is None:
                    session.add(UsedTokenRow(
                        token_id=token_id, account_id=account_id,
                        used_at_ns=now_ns if scan_stamp_ns is None else scan_stamp_ns,
                        expires_at_ns=expires_at_ns))
                elif used.account_id != account_id:
                    raise LedgerError(f'token {token_id} was used by another account')
            busy = session.execute(
                select(VisitTrackRow.track_id, VisitTrackRow.visit_id)
                .join(VisitRow, VisitRow.visit_id == VisitTrackRow.visit_id)
                .where(VisitTrackRow.track_id.in_(tracks), VisitRow.state != 'closed')
            ).first() if tracks else None
            if busy is not None:
                raise LedgerError(f'track {busy[0]!r} already belongs to visit {busy[1]}')
            visit_id = str(uuid.uuid4())
            session.add(VisitRow(
                visit_id=visit_id, account_id=account_id, token_id=token_id,
                opened_at_ns=now_ns, state='open'))
            session.flush()
            session.add_all(
                VisitTrackRow(visit_id=visit_id, track_id=track_id, added_at_ns=now_ns)
                for track_id in tracks)
            session.flush()
            return visit_id, True

        return self._write(work, retry_integrity=True)

    def add_track(self, visit_id: str, track_id: str, now_ns: int) -> bool:
        """Attach another track to an unclosed visit; return False if already attached."""
        _check_id('track_id', track_id, ID_LENGTH)

        def work(session: Session) -> bool:
            visit = self._lock_visit(session, visit_id)
            if visit is None:
                raise UnknownVisitError(visit_id)
            if visit.state == 'closed':
                raise LedgerError(f'visit {visit_id} is closed')
            if session.get(VisitTrackRow, (visit_id, track_id)) is not None:
                return False
            session.add(VisitTrackRow(visit_id=visit_id, track_id=track_id, added_at_ns=now_ns))
            session.flush()
            return True

        return self._write(work, retry_integrity=True)

    def visit_for_track(self, track_id: str) -> Optional[str]:
        """Return the unclosed visit a track belongs to, if any."""
        return self._read(lambda session: session.scalar(
            select(VisitTrackRow.visit_id)
            .join(VisitRow, VisitRow.visit_id == VisitTrackRow.visit_id)
            .where(VisitTrackRow.track_id == track_id, VisitRow.state != 'closed')
            .order_by(VisitRow.opened_at_ns.desc()).limit(1)))

    def get_visit(self, visit_id: str) -> VisitInfo:
        """Return a visit and its tracks; raise ``UnknownVisitError``."""
        def work(session: Session) -> VisitInfo:
            visit = session.get(VisitRow, visit_id)
            if visit is None:
                raise UnknownVisitError(visit_id)
            tracks = session.scalars(
                select(VisitTrackRow.track_id).where(VisitTrackRow.visit_id == visit_id)
                .order_by(VisitTrackRow.track_id)).all()
            return VisitInfo(
                visit_id=visit.visit_id, account_id=visit.account_id, state=visit.state,
                opened_at_ns=visit.opened_at_ns, exit_seen_at_ns=visit.exit_seen_at_ns,
                closed_at_ns=visit.closed_at_ns, track_ids=tuple(tracks))

        return self._read(work)

    def mark_exit(self, visit_id: str, now_ns: int, review_reason: str = '') -> bool:
        """Record the exit of an open visit and start its grace period.

        With a ``review_reason`` (the visit's people were lost, not seen leaving) a review
        item about the whole visit is opened in the same transaction: the receipt waits
        until staff confirm the cart. Return False (nothing changed) when the exit was
        already recorded.
        """
        def work(session: Session) -> bool:
            visit = self._lock_visit(session, visit_id)
            if visit is None:
                raise UnknownVisitError(visit_id)
            if visit.state != 'open':
                return False
            visit.state = 'closing'
            visit.exit_seen_at_ns = now_ns
            if review_reason:
                session.add(ReviewItemRow(
                    review_id=str(uuid.uuid4()), visit_id=visit_id, event_id=None,
                    reason=review_reason[:REASON_LENGTH], state='open', created_at_ns=now_ns))
            return True

        return self._write(work)

    # -- cart ---------------------------------------------------------------------------

    def apply_cart_event(self, cart_event: CartEvent,
                         now_ns: Optional[int] = None) -> EventOutcome:
        """Apply one cart event exactly once (``event_id`` is the idempotency key)."""
        applied_at_ns = cart_event.stamp_ns if now_ns is None else now_ns

        def work(session: Session) -> EventOutcome:
            existing = session.get(CartEventRow, cart_event.event_id)
            if existing is not None:
                return self._duplicate_outcome(existing, cart_event)
            visit = self._lock_visit(session, cart_event.visit_id)
            if visit is None:
                return EventOutcome.UNKNOWN_VISIT
            price = self._catalog.get(cart_event.sku)
            row = CartEventRow(
                event_id=cart_event.event_id, visit_id=cart_event.visit_id,
                track_id=cart_event.track_id, sku=cart_event.sku,
                quantity_delta=cart_event.quantity_delta, unit_price_cents=price,
                confidence=cart_event.confidence,
                evidence_ids=json.dumps(list(cart_event.evidence_ids)),
                needs_review=cart_event.needs_review, stamp_ns=cart_event.stamp_ns,
                applied_at_ns=applied_at_ns, state='applied')
            outcome = EventOutcome.APPLIED
            review_reason: Optional[ReviewReason] = None
            stored_reason = ''
            if visit.state == 'closed':
                row.state, row.reject_reason = 'rejected', 'visit_closed'
                outcome = EventOutcome.REJECTED_VISIT_CLOSED
            elif price is None:
                row.state, row.reject_reason = 'rejected', 'unknown_sku'
                outcome = EventOutcome.REJECTED_UNKNOWN_SKU
            else:
                review_reason = self._visit_mismatch(visit, cart_event) \
                    or self._review_reason(session, cart_event)
                if review_reason is not None:
                    row.state = 'review'
                    outcome = EventOutcome.QUEUED_FOR_REVIEW
                    if review_reason is ReviewReason.FLAGGED and cart_event.review_reason:
                        stored_reason = cart_event.review_reason
            session.add(row)
            session.flush()  # a concurrent duplicate fails here, before the cart changes
            if review_reason is not None:
                session.add(ReviewItemRow(
                    review_id=str(uuid.uuid4()), visit_id=cart_event.visit_id,
                    event_id=cart_event.event_id,
                    reason=stored_reason or review_reason.value, state='open',
                    created_at_ns=applied_at_ns))
            elif outcome is EventOutcome.APPLIED and price is not None:
                self._change_line(
                    session, cart_event.visit_id, cart_event.sku, cart_event.quantity_delta,
                    price)
                if cart_event.quantity_delta > 0:
                    self._apply_returns_that_came_early(session, cart_event, applied_at_ns)
            return outcome

        return self._write(work, retry_integrity=True)

    def _apply_returns_that_came_early(self, session: Session, pick: CartEvent,
                                       now_ns: int) -> None:
        """Apply returns that reached the ledger before this (earlier stamped) pick.

        Delivery can reorder events (an upstream re-sending what was not acknowledged, a
        full input queue): a return of an item not yet in the cart waits for review. Once
        a pick of that SKU stamped before the return arrives, the return is applied in
        stamp order and its review closed by the ledger itself (kept for the audit, with
        ``resolved_by`` 'ledger'); a return still exceeding the cart keeps waiting.
        """
        early = session.execute(
            select(ReviewItemRow, CartEventRow)
            .join(CartEventRow, CartEventRow.event_id == ReviewItemRow.event_id)
            .where(ReviewItemRow.visit_id == pick.visit_id, ReviewItemRow.state == 'open',
                   ReviewItemRow.reason.in_((ReviewReason.RETURN_NOT_IN_CART.value,
                                             ReviewReason.RETURN_EXCEEDS_CART.value)),
                   CartEventRow.sku == pick.sku, CartEventRow.stamp_ns > pick.stamp_ns)
            .order_by(CartEventRow.stamp_ns, CartEventRow.event_id)).all()
        for review, event_row in early:
            line = session.get(CartLineRow, (pick.visit_id, pick.sku))
            if line is None or line.quantity < -event_row.quantity_delta:
                return
            self._change_line(session, pick.visit_id, pick.sku, event_row.quantity_delta,
                              line.unit_price_cents)
            review.state = 'resolved'
            review.resolved_by = 'ledger'
            review.resolution_note = (f'return arrived before the pick {pick.event_id} it '
                                      'follows; applied in stamp order')
            review.resolved_quantity = event_row.quantity_delta
            review.resolved_at_ns = now_ns
            event_row.state = 'applied'
            session.flush()

    @staticmethod
    def _duplicate_outcome(existing: CartEventRow, cart_event: CartEvent) -> EventOutcome:
        """Classify a repeated event id as a true duplicate or a key conflict."""
        same = (existing.visit_id == cart_event.visit_id and existing.sku == cart_event.sku
                and existing.quantity_delta == cart_event.quantity_delta
                and existing.stamp_ns == cart_event.stamp_ns)
        if not same:
            LOGGER.warning('event id %s reused with different content', cart_event.event_id)
            return EventOutcome.CONFLICT
        return EventOutcome.DUPLICATE

    def _visit_mismatch(self, visit: VisitRow, cart_event: CartEvent
                        ) -> Optional[ReviewReason]:
        """Return why an event does not fit its visit (account, time), or None.

        The sender names the visit; an event naming another account, or stamped well
        before the visit opened, is not charged silently: a person decides.
        """
        if cart_event.account_id is not None and cart_event.account_id != visit.account_id:
            LOGGER.warning('event %s names another account than its visit %s',
                           cart_event.event_id, visit.visit_id)
            return ReviewReason.ACCOUNT_MISMATCH
        tolerance = self._config.event_before_visit_tolerance_ns
        if cart_event.stamp_ns < visit.opened_at_ns - tolerance:
            LOGGER.warning('event %s is stamped %.1f s before its visit %s opened',
                           cart_event.event_id,
                           (visit.opened_at_ns - cart_event.stamp_ns) / NS_PER_SECOND,
                           visit.visit_id)
            return ReviewReason.BEFORE_VISIT
        return None

    def _review_reason(self, session: Session, cart_event: CartEvent
                       ) -> Optional[ReviewReason]:
        """Return why an event must wait for a human, or None to apply it now."""
        if cart_event.needs_review:
            return ReviewReason.FLAGGED
        if cart_event.confidence < self._config.review_below_confidence:
            return ReviewReason.LOW_CONFIDENCE
        if abs(cart_event.quantity_delta) > self._config.max_quantity_delta:
            return ReviewReason.LARGE_QUANTITY
        if cart_event.quantity_delta < 0:
            line = session.get(CartLineRow, (cart_event.visit_id, cart_event.sku))
            in_cart = 0 if line is None else line.quantity
            if in_cart == 0:
                return ReviewReason.RETURN_NOT_IN_CART
            if in_cart < -cart_event.quantity_delta:
                return ReviewReason.RETURN_EXCEEDS_CART
        return None

    @staticmethod
    def _change_line(session: Session, visit_id: str, sku: str, delta: int,
                     unit_price_cents: int) -> None:
        """Add ``delta`` to a cart line (caller holds the visit lock); never below zero."""
        line = session.get(CartLineRow, (visit_id, sku))
        current = 0 if line is None else line.quantity
        if current + delta < 0:
            raise LedgerError(f'{sku}: cannot remove {-delta}, cart holds {current}')
        if line is None:
            session.add(CartLineRow(
                visit_id=visit_id, sku=sku, quantity=delta, unit_price_cents=unit_price_cents))
        else:
            line.quantity = current + delta
        session.flush()

    def get_cart(self, visit_id: str) -> Cart:
        """Return the lines with quantity > 0 of a visit; raise ``UnknownVisitError``."""
        def work(session: Session) -> Cart:
            visit = session.get(VisitRow, visit_id)
            if visit is None:
                raise UnknownVisitError(visit_id)
            lines = session.scalars(
                select(CartLineRow)
                .where(CartLineRow.visit_id == visit_id, CartLineRow.quantity > 0)
                .order_by(CartLineRow.sku)).all()
            reviews = session.scalars(
                select(ReviewItemRow.review_id)
                .where(ReviewItemRow.visit_id == visit_id, ReviewItemRow.state == 'open')
                .order_by(ReviewItemRow.created_at_ns, ReviewItemRow.review_id)).all()
            return Cart(
                visit_id=visit_id, account_id=visit.account_id, state=visit.state,
                currency=self._config.currency,
                items=tuple(CartItem(line.sku, line.quantity, line.unit_price_cents)
                            for line in lines),
                open_review_ids=tuple(reviews))

        return self._read(work)

    # -- reviews ------------------------------------------------------------------------

    def list_reviews(self, visit_id: Optional[str] = None,
                     include_resolved: bool = False) -> list[Review]:
        """Return review items of one visit, or of all visits, open ones only by default."""
        def work(session: Session) -> list[Review]:
            query = (select(ReviewItemRow, CartEventRow)
                     .outerjoin(CartEventRow, CartEventRow.event_id == ReviewItemRow.event_id))
            if visit_id is not None:
                query = query.where(ReviewItemRow.visit_id == visit_id)
            if not include_resolved:
                query = query.where(ReviewItemRow.state == 'open')
            query = query.order_by(ReviewItemRow.created_at_ns, ReviewItemRow.review_id)
            return [_review_view(review, event_row)
                    for review, event_row in session.execute(query)]

        return self._read(work)

    def resolve_review(self, review_id: str, resolved_by: str, note: str, quantity: int,
                       now_ns: int) -> Review:
        """Settle a review: apply ``quantity`` (signed, 0 = dismiss) to the event's SKU.

        Who (``resolved_by``) and why (``note``) are stored with the decision. Repeating the
        same resolution is a no-op; a different one for a resolved item is refused.
        """
        _check_id('resolved_by', resolved_by, ID_LENGTH)
        if not isinstance(note, str) or not note.strip():
            raise ValueError('note must say why the review was resolved this way')
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise ValueError('quantity must be an int')
        if abs(quantity) > 10_000:
            raise ValueError(f'quantity out of range: {quantity}')

        def work(session: Session) -> Review:
            review = session.get(ReviewItemRow, review_id)
            if review is None:
                raise UnknownReviewError(review_id)
            visit = self._lock_visit(session, review.visit_id)
            session.refresh(review)
            event_row = (session.get(CartEventRow, review.event_id)
                         if review.event_id is not None else None)
            assert visit is not None
            if event_row is None and quantity != 0:
                raise LedgerError(f'review {review_id} is about the whole visit: settle it '
                                  'with quantity 0 and correct the cart through its events')
            if review.state == 'resolved':
                if (review.resolved_by, review.resolution_note, review.resolved_quantity) == (
                        resolved_by, note, quantity):
                    return _review_view(review, event_row)
                raise LedgerError(
                    f'review {review_id} was already resolved by {review.resolved_by}')
            if visit.state == 'closed':
                raise LedgerError(f'visit {visit.visit_id} is closed')
            if quantity != 0 and event_row is not None:
                price = event_row.unit_price_cents
                if price is None:
                    price = self._catalog.get(event_row.sku)
                if price is None:
                    raise LedgerError(f'no price for {event_row.sku!r}')
                self._change_line(session, visit.visit_id, event_row.sku, quantity, price)
            review.state = 'resolved'
            review.resolved_by = resolved_by
            review.resolution_note = note
            review.resolved_quantity = quantity
            review.resolved_at_ns = now_ns
            if event_row is not None:
                event_row.state = 'reviewed'
            session.flush()
            LOGGER.info('review %s resolved by %s: quantity %d (%s)',
                        review_id, resolved_by, quantity, note)
            return _review_view(review, event_row)

        return self._write(work)

    # -- receipts and charges -----------------------------------------------------------

    def due_receipts(self, now_ns: int) -> list[str]:
        """Return visits whose exit grace period is over and that have no receipt yet."""
        deadline = now_ns - self._config.grace_period_ns
        return self._read(lambda session: list(session.scalars(
            select(VisitRow.visit_id)
            .where(VisitRow.state == 'closing', VisitRow.exit_seen_at_ns <= deadline)
            .order_by(VisitRow.exit_seen_at_ns, VisitRow.visit_id))))

    def closing_visits(self) -> list[tuple[str, int]]:
        """Return (visit id, exit stamp) of every exited visit without a receipt, by exit.

        For a receipt rule that is not a fixed grace period (cart_ledger waits for the
        association watermark to pass the exit stamp, then calls ``issue_receipt`` with
        ``force``).
        """
        return self._read(lambda session: [
            (visit_id, int(exit_ns or 0)) for visit_id, exit_ns in session.execute(
                select(VisitRow.visit_id, VisitRow.exit_seen_at_ns)
                .where(VisitRow.state == 'closing', VisitRow.exit_seen_at_ns.is_not(None))
                .order_by(VisitRow.exit_seen_at_ns, VisitRow.visit_id))])

    def issue_receipt(self, visit_id: str, now_ns: int, force: bool = False
                      ) -> Union[Receipt, HeldForReview]:
        """Write the receipt of an exited visit, then charge it (both idempotent).

        Refused before the grace period is over unless ``force``. Returns ``HeldForReview``
        while review items of the visit are open. If charging fails the receipt stays
        written and ``settle_pending`` completes it.
        """
        def work(session: Session) -> Union[Receipt, HeldForReview]:
            visit = self._lock_visit(session, visit_id)
            if visit is None:
                raise UnknownVisitError(visit_id)
            existing = session.scalar(select(ReceiptRow).where(ReceiptRow.visit_id == visit_id))
            if existing is not None:
                return _receipt_view(existing, None)
            if visit.state != 'closing' or visit.exit_seen_at_ns is None:
                raise LedgerError(f'visit {visit_id} has no recorded exit')
            if not force and now_ns < visit.exit_seen_at_ns + self._config.grace_period_ns:
                raise LedgerError(f'visit {visit_id} is still in its grace period')
            open_reviews = session.scalars(
                select(ReviewItemRow.review_id)
                .where(ReviewItemRow.visit_id == visit_id, ReviewItemRow.state == 'open')
                .order_by(ReviewItemRow.created_at_ns, ReviewItemRow.review_id)).all()
            if open_reviews:
                return HeldForReview(visit_id=visit_id, review_ids=tuple(open_reviews))
            lines = session.scalars(
                select(CartLineRow)
                .where(CartLineRow.visit_id == visit_id, CartLineRow.quantity > 0)
                .order_by(CartLineRow.sku)).all()
            items = [{'sku': line.sku, 'quantity': line.quantity,
                      'unit_price_cents': line.unit_price_cents} for line in lines]
            row = ReceiptRow(
                receipt_id=str(uuid.uuid4()), visit_id=visit_id, account_id=visit.account_id,
                lines_json=json.dumps(items, sort_keys=True),
                total_cents=sum(line.quantity * line.unit_price_cents for line in lines),
                currency=self._config.currency, issued_at_ns=now_ns)
            session.add(row)
            visit.state = 'closed'
            visit.closed_at_ns = now_ns
            session.flush()
            return _receipt_view(row, None)

        result = self._write(work, retry_integrity=True)
        if isinstance(result, HeldForReview):
            return result
        return replace(result, charge=self._settle_receipt(result.receipt_id, now_ns))

    def process_due(self, now_ns: int) -> list[Union[Receipt, HeldForReview]]:
        """Issue (and charge) the receipt of every visit returned by ``due_receipts``.

        A visit whose receipt or charge fails is logged and skipped; its receipt, if
        written, is charged later by ``settle_pending``.
        """
        results: list[Union[Receipt, HeldForReview]] = []
        for visit_id in self.due_receipts(now_ns):
            try:
                results.append(self.issue_receipt(visit_id, now_ns))
            except Exception:  # noqa: BLE001 - one bad visit must not block the others
                LOGGER.exception('issuing the receipt of visit %s failed', visit_id)
        return results

    def get_receipt(self, visit_id: str) -> Optional[Receipt]:
        """Return the receipt of a visit with its charge, or None."""
        def work(session: Session) -> Optional[Receipt]:
            row = session.scalar(select(ReceiptRow).where(ReceiptRow.visit_id == visit_id))
            if row is None:
                return None
            charge = session.scalar(
                select(ChargeRow).where(ChargeRow.receipt_id == row.receipt_id))
            return _receipt_view(row, charge)

        return self._read(work)

    def unpublished_receipts(self) -> list[Receipt]:
        """Receipts written but not yet announced, oldest first."""
        def work(session: Session) -> list[Receipt]:
            rows = session.scalars(select(ReceiptRow).where(
                ReceiptRow.published_at_ns.is_(None)).order_by(ReceiptRow.issued_at_ns)).all()
            return _receipt_views(session, rows)

        return self._read(work)

    def announced_receipts(self, limit: int) -> list[Receipt]:
        """Return the ``limit`` receipts announced last, oldest first."""
        def work(session: Session) -> list[Receipt]:
            rows = session.scalars(select(ReceiptRow).where(
                ReceiptRow.published_at_ns.is_not(None)).order_by(
                    ReceiptRow.published_at_ns.desc(), ReceiptRow.issued_at_ns.desc())
                .limit(limit)).all()
            return _receipt_views(session, rows[::-1])

        return self._read(work)

    def mark_receipt_published(self, receipt_id: str, now_ns: int) -> bool:
        """Record that a receipt was announced; False if it already was (or is unknown)."""
        def work(session: Session) -> bool:
            result = session.execute(update(ReceiptRow).where(
                ReceiptRow.receipt_id == receipt_id,
                ReceiptRow.published_at_ns.is_(None)).values(published_at_ns=now_ns))
            return bool(getattr(result, 'rowcount', 0))

        return self._write(work)

    def _settle_receipt(self, receipt_id: str, now_ns: int) -> Charge:
        """Claim the one charge row of a receipt, call the provider, record the outcome."""
        provider_name = self._provider.name

        def claim(session: Session) -> tuple[Charge, Optional[ChargeRequest]]:
            row = session.scalar(
                select(ChargeRow).where(ChargeRow.receipt_id == receipt_id)
                .with_for_update())
            if row is None:
                receipt = session.get(ReceiptRow, receipt_id)
                if receipt is None:
                    raise LedgerError(f'no receipt {receipt_id}')
                waived = receipt.total_cents == 0
                row = ChargeRow(
                    charge_id=str(uuid.uuid4()), receipt_id=receipt_id,
                    provider='none' if waived else provider_name, provider_ref=None,
                    amount_cents=receipt.total_cents, currency=receipt.currency,
                    state=(ChargeState.WAIVED if waived else ChargeState.PENDING).value,
                    created_at_ns=now_ns, updated_at_ns=now_ns)
                session.add(row)
                session.flush()
            if row.state != ChargeState.PENDING.value:
                return _charge_view(row), None
            if row.provider != provider_name:
                raise LedgerError(
                    f'charge {row.charge_id} is pending with provider {row.provider!r}, '
                    f'not {provider_name!r}: settle it with that provider')
            account_id = session.scalar(
                select(ReceiptRow.account_id).where(ReceiptRow.receipt_id == receipt_id))
            assert account_id is not None
            request = ChargeRequest(
                charge_id=row.charge_id, receipt_id=receipt_id, account_id=account_id,
                amount_cents=row.amount_cents, currency=row.currency)
            return _charge_view(row), request

        charge, request = self._write(claim, retry_integrity=True)
        if request is None:
            return charge
        # The provider is called outside any transaction; it deduplicates on the key.
        result = self._provider.charge(request)

        def record(session: Session) -> Charge:
            row = session.get(ChargeRow, charge.charge_id, with_for_update=True)
            assert row is not None
            if row.state == ChargeState.PENDING.value:
                row.state = result.state.value
                row.provider_ref = result.provider_ref
                row.failure_reason = result.failure_reason
                row.updated_at_ns = now_ns
                session.flush()
            return _charge_view(row)

        return self._write(record)

    def settle_pending(self, now_ns: int) -> list[Charge]:
        """Charge every receipt that has no charge or a pending one (crash recovery).

        Safe to repeat and to run concurrently: each receipt gets at most one charge row and
        the provider sees one idempotency key per receipt. Failures are logged and left for
        the next run.
        """
        def work(session: Session) -> list[str]:
            uncharged = session.scalars(
                select(ReceiptRow.receipt_id)
                .outerjoin(ChargeRow, ChargeRow.receipt_id == ReceiptRow.receipt_id)
                .where(ChargeRow.charge_id.is_(None))
                .order_by(ReceiptRow.issued_at_ns, ReceiptRow.receipt_id)).all()
            pending = session.scalars(
                select(ChargeRow.receipt_id)
                .where(ChargeRow.state == ChargeState.PENDING.value)
                .order_by(ChargeRow.created_at_ns, ChargeRow.receipt_id)).all()
            return list(dict.fromkeys([*uncharged, *pending]))

        charges: list[Charge] = []
        for receipt_id in self._read(work):
            try:
                charges.append(self._settle_receipt(receipt_id, now_ns))
            except Exception:  # noqa: BLE001 - one bad receipt must not block the others
                LOGGER.exception('charging receipt %s failed; will retry', receipt_id)
        return charges

    # -- retention ----------------------------------------------------------------------

    def purge_evidence(self, now_ns: int) -> PurgeReport:
        """Delete track-level evidence of visits closed before the retention window.

        Removes ``visit_tracks`` rows and the ``track_id`` / ``evidence_ids`` of cart events.
        Visits that never closed (no exit seen, no receipt) count as abandoned
        ``stale_visit_days`` after they opened and are purged the same way
        ``evidence_retention_days`` after that.
        Receipts, charges, cart lines, event quantities and review decisions are kept, and so
        are spent token ids (cheap, and a purged id would let a captured token in again
        should a gate's clock ever be wrong).
        """
        cutoff = now_ns - self._config.evidence_retention_days * NS_PER_DAY
        stale_cutoff = cutoff - self._config.stale_visit_days * NS_PER_DAY

        def work(session: Session) -> PurgeReport:
            old = select(VisitRow.visit_id).where(
                ((VisitRow.state == 'closed') & (VisitRow.closed_at_ns < cutoff))
                | ((VisitRow.state != 'closed') & (VisitRow.opened_at_ns < stale_cutoff)))
            touched = set(session.scalars(
                select(VisitTrackRow.visit_id).where(VisitTrackRow.visit_id.in_(old))))
            touched.update(session.scalars(
                select(CartEventRow.visit_id).where(
                    CartEventRow.visit_id.in_(old),
                    CartEventRow.track_id.is_not(None) | CartEventRow.evidence_ids.is_not(None))))
            tracks = session.execute(
                delete(VisitTrackRow).where(VisitTrackRow.visit_id.in_(old)))
            events = session.execute(
                update(CartEventRow)
                .where(CartEventRow.visit_id.in_(old),
                       (CartEventRow.track_id.is_not(None))
                       | (CartEventRow.evidence_ids.is_not(None)))
                .values(track_id=None, evidence_ids=None))
            return PurgeReport(
                visits=len(touched), tracks_deleted=_rowcount(tracks),
                events_scrubbed=_rowcount(events))

        return self._write(work)


def _rowcount(result: Any) -> int:
    """Return the number of rows a DML statement touched."""
    return int(result.rowcount)


def open_ledger(url: Union[str, URL], catalog: Mapping[str, int],
                config: Optional[LedgerConfig] = None,
                payment_provider: Optional[PaymentProvider] = None) -> Ledger:
    """Return a migrated ledger for a database URL (convenience for nodes and scripts)."""
    return Ledger(url, config, catalog, payment_provider)


__all__ = [
    'Cart', 'CartEvent', 'CartItem', 'Charge', 'DatabaseUnavailableError', 'EventOutcome',
    'HeldForReview', 'Ledger',
    'EVIDENCE_ID_LENGTH', 'LedgerConfig', 'LedgerError', 'MAX_EVIDENCE_IDS', 'PurgeReport',
    'Receipt', 'Review', 'ReviewReason',
    'TokenReplayedError', 'UnknownAccountError', 'UnknownReviewError', 'UnknownVisitError',
    'VisitInfo', 'alembic_config', 'is_retryable_database_error', 'migrate',
    'MIGRATION_LOCK_KEY', 'MIGRATIONS_DIR', 'normalise_url', 'NS_PER_DAY', 'NS_PER_SECOND',
    'open_ledger',
]
