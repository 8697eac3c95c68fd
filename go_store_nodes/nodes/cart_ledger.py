"""Cart ledger node: applies cart events, issues receipts after exit, serves carts and reviews.

Subscribes:
  cart/events             go_store/CartEvent (reliable, keep last 100): applied once per
                          event_id; unknown SKU kept as a rejected event, unknown visit dropped
  visits                  go_store/Visit (reliable, transient local): ENDED -> mark_exit
Publishes:
  receipts                go_store/Receipt (reliable, transient local, keep last 100): ISSUED
                          once per visit; HELD_FOR_REVIEW once per set of open reviews
  diagnostics             diagnostic_msgs/DiagnosticArray
Services:
  ledger/get_cart         go_store/GetCart
  ledger/list_reviews     go_store/ListReviews
  ledger/resolve_review   go_store/ResolveReview (who and why are logged and stored)
Every ``receipt_check_period_s`` the node issues the receipts of visits whose grace period
is over, settles pending charges (LedgerPaymentProvider) and, once a day, purges evidence
older than ``retention_days``. ``now`` is the node clock (sim time with use_sim_time).
Ledger core: go_store_nodes.core.ledger; docs/ledger.md.
"""

from __future__ import annotations

from collections import deque
import sys
from typing import Optional

from go_store.msg import CartEvent, Receipt, Visit
from go_store.srv import GetCart, ListReviews, ResolveReview
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core import ledger as core
from ..core.store import load_store_description
from ..ros.diagnostics import ERROR, NodeDiagnostics, OK
from ..ros.ledger_conversions import (
    cart_event_from_msg,
    held_msg,
    printable_url,
    receipt_lines,
    receipt_msg,
    resolve_database_url,
    review_item_msg,
    stamp_to_ns,
)
from ..ros.params import (
    DATABASE_URL,
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from .runner import run_single_node

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
# Events the database could not take (e.g. it was unreachable) wait here to be retried.
MAX_RETRY_EVENTS = 10_000

PARAMETERS = (
    STORE_DESCRIPTION,
    DATABASE_URL,
    ParamSpec('grace_period_s', Parameter.Type.DOUBLE,
              's after the exit during which late cart events still count', 0.0, 86_400.0),
    ParamSpec('receipt_check_period_s', Parameter.Type.DOUBLE,
              's between checks for due receipts and pending charges', 0.05, 3600.0),
    ParamSpec('retention_days', Parameter.Type.INTEGER,
              'days after a visit closed before its track ids and evidence ids are purged',
              1, 3650),
    ParamSpec('review_below_confidence', Parameter.Type.DOUBLE,
              'cart events with a lower confidence wait for a person (0: never)', 0.0, 1.0),
    ParamSpec('max_quantity_delta', Parameter.Type.INTEGER,
              'cart events moving more units than this wait for a person', 1, 10_000),
    DIAGNOSTICS_PERIOD,
)

DURABLE_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
EVENTS_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)

_EVENT_LOG = {
    core.EventOutcome.CONFLICT: 'event id reused with different content; ignored',
    core.EventOutcome.UNKNOWN_VISIT: 'unknown visit; dropped',
    core.EventOutcome.REJECTED_UNKNOWN_SKU: 'unknown SKU; kept as a rejected event',
    core.EventOutcome.REJECTED_VISIT_CLOSED: 'visit already has its receipt; kept as rejected',
}


class CartLedgerNode(Node):
    """The store's carts, reviews, receipts and charges, on the ledger database."""

    def __init__(self, **kwargs) -> None:
        """Open the ledger with the store catalog; subscribe, serve and start the timer."""
        super().__init__('cart_ledger', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            url = resolve_database_url(params['database_url'])
            config = core.LedgerConfig(
                grace_period_ns=round(params['grace_period_s'] * NS_PER_SECOND),
                currency=self.description.currency,
                evidence_retention_days=params['retention_days'],
                review_below_confidence=params['review_below_confidence'],
                max_quantity_delta=params['max_quantity_delta'])
        except ValueError as error:
            raise MissingParameterError(f"node 'cart_ledger': {error}") from None
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        catalog = {sku: product.price_cents for sku, product in self.description.catalog.items()}
        self._names = {sku: product.name for sku, product in self.description.catalog.items()}
        self.ledger = core.Ledger(url, config, catalog, core.LedgerPaymentProvider())
        self._frame_id = self.description.map_frame
        self._held: dict[str, tuple[str, ...]] = {}
        self._retry: deque[core.CartEvent] = deque()
        self._last_purge_ns: Optional[int] = None
        self._receipt_publisher = self.create_publisher(Receipt, 'receipts', DURABLE_QOS)
        self._event_subscription = self.create_subscription(
            CartEvent, 'cart/events', self.on_cart_event, EVENTS_QOS)
        self._visit_subscription = self.create_subscription(
            Visit, 'visits', self.on_visit, DURABLE_QOS)
        self._ledger_services = [
            self.create_service(GetCart, 'ledger/get_cart', self.get_cart),
            self.create_service(ListReviews, 'ledger/list_reviews', self.list_reviews),
            self.create_service(ResolveReview, 'ledger/resolve_review', self.resolve_review),
        ]
        self._receipt_timer = self.create_timer(
            params['receipt_check_period_s'], self.check_receipts)
        self.diagnostics.values.update(store_description=path, database=printable_url(url))
        self.diagnostics.set_status(OK, f'{len(catalog)} SKUs priced')
        self.get_logger().info(
            f'cart ledger ready: {len(catalog)} SKUs, ledger {printable_url(url)}, grace '
            f'{params["grace_period_s"]} s')

    def destroy_node(self) -> None:
        """Release the database connections, then the node."""
        ledger = getattr(self, 'ledger', None)  # absent when the constructor failed
        if ledger is not None:
            ledger.close()
        super().destroy_node()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _fault(self, what: str, error: Exception) -> None:
        """Log and count an unexpected failure (e.g. the database is unreachable)."""
        self.get_logger().error(f'{what}: {error!r}')
        self.diagnostics.count('errors')
        self.diagnostics.set_status(ERROR, f'{what}: {error}')

    # -- input ----------------------------------------------------------------------------

    def on_cart_event(self, msg: CartEvent) -> None:
        """Apply one cart event (idempotent on event_id)."""
        self.diagnostics.count('events_received')
        try:
            event = cart_event_from_msg(msg)
        except ValueError as error:
            self.get_logger().warning(f'dropped malformed cart event {msg.event_id!r}: {error}')
            self.diagnostics.count('dropped_malformed_events')
            return
        if self._retry or not self._store(event):  # keep the order: older events first
            self._queue(event)

    def _store(self, event: core.CartEvent) -> bool:
        """Apply an event; return False on a database fault (the caller keeps it)."""
        try:
            outcome = self.ledger.apply_cart_event(event, self._now_ns() or None)
        except Exception as error:  # noqa: BLE001 - kept for a retry, the node runs on
            self._fault(f'cart event {event.event_id} not stored yet, will retry', error)
            return False
        self.diagnostics.count(f'events_{outcome.value}')
        message = _EVENT_LOG.get(outcome)
        if message is not None:
            self.get_logger().warning(
                f'cart event {event.event_id} (visit {event.visit_id}, {event.sku} '
                f'{event.quantity_delta:+d}): {message}')
        elif outcome is core.EventOutcome.QUEUED_FOR_REVIEW:
            self.get_logger().info(
                f'cart event {event.event_id} (visit {event.visit_id}, {event.sku} '
                f'{event.quantity_delta:+d}) waits for review')
        return True

    def _queue(self, event: core.CartEvent) -> None:
        if len(self._retry) >= MAX_RETRY_EVENTS:
            lost = self._retry.popleft()
            self.get_logger().error(f'retry queue full: cart event {lost.event_id} dropped')
            self.diagnostics.count('dropped_retry_overflow')
        self._retry.append(event)
        self.diagnostics.values['events_waiting_for_database'] = str(len(self._retry))

    def on_visit(self, msg: Visit) -> None:
        """Record the exit of an ENDED visit (starts its grace period); idempotent."""
        if msg.status != Visit.ENDED:
            return
        try:
            recorded = self.ledger.mark_exit(msg.visit_id, stamp_to_ns(msg.header.stamp))
        except core.UnknownVisitError:
            self.get_logger().warning(f'visit {msg.visit_id!r} ENDED but is unknown; dropped')
            self.diagnostics.count('dropped_unknown_visit_exits')
            return
        except Exception as error:  # noqa: BLE001 - the gate records exits too
            self._fault(f'recording the exit of visit {msg.visit_id} failed', error)
            return
        self.diagnostics.count('exits_recorded' if recorded else 'exits_already_recorded')

    # -- receipts -------------------------------------------------------------------------

    def check_receipts(self) -> None:
        """Issue due receipts, settle pending charges and purge old evidence once a day."""
        now_ns = self._now_ns()
        if now_ns <= 0:
            return  # sim time: no /clock yet
        self.diagnostics.count('receipt_checks')
        try:
            while self._retry:
                if not self._store(self._retry[0]):
                    return
                self._retry.popleft()
            self.diagnostics.values['events_waiting_for_database'] = '0'
            for visit_id in self.ledger.due_receipts(now_ns):
                try:
                    self._issue(visit_id, now_ns)
                except Exception as error:  # noqa: BLE001 - one visit must not stop the rest
                    # E.g. the payment provider failed: the receipt is written and
                    # settle_pending charges it; it is announced below all the same.
                    self._fault(f'issuing the receipt of visit {visit_id} failed', error)
            self._publish_unannounced(now_ns)
            self.ledger.settle_pending(now_ns)
            if self._last_purge_ns is None or now_ns - self._last_purge_ns >= NS_PER_DAY:
                report = self.ledger.purge_evidence(now_ns)
                self._last_purge_ns = now_ns
                if report.visits:
                    self.get_logger().info(f'retention: purged {report}')
        except Exception as error:  # noqa: BLE001 - retried on the next tick
            self._fault('receipt check failed', error)
            return
        if self.diagnostics.level == ERROR:
            self.diagnostics.set_status(OK, 'recovered')

    def _issue(self, visit_id: str, now_ns: int) -> None:
        """Issue one visit's receipt, or announce (once) that it is held for review."""
        result = self.ledger.issue_receipt(visit_id, now_ns)
        if isinstance(result, core.HeldForReview):
            if self._held.get(visit_id) == result.review_ids:
                return
            self._held[visit_id] = result.review_ids
            cart = self.ledger.get_cart(visit_id)
            self._receipt_publisher.publish(
                held_msg(result, cart, self._names, now_ns, self._frame_id))
            self.diagnostics.count('receipts_held')
            self.get_logger().info(
                f'receipt of visit {visit_id} held for review {list(result.review_ids)}')
            return
        self._held.pop(visit_id, None)

    def _publish_unannounced(self, now_ns: int) -> None:
        """Announce every written receipt not announced yet, then record that it was.

        The one place receipts are published: a receipt written just before a crash or a
        failed charge is announced at the next check. A crash between publishing and
        recording repeats the message once; consumers keep one per receipt_id.
        """
        for receipt in self.ledger.unpublished_receipts():
            self._receipt_publisher.publish(receipt_msg(receipt, self._names, self._frame_id))
            self.ledger.mark_receipt_published(receipt.receipt_id, now_ns)
            self.diagnostics.count('receipts_issued')
            charge = receipt.charge
            self.get_logger().info(
                f'receipt {receipt.receipt_id} of visit {receipt.visit_id}: '
                f'{len(receipt.items)} lines, {receipt.total_cents} {receipt.currency} cents, '
                f'charge {charge.state.value if charge else "pending"}')

    # -- services -------------------------------------------------------------------------

    def get_cart(self, request: GetCart.Request, response: GetCart.Response
                 ) -> GetCart.Response:
        """Return the current cart of a visit."""
        try:
            cart = self.ledger.get_cart(request.visit_id)
        except core.UnknownVisitError:
            response.found = False
            response.message = f'unknown visit {request.visit_id!r}'
            return response
        except Exception as error:  # noqa: BLE001 - answered, not raised
            self._fault('get_cart failed', error)
            response.found = False
            response.message = f'ledger error: {error}'
            return response
        response.found = True
        response.account_id = cart.account_id
        response.lines = receipt_lines(cart.items, self._names)
        response.total_cents = cart.total_cents
        response.currency = cart.currency
        response.open_review_ids = list(cart.open_review_ids)
        return response

    def list_reviews(self, request: ListReviews.Request, response: ListReviews.Response
                     ) -> ListReviews.Response:
        """List the review items of a visit (open and resolved), or every open one."""
        try:
            if request.visit_id:
                reviews = self.ledger.list_reviews(request.visit_id, include_resolved=True)
            else:
                reviews = self.ledger.list_reviews()
        except Exception as error:  # noqa: BLE001 - answered, not raised
            self._fault('list_reviews failed', error)
            return response
        response.items = [review_item_msg(review) for review in reviews]
        return response

    def resolve_review(self, request: ResolveReview.Request, response: ResolveReview.Response
                       ) -> ResolveReview.Response:
        """Resolve a review item; who decided and why are logged and stored."""
        try:
            review = self.ledger.resolve_review(
                request.review_id, request.resolved_by, request.note, int(request.quantity),
                self._now_ns())
        except (ValueError, core.LedgerError) as error:
            if isinstance(error, core.UnknownReviewError):
                error = core.UnknownReviewError(f'unknown review {request.review_id!r}')
            self.get_logger().warning(
                f'resolve_review {request.review_id!r} by {request.resolved_by!r} refused: '
                f'{error}')
            self.diagnostics.count('reviews_refused')
            response.success = False
            response.message = str(error) or type(error).__name__
            return response
        except Exception as error:  # noqa: BLE001 - answered, not raised
            self._fault('resolve_review failed', error)
            response.success = False
            response.message = f'ledger error: {error}'
            return response
        self.get_logger().info(
            f'review {review.review_id} of visit {review.visit_id} resolved by '
            f'{review.resolved_by}: {review.sku} {review.resolved_quantity:+d} '
            f'(why: {review.resolution_note})')
        self.diagnostics.count('reviews_resolved')
        response.success = True
        response.message = f'{review.sku}: {review.resolved_quantity:+d} applied'
        return response


def main(args: list[str] | None = None) -> None:
    """Run the cart ledger node until shut down."""
    sys.exit(run_single_node(CartLedgerNode, args))


NODE = CartLedgerNode

if __name__ == '__main__':
    main()
