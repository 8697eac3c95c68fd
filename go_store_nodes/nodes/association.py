"""Association node: who took what; cart events delivered until the ledger acknowledges them.

Subscribes:
  shelves/events          go_store/ShelfEvent (reliable, keep last 1000)
  products/observations   go_store/ProductObservationArray (best effort, keep last 100)
  people/skeletons        go_store/SkeletonArray (best effort, keep last 100)
  people/tracks           go_store/TrackArray (reliable, keep last 100)
  visits                  go_store/Visit (reliable, transient local, keep last 100): links
                          tracks to visits when a Track does not carry its visit yet
  cart/event_acks         diagnostic_msgs/KeyValue (reliable, keep last 1000): the ledger's
                          acknowledgement, key = event id
Publishes:
  cart/events             go_store/CartEvent (reliable, keep last 1000), stamp = the shelf
                          event's stamp; re-sent (same id and content) until acknowledged
  association/watermark   std_msgs/Header (reliable, transient local, keep last 1): stamp =
                          event time up to which every shelf event is resolved *and* its cart
                          event acknowledged by the ledger; frame_id = map
  diagnostics             diagnostic_msgs/DiagnosticArray

Callbacks only convert and queue. One worker thread (``SerialWorker``) runs the engine
(go_store_nodes.core.association), writes cart events to the durable outbox (SQLite file,
``outbox_path``) *before* publishing them, applies acknowledgements and re-sends what is
not acknowledged with backoff (``resend_initial_s`` doubling to ``resend_max_s``). A kill
loses nothing that was resolved (the outbox is re-sent after the restart, the ledger
applies each id once) and doubles nothing (ids come from the shelf event ids). A full queue
refuses the input and counts it. Bad input (unknown shelf/bin, SKU missing from the
catalog, stamps from the future, malformed) is logged, counted and dropped.
docs/shelf-to-cart.md, "Association and receipts".
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Optional

from diagnostic_msgs.msg import KeyValue
from go_store.msg import (
    CartEvent,
    Keypoint,
    ProductObservationArray,
    ShelfEvent,
    SkeletonArray,
    TrackArray,
    Visit,
)
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from ..core import association as core
from ..core.association.outbox import Outbox, sqlite_url
from ..core.ledger import is_retryable_database_error
from ..core.ledger.worker import SerialWorker, WorkerConfig
from ..core.store import load_store_description
from ..ros.diagnostics import ERROR, NodeDiagnostics, OK, WARN
from ..ros.ledger_conversions import ns_to_stamp, stamp_to_ns
from ..ros.params import (
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from .runner import run_single_node

NS_PER_SECOND = 1_000_000_000
REVIEW_REASON_LENGTH = 64

PARAMETERS = (
    STORE_DESCRIPTION,
    ParamSpec('outbox_path', Parameter.Type.STRING,
              'SQLite file of cart events kept until the ledger acknowledges them '
              '(~ expanded, folder created)'),
    ParamSpec('max_input_wait_s', Parameter.Type.DOUBLE,
              's a shelf event waits for skeletons, tracks and observations covering it, '
              'then resolves with what came', 0.0, 600.0),
    ParamSpec('input_margin_s', Parameter.Type.DOUBLE,
              "s after a shelf event's end its inputs must cover", 0.0, 60.0),
    ParamSpec('shelf_event_latency_s', Parameter.Type.DOUBLE,
              's shelf events may arrive after their stamp; the watermark trails by it',
              0.0, 600.0),
    ParamSpec('reach_distance_m', Parameter.Type.DOUBLE,
              'm from the bin front beyond which a track (without skeleton) did not reach it',
              0.05, 10.0),
    ParamSpec('ambiguous_person_ratio', Parameter.Type.DOUBLE,
              'second-best hand score over the best one from which the person choice goes '
              'to review', 0.0, 1.0),
    ParamSpec('min_sku_probability', Parameter.Type.DOUBLE,
              'posterior of the chosen SKU x quantity below which the event goes to review',
              0.0, 1.0),
    ParamSpec('not_in_cart_prior', Parameter.Type.DOUBLE,
              'prior of a return of a SKU the person does not hold', 1e-6, 1.0),
    ParamSpec('hand_observation_weight', Parameter.Type.DOUBLE,
              "exponent on the SKU likelihood of a crop round the bin's hand (bin crops "
              'count 1; 0 ignores hand crops)', 0.0, 10.0),
    ParamSpec('carried_observation_weight', Parameter.Type.DOUBLE,
              'exponent on the SKU likelihood of a crop of what the chosen person carries '
              '(bin crops count 1; 0 ignores carried crops)', 0.0, 10.0),
    ParamSpec('hand_off_distance_m', Parameter.Type.DOUBLE,
              "m between two tracks' hands that counts as a hand-off meeting", 0.0, 2.0),
    ParamSpec('tick_period_s', Parameter.Type.DOUBLE,
              's (steady) between resolutions, re-sends and watermark publications',
              0.01, 10.0),
    ParamSpec('resend_initial_s', Parameter.Type.DOUBLE,
              's before an unacknowledged cart event is sent again (doubles each time)',
              0.05, 600.0),
    ParamSpec('resend_max_s', Parameter.Type.DOUBLE,
              'longest s between two sends of an unacknowledged cart event', 0.05, 3600.0),
    ParamSpec('keep_acknowledged_s', Parameter.Type.DOUBLE,
              's acknowledged cart events stay in the outbox (carts after a restart)',
              0.0, 30.0 * 86_400.0),
    ParamSpec('input_queue_capacity', Parameter.Type.INTEGER,
              'inputs waiting for the worker at most; more are dropped and counted',
              1, 10_000_000),
    DIAGNOSTICS_PERIOD,
)

RELIABLE_1000 = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.VOLATILE)
RELIABLE_100 = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
# Pose and product ID streams: best effort matches a publisher of either reliability.
SENSOR_100 = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
VISITS_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
WATERMARK_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _candidates(items) -> tuple[core.SkuCandidate, ...]:  # type: ignore[no-untyped-def]
    return tuple(core.SkuCandidate(c.sku, int(c.quantity), float(c.likelihood))
                 for c in items)


def shelf_event_from_msg(msg: ShelfEvent) -> core.ShelfEventIn:
    """Convert a ShelfEvent (the engine validates it)."""
    return core.ShelfEventIn(
        event_id=msg.event_id, stamp_ns=stamp_to_ns(msg.header.stamp), shelf_id=msg.shelf_id,
        bin_id=msg.bin_id, kind=int(msg.event_type), delta_grams=float(msg.delta_grams),
        start_ns=stamp_to_ns(msg.start), end_ns=stamp_to_ns(msg.end),
        candidates=_candidates(msg.candidates))


def _hand(keypoints, joint: int) -> Optional[tuple[float, float, float]]:  # type: ignore[no-untyped-def]
    for keypoint in keypoints:
        if keypoint.joint == joint and keypoint.confidence > 0.0:
            p = keypoint.position
            return (float(p.x), float(p.y), float(p.z))
    return None


def skeletons_from_msg(msg: SkeletonArray) -> list[core.SkeletonIn]:
    """Convert a SkeletonArray: hand bins and hand positions (map frame)."""
    return [core.SkeletonIn(int(s.track_id), s.left_hand_bin_id, s.right_hand_bin_id,
                            _hand(s.keypoints, Keypoint.LEFT_HAND),
                            _hand(s.keypoints, Keypoint.RIGHT_HAND))
            for s in msg.skeletons]


def tracks_from_msg(msg: TrackArray) -> list[core.TrackIn]:
    """Convert a TrackArray (map frame)."""
    return [core.TrackIn(int(t.track_id), float(t.position.x), float(t.position.y),
                         int(t.role), t.visit_id, t.account_id) for t in msg.tracks]


def observations_from_msg(msg: ProductObservationArray) -> list[core.ProductObservationIn]:
    """Convert a ProductObservationArray."""
    return [core.ProductObservationIn(
        o.observation_id, stamp_to_ns(o.header.stamp), int(o.track_id), int(o.hand),
        o.bin_id, o.camera_id, o.category, float(o.category_probability),
        _candidates(o.skus)) for o in msg.observations]


def cart_event_msg(event: core.CartEventOut, frame_id: str) -> CartEvent:
    """Build the CartEvent of an engine output."""
    return CartEvent(
        header=Header(stamp=ns_to_stamp(event.stamp_ns), frame_id=frame_id),
        event_id=event.event_id, visit_id=event.visit_id, account_id=event.account_id,
        track_id=int(event.track_id), sku=event.sku, quantity_delta=int(event.quantity_delta),
        confidence=float(event.confidence), evidence_ids=list(event.evidence_ids),
        needs_review=event.needs_review,
        review_reason=event.review_reason[:REVIEW_REASON_LENGTH])


class AssociationNode(Node):
    """Turns shelf events into cart events and delivers them to the ledger."""

    def __init__(self, **kwargs) -> None:
        """Read the parameters, subscribe; the worker opens the outbox."""
        super().__init__('association', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            config = core.AssociationConfig(
                max_input_wait_s=params['max_input_wait_s'],
                input_margin_s=params['input_margin_s'],
                shelf_event_latency_s=params['shelf_event_latency_s'],
                reach_distance_m=params['reach_distance_m'],
                ambiguous_person_ratio=params['ambiguous_person_ratio'],
                min_sku_probability=params['min_sku_probability'],
                not_in_cart_prior=params['not_in_cart_prior'],
                hand_observation_weight=params['hand_observation_weight'],
                carried_observation_weight=params['carried_observation_weight'],
                hand_off_distance_m=params['hand_off_distance_m'])
            worker_config = WorkerConfig(capacity=params['input_queue_capacity'])
            if not params['outbox_path'].strip():
                raise ValueError('outbox_path is empty')
            if params['resend_max_s'] < params['resend_initial_s']:
                raise ValueError('resend_max_s must be at least resend_initial_s')
        except ValueError as error:
            raise MissingParameterError(f"node 'association': {error}") from None
        self.engine = core.AssociationEngine(config, core.bin_sites(self.description),
                                             core.catalog_of(self.description))
        self._outbox_url = sqlite_url(params['outbox_path'])
        self._resend_initial_s = params['resend_initial_s']
        self._resend_max_s = params['resend_max_s']
        self._keep_acked_ns = round(params['keep_acknowledged_s'] * NS_PER_SECOND)
        self._frame_id = self.description.map_frame
        self.outbox: Optional[Outbox] = None
        # Worker-thread state: unacknowledged events and when to send each again (steady).
        self._unacked: dict[str, core.CartEventOut] = {}
        self._next_send: dict[str, tuple[float, float]] = {}  # id -> (due, current delay)
        self._published_watermark_ns = 0
        self._last_purge = 0.0
        self._tick_queued = threading.Event()
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self._events_pub = self.create_publisher(CartEvent, 'cart/events', RELIABLE_1000)
        self._watermark_pub = self.create_publisher(Header, 'association/watermark',
                                                    WATERMARK_QOS)
        self.worker = SerialWorker('association', is_retryable_database_error, worker_config,
                                   on_retry=self._on_retry, on_error=self._on_job_error)
        self.diagnostics.set_status(WARN, 'opening the outbox')
        self.worker.submit('open outbox', self._open)
        self._input_subscriptions = [
            self.create_subscription(ShelfEvent, 'shelves/events', self.on_shelf_event,
                                     RELIABLE_1000),
            self.create_subscription(ProductObservationArray, 'products/observations',
                                     self.on_observations, SENSOR_100),
            self.create_subscription(SkeletonArray, 'people/skeletons', self.on_skeletons,
                                     SENSOR_100),
            self.create_subscription(TrackArray, 'people/tracks', self.on_tracks,
                                     RELIABLE_100),
            self.create_subscription(Visit, 'visits', self.on_visit, VISITS_QOS),
            self.create_subscription(KeyValue, 'cart/event_acks', self.on_ack, RELIABLE_1000),
        ]
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._tick_timer = self.create_timer(params['tick_period_s'], self._queue_tick,
                                             clock=steady)
        self._queue_timer = self.create_timer(params['diagnostics_period_s'],
                                              self._report, clock=steady)
        self.diagnostics.values.update(store_description=path, outbox=self._outbox_url)
        self.get_logger().info(
            f'association started: {len(core.bin_sites(self.description))} bins, outbox '
            f'{self._outbox_url}')

    # -- worker jobs -------------------------------------------------------------------------

    def _open(self) -> None:
        """Open the outbox, rebuild the carts and queue every unacknowledged event."""
        outbox = Outbox(self._outbox_url)
        for event in outbox.all_events():
            self.engine.restore(event)
        pending = outbox.unacknowledged()
        now = time.monotonic()
        for event in pending:
            self._unacked[event.event_id] = event
            self._next_send[event.event_id] = (now, self._resend_initial_s)
        self.outbox = outbox
        self.diagnostics.set_status(OK, 'running')
        if pending:
            self.get_logger().info(f'outbox: {len(pending)} cart events not acknowledged '
                                   'yet; sending them again')

    def _on_retry(self, label: str, error: BaseException, attempt: int,
                  delay_s: float) -> None:
        self.diagnostics.count('outbox_retries')
        if attempt == 1 or attempt % 10 == 0:
            self.get_logger().warning(f'{label}: {error!r}; retry {attempt} in {delay_s:.2f} s')
        self.diagnostics.set_status(ERROR if attempt > 3 else WARN, f'{label}: {error}')

    def _on_job_error(self, label: str, error: BaseException) -> None:
        self.get_logger().error(f'{label} failed: {error!r}')
        self.diagnostics.count('errors')
        self.diagnostics.set_status(ERROR, f'{label} failed: {error}')

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _submit(self, label: str, job) -> None:  # type: ignore[no-untyped-def]
        if not self.worker.submit(label, job):
            self.diagnostics.count('dropped_queue_full')
            self.diagnostics.set_status(ERROR, 'input queue full')
            self.get_logger().error(f'input queue full ({self.worker.capacity}): {label} '
                                    'dropped')

    def _refuse(self, error: core.InputRejectedError) -> None:
        self.diagnostics.count(f'dropped_{error.reason}')
        self.get_logger().warning(f'dropped: {error}')

    # -- input -------------------------------------------------------------------------------

    def on_shelf_event(self, msg: ShelfEvent) -> None:
        """Queue one shelf event."""
        self.diagnostics.count('shelf_events_received')
        try:
            event = shelf_event_from_msg(msg)
        except (ValueError, TypeError) as error:
            self._refuse(core.InputRejectedError('malformed', f'shelf event: {error}'))
            return
        now_ns = self._now_ns()

        def job() -> None:
            try:
                self.engine.add_shelf_event(event, now_ns)
            except core.InputRejectedError as error:
                self._refuse(error)
        self._submit('shelf event', job)

    def on_tracks(self, msg: TrackArray) -> None:
        """Queue one track snapshot."""
        stamp_ns, tracks, now_ns = stamp_to_ns(msg.header.stamp), tracks_from_msg(msg), \
            self._now_ns()
        self._submit('tracks', lambda: self.engine.add_tracks(stamp_ns, tracks, now_ns))

    def on_skeletons(self, msg: SkeletonArray) -> None:
        """Queue one set of stick figures."""
        stamp_ns, skeletons, now_ns = stamp_to_ns(msg.header.stamp), \
            skeletons_from_msg(msg), self._now_ns()
        self._submit('skeletons',
                     lambda: self.engine.add_skeletons(stamp_ns, skeletons, now_ns))

    def on_observations(self, msg: ProductObservationArray) -> None:
        """Queue one set of product observations."""
        stamp_ns, observations, now_ns = stamp_to_ns(msg.header.stamp), \
            observations_from_msg(msg), self._now_ns()
        if any(not math.isfinite(o.category_probability) for o in observations):
            self._refuse(core.InputRejectedError('malformed', 'product observation with a '
                                                 'non-finite probability'))
            return
        self._submit('observations',
                     lambda: self.engine.add_observations(stamp_ns, observations, now_ns))

    def on_visit(self, msg: Visit) -> None:
        """Link the visit's tracks (STARTED); forget its cart a while after it ENDED."""
        if not msg.visit_id:
            return
        if msg.status == Visit.ENDED:
            visit_id, now_ns = msg.visit_id, self._now_ns()
            self._submit('visit end', lambda: self.engine.end_visit(visit_id, now_ns))
            return
        if msg.status != Visit.STARTED:
            return
        visit_id, account_id, track_ids = msg.visit_id, msg.account_id, \
            [int(t) for t in msg.track_ids]
        self._submit('visit', lambda: self.engine.add_visit(visit_id, account_id, track_ids))

    def on_ack(self, msg: KeyValue) -> None:
        """Queue the ledger's acknowledgement of a cart event."""
        event_id, outcome = msg.key, msg.value
        self._submit('ack', lambda: self._acknowledge(event_id, outcome))

    def _acknowledge(self, event_id: str, outcome: str) -> None:
        if event_id not in self._unacked or self.outbox is None:
            return  # someone else's event, or acknowledged before
        self.outbox.acknowledge(event_id, outcome, self._now_ns())
        del self._unacked[event_id]
        self._next_send.pop(event_id, None)
        self.diagnostics.count('events_acknowledged')
        if outcome not in ('applied', 'duplicate', 'review'):
            self.diagnostics.count(f'events_acknowledged_{outcome}')
            self.get_logger().warning(f'cart event {event_id}: the ledger answered {outcome}')

    # -- the tick: resolve, store, send, watermark ------------------------------------------

    def _queue_tick(self) -> None:
        if self._tick_queued.is_set():
            return
        self._tick_queued.set()
        if not self.worker.submit('tick', self.tick):
            self._tick_queued.clear()
            self.diagnostics.count('dropped_queue_full')

    def tick(self) -> None:
        """Resolve due events, store them, (re-)send, publish the watermark (worker)."""
        self._tick_queued.clear()
        now_ns = self._now_ns()
        if self.outbox is None or now_ns <= 0:
            return  # not open yet, or no /clock yet under sim time
        events = self.engine.advance(now_ns)
        for line in self.engine.drain_messages():
            self.get_logger().warning(line)
        new = self.outbox.add(events, now_ns)  # durable before it is sent
        steady = time.monotonic()
        for event in new:
            self._unacked[event.event_id] = event
            self._next_send[event.event_id] = (steady, self._resend_initial_s)
            self.diagnostics.count('cart_events')
            if event.needs_review:
                self.diagnostics.count('cart_events_review')
        sent = []
        for event_id, (due, delay) in list(self._next_send.items()):
            if due > steady:
                continue
            self._events_pub.publish(cart_event_msg(self._unacked[event_id], self._frame_id))
            self._next_send[event_id] = (steady + delay, min(delay * 2.0, self._resend_max_s))
            sent.append(event_id)
        if sent:
            self.outbox.count_send(sent)
            self.diagnostics.count('cart_event_sends', len(sent))
        self._publish_watermark()
        if self.diagnostics.level != OK and self.worker.depth == 0:
            self.diagnostics.set_status(OK, 'running')
        if self._keep_acked_ns and steady - self._last_purge > 3600.0:
            self._last_purge = steady
            self.outbox.purge_acknowledged(now_ns - self._keep_acked_ns)

    def _publish_watermark(self) -> None:
        watermark_ns = self.engine.watermark_ns
        if self._unacked:
            oldest = min(event.stamp_ns for event in self._unacked.values())
            watermark_ns = min(watermark_ns, oldest - 1)
        watermark_ns = max(watermark_ns, self._published_watermark_ns)
        if watermark_ns <= 0:
            return
        self._published_watermark_ns = watermark_ns
        self._watermark_pub.publish(Header(stamp=ns_to_stamp(watermark_ns),
                                           frame_id=self._frame_id))

    def _report(self) -> None:
        stats = self.worker.stats
        self.diagnostics.values.update(
            queue_depth=str(self.worker.depth), queue_high_water=str(stats.high_water),
            queue_overflowed=str(stats.overflowed), unacknowledged=str(len(self._unacked)),
            pending_shelf_events=str(self.engine.pending_count),
            watermark_ns=str(self._published_watermark_ns))
        for key, value in self.engine.counters.copy().items():
            self.diagnostics.counters[f'engine_{key}'] = value

    def destroy_node(self) -> None:
        """Stop the worker and close the outbox, then the node."""
        worker = getattr(self, 'worker', None)
        if worker is not None:
            worker.stop()
        if getattr(self, 'outbox', None) is not None:
            self.outbox.close()  # type: ignore[union-attr]
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Run the association node until shut down."""
    sys.exit(run_single_node(AssociationNode, args))


NODE = AssociationNode

if __name__ == '__main__':
    main()
