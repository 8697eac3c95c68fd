"""Cart ledger node: applies cart events, issues receipts after exit, serves carts and reviews.

Subscribes:
  cart/events             go_store/CartEvent (reliable, keep last 1000): applied once per
                          event_id; unknown SKU kept as a rejected event, unknown visit dropped
  association/watermark   std_msgs/Header (reliable, transient local, keep last 1): stamp =
                          event time up to which association has delivered every cart event
Publishes:
  cart/event_acks         diagnostic_msgs/KeyValue (reliable, keep last 1000): key the
                          event_id, value the outcome, once the event is committed (also for
                          duplicates): upstream re-sends every event until it is acknowledged
  receipts                go_store/Receipt (reliable, transient local, keep last 100): ISSUED
                          once per visit; HELD_FOR_REVIEW once per set of open reviews
  diagnostics             diagnostic_msgs/DiagnosticArray
Services:
  ledger/get_cart         go_store/GetCart
  ledger/list_reviews     go_store/ListReviews
  ledger/resolve_review   go_store/ResolveReview (who and why are logged and stored)
Every ``receipt_check_period_s`` the node issues the receipts of exited visits once the
association watermark has passed their exit stamp (every cart event up to the exit is then
applied), or, for a stalled or absent association, once ``grace_period_s`` has passed both
on the node clock since the exit and in steady time since this node first saw the exit
(counted: ``watermark_waits_expired``); it settles pending charges (LedgerPaymentProvider)
and, once a day, purges evidence older than ``retention_days``. ``now`` is the node clock
(sim time with use_sim_time).
A visit ends only from the gate's record in the ledger database (``mark_exit``), never
from a ``Visit`` message: anyone on the bus can publish one. No receipt is issued during
``receipt_holdoff_s`` (steady time) after the database connected, so that upstream can
re-send what a restart lost before a bill is closed.

The event callback only queues: one worker thread applies events, then runs the receipt
checks, in order (``SerialWorker``). A stalled database (a lock held elsewhere, a server
restarting) delays them but loses nothing; lock waits are bounded (``lock_wait_s``) and
the write retried with backoff. A full queue is counted (``dropped_queue_full``) and
logged. The database connection is opened by the worker too, retried until it succeeds.
Services answer from the executor on a second connection pool with short lock waits.
Ledger core: go_store_nodes.core.ledger; docs/ledger.md.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional

from diagnostic_msgs.msg import KeyValue
from go_store.msg import CartEvent, Receipt
from go_store.srv import GetCart, ListReviews, ResolveReview
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from ..core import ledger as core
from ..core.gate import account_ref
from ..core.ledger.worker import SerialWorker, WorkerConfig
from ..core.store import load_store_description
from ..ros.diagnostics import ERROR, NodeDiagnostics, OK, WARN
from ..ros.ledger_conversions import (
    cart_event_from_msg,
    held_msg,
    printable_url,
    receipt_lines,
    receipt_msg,
    resolve_database_url,
    review_item_msg,
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
# Services must not hold the executor (and so the event queue) for long: their database
# statements wait this long for a lock, once, then answer 'busy'.
SERVICE_LOCK_WAIT_MS = 200

PARAMETERS = (
    STORE_DESCRIPTION,
    DATABASE_URL,
    ParamSpec('grace_period_s', Parameter.Type.DOUBLE,
              's an exited visit waits at most for the association watermark (node clock '
              'from the exit and steady time since seen); the receipt goes out as soon as '
              'the watermark passes the exit stamp', 0.0, 86_400.0),
    ParamSpec('receipt_check_period_s', Parameter.Type.DOUBLE,
              's between checks for due receipts and pending charges', 0.05, 3600.0),
    ParamSpec('retention_days', Parameter.Type.INTEGER,
              'days after a visit closed before its track ids and evidence ids are purged',
              1, 3650),
    ParamSpec('review_below_confidence', Parameter.Type.DOUBLE,
              'cart events with a lower confidence wait for a person (0: never)', 0.0, 1.0),
    ParamSpec('max_quantity_delta', Parameter.Type.INTEGER,
              'cart events moving more units than this wait for a person', 1, 10_000),
    ParamSpec('receipt_holdoff_s', Parameter.Type.DOUBLE,
              's after the database connected before the first receipt (upstream re-sends '
              'what a restart lost first)', 0.0, 3600.0),
    ParamSpec('event_before_visit_tolerance_s', Parameter.Type.DOUBLE,
              's a cart event may be stamped before its visit opened; earlier ones wait '
              'for review', 0.0, 86_400.0),
    ParamSpec('lock_wait_s', Parameter.Type.DOUBLE,
              's one database statement waits for another writer (SQLite busy timeout, '
              'PostgreSQL lock_timeout) before the write is retried', 0.1, 600.0),
    ParamSpec('input_queue_capacity', Parameter.Type.INTEGER,
              'cart events waiting for the database at most; more are dropped and counted '
              '(dropped_queue_full), upstream re-sends them as they are not acknowledged',
              1, 10_000_000),
    DIAGNOSTICS_PERIOD,
)

RECEIPT_HISTORY_DEPTH = 100
DURABLE_QOS = QoSProfile(depth=RECEIPT_HISTORY_DEPTH, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
EVENTS_QOS = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
ACKS_QOS = EVENTS_QOS
# The latest watermark only; a (re)started ledger gets it at once.
WATERMARK_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)

_EVENT_LOG = {
    core.EventOutcome.CONFLICT: 'event id reused with different content; ignored',
    core.EventOutcome.UNKNOWN_VISIT: 'unknown visit; dropped',
    core.EventOutcome.REJECTED_UNKNOWN_SKU: 'unknown SKU; kept as a rejected event',
    core.EventOutcome.REJECTED_VISIT_CLOSED: 'visit already has its receipt; kept as rejected',
}


class CartLedgerNode(Node):
    """The store's carts, reviews, receipts and charges, on the ledger database."""

    def __init__(self, **kwargs) -> None:
        """Read the parameters, subscribe, serve; the worker connects to the database."""
        super().__init__('cart_ledger', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            url = resolve_database_url(params['database_url'])
            lock_wait_ms = round(params['lock_wait_s'] * 1000)
            config = core.LedgerConfig(
                grace_period_ns=round(params['grace_period_s'] * NS_PER_SECOND),
                currency=self.description.currency,
                evidence_retention_days=params['retention_days'],
                review_below_confidence=params['review_below_confidence'],
                max_quantity_delta=params['max_quantity_delta'],
                sqlite_busy_timeout_ms=lock_wait_ms, postgres_lock_timeout_ms=lock_wait_ms,
                event_before_visit_tolerance_ns=round(
                    params['event_before_visit_tolerance_s'] * NS_PER_SECOND))
            worker_config = WorkerConfig(capacity=params['input_queue_capacity'])
        except ValueError as error:
            raise MissingParameterError(f"node 'cart_ledger': {error}") from None
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self._catalog = {sku: product.price_cents
                         for sku, product in self.description.catalog.items()}
        self._names = {sku: product.name for sku, product in self.description.catalog.items()}
        self._url = url
        self._config = config
        self._holdoff_s = params['receipt_holdoff_s']
        self.ledger: Optional[core.Ledger] = None
        self._service_ledger: Optional[core.Ledger] = None
        self._connected_at: Optional[float] = None  # time.monotonic()
        self._frame_id = self.description.map_frame
        self._held: dict[str, tuple[str, ...]] = {}
        self._last_purge_ns: Optional[int] = None
        self._check_queued = threading.Event()
        self._grace_s = params['grace_period_s']
        # Association watermark (ns, event time): written by the executor, read by the
        # worker; an int assignment is atomic. 0: none received since start.
        self._watermark_ns = 0
        self._exit_seen_steady: dict[str, float] = {}  # visit -> time.monotonic() first seen
        self._wait_expired: set[str] = set()
        self._receipt_publisher = self.create_publisher(Receipt, 'receipts', DURABLE_QOS)
        self._ack_publisher = self.create_publisher(KeyValue, 'cart/event_acks', ACKS_QOS)
        self.worker = SerialWorker(
            'cart_ledger_db', core.is_retryable_database_error, worker_config,
            on_retry=self._on_retry, on_error=self._on_job_error)
        self.diagnostics.set_status(WARN, f'connecting to the ledger {printable_url(url)}')
        self.worker.submit('connect', self._connect)
        self._event_subscription = self.create_subscription(
            CartEvent, 'cart/events', self.on_cart_event, EVENTS_QOS)
        self._watermark_subscription = self.create_subscription(
            Header, 'association/watermark', self.on_watermark, WATERMARK_QOS)
        self._ledger_services = [
            self.create_service(GetCart, 'ledger/get_cart', self.get_cart),
            self.create_service(ListReviews, 'ledger/list_reviews', self.list_reviews),
            self.create_service(ResolveReview, 'ledger/resolve_review', self.resolve_review),
        ]
        # Steady time: receipts and retries go on while sim time stands still.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._receipt_timer = self.create_timer(
            params['receipt_check_period_s'], self._queue_receipt_check, clock=steady)
        self._queue_timer = self.create_timer(
            params['diagnostics_period_s'], self._report_queue, clock=steady)
        self.diagnostics.values.update(store_description=path, database=printable_url(url))
        self.get_logger().info(
            f'cart ledger started: {len(self._catalog)} SKUs, ledger {printable_url(url)}, '
            f'receipts when the association watermark passes the exit, at most '
            f'{params["grace_period_s"]} s after it; none before {self._holdoff_s} s')

    def _connect(self) -> None:
        """Open (and migrate) the ledger; any failure makes the worker retry with backoff."""
        try:
            ledger = core.Ledger(self._url, self._config, self._catalog,
                                 core.LedgerPaymentProvider())
            service_config = core.LedgerConfig(
                grace_period_ns=self._config.grace_period_ns, currency=self._config.currency,
                evidence_retention_days=self._config.evidence_retention_days,
                review_below_confidence=self._config.review_below_confidence,
                max_quantity_delta=self._config.max_quantity_delta, max_write_retries=0,
                sqlite_busy_timeout_ms=SERVICE_LOCK_WAIT_MS,
                postgres_lock_timeout_ms=SERVICE_LOCK_WAIT_MS, auto_migrate=False,
                event_before_visit_tolerance_ns=self._config.event_before_visit_tolerance_ns)
            service_ledger = core.Ledger(self._url, service_config, self._catalog,
                                         core.LedgerPaymentProvider())
        except Exception as error:  # noqa: BLE001 - a server still starting, a bad URL
            raise core.DatabaseUnavailableError(
                f'cannot open the ledger {printable_url(self._url)}: {error}') from error
        self.ledger, self._service_ledger = ledger, service_ledger
        self._restore_receipt_history(ledger)
        self._connected_at = time.monotonic()
        self.diagnostics.set_status(OK, f'{len(self._catalog)} SKUs priced')
        self.get_logger().info(
            f'cart ledger connected to {printable_url(self._url)}; receipts from '
            f'{self._holdoff_s} s on')

    def _restore_receipt_history(self, ledger: core.Ledger) -> None:
        """Publish the receipts announced last again, as the durable history of the topic.

        ``receipts`` is transient local: a subscriber that matches later gets the last
        messages from the writer's history. That history dies with the process, so a
        receipt announced just before a crash could reach no one who had not matched yet
        (a consumer starting, or reconnecting). After a restart the history is refilled
        from the database; consumers keep one message per receipt_id.
        """
        try:
            receipts = ledger.announced_receipts(RECEIPT_HISTORY_DEPTH)
        except Exception as error:  # noqa: BLE001 - receipts go on; only the history is short
            self.diagnostics.count('errors')
            self.get_logger().error(f'reading the receipts announced last failed: {error!r}')
            return
        for receipt in receipts:
            self._receipt_publisher.publish(receipt_msg(receipt, self._names, self._frame_id))
        if receipts:
            self.diagnostics.count('receipts_republished', len(receipts))
            self.get_logger().info(
                f'{len(receipts)} receipts announced before this start published again '
                '(the durable history of receipts)')

    def destroy_node(self) -> None:
        """Stop the worker, release the database connections, then the node."""
        worker = getattr(self, 'worker', None)  # absent when the constructor failed
        if worker is not None:
            abandoned = worker.stop()
            if abandoned:
                self.get_logger().warning(
                    f'{abandoned} queued jobs not run at exit (events are not acknowledged: '
                    'upstream re-sends them)')
        for ledger in (getattr(self, 'ledger', None), getattr(self, '_service_ledger', None)):
            if ledger is not None:
                ledger.close()
        super().destroy_node()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _fault(self, what: str, error: BaseException) -> None:
        """Log and count an unexpected failure."""
        self.get_logger().error(f'{what}: {error!r}')
        self.diagnostics.count('errors')
        self.diagnostics.set_status(ERROR, f'{what}: {error}')

    def _on_retry(self, label: str, error: BaseException, attempt: int,
                  delay_s: float) -> None:
        self.diagnostics.count('database_retries')
        first_line = str(error).splitlines()[0] if str(error) else ''
        message = (f'{label}: database not available ({type(error).__name__}: {first_line}); '
                   f'retry {attempt} in {delay_s:.2f} s, nothing is lost')
        if attempt == 1 or attempt % 10 == 0:
            self.get_logger().warning(message)
        self.diagnostics.set_status(ERROR if label == 'connect' or attempt > 3 else WARN,
                                    message)

    def _on_job_error(self, label: str, error: BaseException) -> None:
        self._fault(f'{label} failed', error)

    def _report_queue(self) -> None:
        stats = self.worker.stats
        self.diagnostics.values.update(
            queue_depth=str(self.worker.depth), queue_high_water=str(stats.high_water),
            queue_overflowed=str(stats.overflowed))

    # -- input ----------------------------------------------------------------------------

    def on_cart_event(self, msg: CartEvent) -> None:
        """Queue one cart event for the worker (applied once per event_id, then acked)."""
        self.diagnostics.count('events_received')
        try:
            event, trimmed = cart_event_from_msg(msg)
        except ValueError as error:
            self.get_logger().warning(f'dropped malformed cart event {msg.event_id!r}: {error}')
            self.diagnostics.count('dropped_malformed_events')
            return
        for what in trimmed:
            self.diagnostics.count(f'trimmed_{what}')
            self.get_logger().warning(f'cart event {event.event_id}: {what} trimmed')
        now_ns = self._now_ns() or None
        if not self.worker.submit('cart event', lambda: self._store(event, now_ns)):
            self.diagnostics.count('dropped_queue_full')
            self.get_logger().error(
                f'event queue full ({self.worker.capacity}): cart event {event.event_id} '
                'dropped (not acknowledged: upstream re-sends it)')
            self.diagnostics.set_status(ERROR, 'event queue full')

    def _store(self, event: core.CartEvent, now_ns: Optional[int]) -> None:
        """Apply one event and acknowledge it (worker thread; db faults are retried)."""
        assert self.ledger is not None  # the connect job ran first
        outcome = self.ledger.apply_cart_event(event, now_ns)
        self._ack_publisher.publish(KeyValue(key=event.event_id, value=outcome.value))
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
        if self.diagnostics.level != OK and self.worker.depth == 0:
            self.diagnostics.set_status(OK, 'running')

    def on_watermark(self, msg: Header) -> None:
        """Keep the association watermark (never moves back: a restarted association)."""
        stamp_ns = msg.stamp.sec * NS_PER_SECOND + msg.stamp.nanosec
        self.diagnostics.count('watermarks_received')
        if stamp_ns > self._watermark_ns:
            self._watermark_ns = stamp_ns
            self.diagnostics.values['watermark_ns'] = str(stamp_ns)

    # -- receipts -------------------------------------------------------------------------

    def _queue_receipt_check(self) -> None:
        """Queue one receipt check behind the events already queued (never two at once)."""
        if self._check_queued.is_set():
            return
        self._check_queued.set()
        if not self.worker.submit('receipt check', self.check_receipts):
            self._check_queued.clear()
            self.diagnostics.count('dropped_queue_full')

    def check_receipts(self) -> None:
        """Issue due receipts, settle pending charges and purge old evidence once a day."""
        self._check_queued.clear()
        now_ns = self._now_ns()
        if now_ns <= 0 or self.ledger is None or self._connected_at is None:
            return  # sim time: no /clock yet; or not connected
        if time.monotonic() - self._connected_at < self._holdoff_s:
            return  # upstream re-sends what a restart lost before any bill closes
        self.diagnostics.count('receipt_checks')
        for visit_id in self._due(now_ns):
            try:
                self._issue(visit_id, now_ns)
            except Exception as error:  # noqa: BLE001 - one visit must not stop the rest
                if core.is_retryable_database_error(error):
                    raise
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
        if self.diagnostics.level == ERROR:
            self.diagnostics.set_status(OK, 'recovered')

    def _due(self, now_ns: int) -> list[str]:
        """Return the exited visits whose receipt may go out (watermark past exit, or waited)."""
        assert self.ledger is not None
        watermark_ns = self._watermark_ns
        steady_now = time.monotonic()
        grace_ns = round(self._grace_s * NS_PER_SECOND)
        due = []
        closing = self.ledger.closing_visits()
        for visit_id, exit_ns in closing:
            seen = self._exit_seen_steady.setdefault(visit_id, steady_now)
            if watermark_ns >= exit_ns:
                due.append(visit_id)
            elif now_ns >= exit_ns + grace_ns and steady_now - seen >= self._grace_s:
                if visit_id not in self._wait_expired:
                    self._wait_expired.add(visit_id)
                    self.diagnostics.count('watermark_waits_expired')
                    self.get_logger().warning(
                        f'visit {visit_id}: association watermark '
                        f'{watermark_ns / NS_PER_SECOND:.3f} s still before the exit '
                        f'{exit_ns / NS_PER_SECOND:.3f} s after {self._grace_s} s; '
                        'receipt issued without it')
                due.append(visit_id)
        still_closing = {visit_id for visit_id, _ in closing}
        for forgotten in set(self._exit_seen_steady) - still_closing:
            del self._exit_seen_steady[forgotten]
            self._wait_expired.discard(forgotten)
        return due

    def _issue(self, visit_id: str, now_ns: int) -> None:
        """Issue one visit's receipt, or announce (once) that it is held for review."""
        assert self.ledger is not None
        # The receipt rule (watermark or bounded wait) is decided by _due, not the core's
        # fixed grace period.
        result = self.ledger.issue_receipt(visit_id, now_ns, force=True)
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
        assert self.ledger is not None
        for receipt in self.ledger.unpublished_receipts():
            self._receipt_publisher.publish(receipt_msg(receipt, self._names, self._frame_id))
            self.ledger.mark_receipt_published(receipt.receipt_id, now_ns)
            self.diagnostics.count('receipts_issued')
            charge = receipt.charge
            self.get_logger().info(
                f'receipt {receipt.receipt_id} of visit {receipt.visit_id} '
                f'({account_ref(receipt.account_id)}): {len(receipt.items)} lines, '
                f'{receipt.total_cents} {receipt.currency} cents, '
                f'charge {charge.state.value if charge else "pending"}')

    def _services_ledger(self) -> core.Ledger:
        if self._service_ledger is None:
            raise core.LedgerError('the ledger database is not connected yet')
        return self._service_ledger

    # -- services -------------------------------------------------------------------------

    def get_cart(self, request: GetCart.Request, response: GetCart.Response
                 ) -> GetCart.Response:
        """Return the current cart of a visit."""
        try:
            cart = self._services_ledger().get_cart(request.visit_id)
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
            ledger = self._services_ledger()
            if request.visit_id:
                reviews = ledger.list_reviews(request.visit_id, include_resolved=True)
            else:
                reviews = ledger.list_reviews()
        except Exception as error:  # noqa: BLE001 - answered, not raised
            self._fault('list_reviews failed', error)
            return response
        response.items = [review_item_msg(review) for review in reviews]
        return response

    def resolve_review(self, request: ResolveReview.Request, response: ResolveReview.Response
                       ) -> ResolveReview.Response:
        """Resolve a review item; who decided and why are logged and stored."""
        try:
            review = self._services_ledger().resolve_review(
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
