"""Operator page node: the store's web page for staff (live map, open carts, review queue).

Subscribes:
  people/tracks                   go_store/TrackArray (reliable): live map, paths
  visits                          go_store/Visit (reliable, transient local): open visits
  shelves/<shelf>/weights         go_store/LoadCellBatch, every shelf: weight traces
  cameras/<cam>/color/image_raw   sensor_msgs/Image, every camera: bin crops (one frame
                                  per camera every color_keep_period_s is kept)
  cameras/<cam>/color/camera_info sensor_msgs/CameraInfo
  /tf_static                      map -> <cam>_color_optical_frame, map -> <shelf>
  shelves/events                  go_store/ShelfEvent: the bin and times of cart events
  cart/events                     go_store/CartEvent: evidence is taken for each one
Clients (called from the HTTP threads, answered by the executor; never from a callback):
  ledger/get_cart, ledger/list_reviews, ledger/resolve_review (cart_ledger)
Publishes:
  diagnostics                     drops by reason, ring sizes, sign-ins, decisions
Serves HTTP on ``http_host``:``http_port`` (127.0.0.1 unless configured) from its own
thread: nothing without a staff sign-in (``staff_credentials``: scrypt hashes made with
``go-store operator-password``). ROS callbacks only update the bounded state
(go_store_nodes.core.operator); docs/operator.md.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

from go_store.msg import CartEvent, LoadCellBatch, ShelfEvent, Track, TrackArray, Visit
from go_store.srv import GetCart, ListReviews, ResolveReview
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..core.gate import account_ref
from ..core.operator import (
    CartEventRecord,
    CartLineView,
    CartView,
    ColorFrame,
    create_app,
    CredentialError,
    HttpServer,
    InputRejectedError,
    LedgerUnavailableError,
    OperatorConfig,
    OperatorState,
    parse_staff_credentials,
    ReviewView,
    StaffDirectory,
    TrackPoint,
    VisitRecord,
    WebSettings,
)
from ..core.store import load_store_description
from ..core.tf_buffer import FrameLookupError, TransformBuffer
from ..ros.diagnostics import ERROR, LOG_REPEAT_S, LogLimiter, NodeDiagnostics, OK
from ..ros.params import (
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from ..ros.tf import StaticTransformListener
from .person_locator import intrinsics_from_camera_info, stamp_to_ns
from .runner import run_single_node

_CONFIG_SPECS = (
    ('track_history_s', Parameter.Type.DOUBLE, 's of track sets kept (trails, paths)', 1.0,
     3600.0),
    ('max_track_sets', Parameter.Type.INTEGER, 'track sets kept at most', 1, 1_000_000),
    ('path_points', Parameter.Type.INTEGER, 'points of each trail on the live map', 1, 10_000),
    ('load_cell_history_s', Parameter.Type.DOUBLE, 's of load-cell samples kept per bin',
     1.0, 3600.0),
    ('color_ring_frames', Parameter.Type.INTEGER, 'colour frames kept per camera', 1, 1000),
    ('color_keep_period_s', Parameter.Type.DOUBLE,
     's between colour frames kept per camera (bounds memory and CPU)', 0.0, 60.0),
    ('evidence_before_s', Parameter.Type.DOUBLE,
     's of weight trace and path before a cart event', 0.0, 600.0),
    ('evidence_after_s', Parameter.Type.DOUBLE,
     's after a cart event its evidence is taken (trace and path up to then)', 0.0, 600.0),
    ('max_evidence', Parameter.Type.INTEGER, 'cart events whose evidence is kept', 1,
     1_000_000),
    ('max_visits', Parameter.Type.INTEGER, 'open visits kept', 1, 1_000_000),
    ('crop_margin_m', Parameter.Type.DOUBLE, 'm the bin box is grown by before cropping',
     0.0, 1.0),
    ('crops_per_event', Parameter.Type.INTEGER, 'cameras cropped per event, best view first',
     1, 16),
)

PARAMETERS = (
    STORE_DESCRIPTION,
    ParamSpec('http_host', Parameter.Type.STRING,
              "address the page listens on ('127.0.0.1': this machine only)"),
    ParamSpec('http_port', Parameter.Type.INTEGER,
              'TCP port of the page (0: a free one, logged; replays use 0)', 0, 65535),
    ParamSpec('staff_credentials', Parameter.Type.STRING,
              "staff who may sign in: 'user:scrypt$...' entries separated by commas or "
              "spaces (go-store operator-password makes a hash); '': nobody"),
    ParamSpec('session_secret', Parameter.Type.STRING,
              "key signing the session cookie (>= 32 characters); '': random at start "
              '(sessions end with the node)'),
    ParamSpec('session_lifetime_s', Parameter.Type.DOUBLE, 's a sign-in lasts', 60.0,
              604_800.0),
    ParamSpec('secure_cookie', Parameter.Type.BOOL,
              'send the session cookie over https only (set it behind TLS)'),
    ParamSpec('max_sign_in_failures', Parameter.Type.INTEGER,
              'failed sign-ins in a row before a name is locked', 1, 1000),
    ParamSpec('sign_in_lockout_s', Parameter.Type.DOUBLE,
              's a name stays locked after too many failures', 0.0, 86_400.0),
    ParamSpec('live_period_ms', Parameter.Type.INTEGER,
              'ms between live map updates in the browser', 50, 10_000),
    ParamSpec('service_timeout_s', Parameter.Type.DOUBLE,
              's a page waits for a ledger service before showing it unavailable', 0.1, 60.0),
    *(ParamSpec(name, kind, description, low, high)
      for name, kind, description, low, high in _CONFIG_SPECS),
    ParamSpec('evidence_period_s', Parameter.Type.DOUBLE,
              's between checks for cart events whose evidence window passed', 0.05, 10.0),
    DIAGNOSTICS_PERIOD,
)

TRACKS_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
VISITS_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
EVENTS_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
WEIGHTS_QOS = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
IMAGE_QOS = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
ROLES = {Track.ROLE_SHOPPER: 'shopper', Track.ROLE_ASSOCIATE: 'associate'}


class LedgerServices:
    """The ledger's services through rclpy clients, called from HTTP threads.

    ``call_async`` is answered by the executor (a reentrant callback group, so it does not
    wait behind subscription callbacks); the HTTP thread waits on the future with a
    timeout and never spins.
    """

    def __init__(self, node: Node, timeout_s: float) -> None:
        """Create the three clients."""
        group = ReentrantCallbackGroup()
        self._timeout_s = timeout_s
        self._get_cart = node.create_client(GetCart, 'ledger/get_cart', callback_group=group)
        self._list_reviews = node.create_client(ListReviews, 'ledger/list_reviews',
                                                callback_group=group)
        self._resolve = node.create_client(ResolveReview, 'ledger/resolve_review',
                                           callback_group=group)

    def _call(self, client: Any, request: Any) -> Any:
        if not client.service_is_ready():
            raise LedgerUnavailableError(f'{client.srv_name} has no server (is cart_ledger '
                                         'running?)')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self._timeout_s):
            client.remove_pending_request(future)
            raise LedgerUnavailableError(f'{client.srv_name}: no answer in {self._timeout_s} s')
        result = future.result()
        if result is None:
            raise LedgerUnavailableError(f'{client.srv_name}: call failed')
        return result

    def list_reviews(self, visit_id: str = '') -> list[ReviewView]:
        """Return open review items, or every item of one visit."""
        response = self._call(self._list_reviews, ListReviews.Request(visit_id=visit_id))
        return [ReviewView(i.review_id, i.visit_id, i.event_id, i.sku, int(i.quantity_delta),
                           i.reason, i.state, i.resolved_by, i.note) for i in response.items]

    def get_cart(self, visit_id: str) -> CartView:
        """Return a visit's current cart."""
        r = self._call(self._get_cart, GetCart.Request(visit_id=visit_id))
        return CartView(visit_id, bool(r.found), r.message, tuple(
            CartLineView(line.sku, line.name, int(line.quantity), int(line.unit_price_cents),
                         int(line.line_total_cents)) for line in r.lines),
            int(r.total_cents), r.currency, tuple(r.open_review_ids))

    def resolve_review(self, review_id: str, quantity: int, resolved_by: str,
                       note: str) -> tuple[bool, str]:
        """Resolve a review item as ``resolved_by``."""
        r = self._call(self._resolve, ResolveReview.Request(
            review_id=review_id, quantity=quantity, resolved_by=resolved_by, note=note))
        return bool(r.success), str(r.message)


class OperatorPageNode(Node):
    """Keeps the store state for the page and serves the page from its own thread."""

    def __init__(self, **kwargs: Any) -> None:
        """Read the parameters, subscribe, create the clients and start the web server."""
        super().__init__('operator_page', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            config = OperatorConfig(**{name: params[name] for name, *_ in _CONFIG_SPECS})
            settings = WebSettings(
                secret_key=params['session_secret'],
                session_lifetime_s=params['session_lifetime_s'],
                live_period_ms=params['live_period_ms'],
                secure_cookie=params['secure_cookie'])
            staff = StaffDirectory(parse_staff_credentials(params['staff_credentials']),
                                   params['max_sign_in_failures'],
                                   params['sign_in_lockout_s'])
        except (ValueError, CredentialError) as error:
            raise MissingParameterError(f"node 'operator_page': {error}") from None
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self.state = OperatorState(self.description, config)
        self.tf_buffer = TransformBuffer()
        self._tf_listener = StaticTransformListener(self.tf_buffer, self)
        self._map_frame = self.description.map_frame
        self._log_limit = LogLimiter(LOG_REPEAT_S)
        self._color_frames = {c.camera_id: c.color_frame_id for c in self.description.cameras}
        self._posed: set[str] = set()
        self.ledger = LedgerServices(self, params['service_timeout_s'])
        inputs = [
            self.create_subscription(TrackArray, 'people/tracks', self.on_tracks, TRACKS_QOS),
            self.create_subscription(Visit, 'visits', self.on_visit, VISITS_QOS),
            self.create_subscription(ShelfEvent, 'shelves/events', self.on_shelf_event,
                                     EVENTS_QOS),
            self.create_subscription(CartEvent, 'cart/events', self.on_cart_event,
                                     EVENTS_QOS),
        ]
        for shelf in self.description.shelves:
            inputs.append(self.create_subscription(
                LoadCellBatch, f'shelves/{shelf.shelf_id}/weights',
                lambda m, s=shelf.shelf_id: self.on_weights(m, s), WEIGHTS_QOS))
        for camera in self.description.cameras:
            cam = camera.camera_id
            prefix = f'cameras/{cam}/color'
            inputs += [
                self.create_subscription(Image, f'{prefix}/image_raw',
                                         lambda m, c=cam: self.on_color(m, c), IMAGE_QOS),
                self.create_subscription(CameraInfo, f'{prefix}/camera_info',
                                         lambda m, c=cam: self.on_info(m, c), IMAGE_QOS),
            ]
        self._inputs = inputs
        self._timer = self.create_timer(params['evidence_period_s'], self.on_timer)
        app = create_app(self.state, self.ledger, staff, settings, on_event=self._on_web_event)
        try:
            self.server = HttpServer(app, params['http_host'], params['http_port'])
        except OSError as error:
            raise MissingParameterError(
                f"node 'operator_page': cannot listen on {params['http_host']}:"
                f"{params['http_port']}: {error}") from None
        self.server.start()
        self.url = f"http://{params['http_host']}:{self.server.port}/"
        self.diagnostics.values.update(url=self.url, staff=str(len(staff.users)))
        if staff.users:
            self.diagnostics.set_status(OK, f'serving {self.url}')
        else:
            self.diagnostics.set_status(ERROR, 'no staff_credentials: nobody can sign in')
            self.get_logger().error('no staff_credentials configured: nobody can sign in '
                                    '(go-store operator-password makes a hash)')
        self.get_logger().info(f'operator page at {self.url} for {len(staff.users)} staff')

    def destroy_node(self) -> None:
        """Stop the web server, then the node."""
        server = getattr(self, 'server', None)
        if server is not None:
            server.stop()
        super().destroy_node()

    # -- inputs ----------------------------------------------------------------------------

    def _guarded(self, what: str, action: Callable[[], Any]) -> Any:
        """Run one state update; a rejected input is counted and logged, then dropped."""
        try:
            return action()
        except InputRejectedError as rejection:
            self.diagnostics.count(f'dropped_{what}_{rejection.reason}')
            self._warn(f'{what}: dropped ({rejection.reason}): {rejection}',
                       f'{what}/{rejection.reason}')
        except (ValueError, TypeError) as error:
            self.diagnostics.count(f'dropped_{what}_malformed')
            self._warn(f'{what}: dropped (malformed): {error}', f'{what}/malformed')
        return None

    def on_tracks(self, msg: TrackArray) -> None:
        """Keep the latest track set (positions on the floor, map frame)."""
        self.diagnostics.count('track_arrays')
        if msg.header.frame_id and msg.header.frame_id != self._map_frame:
            self.diagnostics.count('dropped_tracks_wrong_frame')
            self._warn(f'tracks in frame {msg.header.frame_id!r}, not {self._map_frame!r}',
                       'tracks/frame')
            return
        points = [TrackPoint(int(t.track_id), float(t.position.x), float(t.position.y),
                             ROLES.get(int(t.role), 'unknown'), str(t.visit_id),
                             bool(t.tangled)) for t in msg.tracks]
        dropped = self._guarded('tracks', lambda: self.state.add_tracks(
            stamp_to_ns(msg.header.stamp), points))
        if dropped:
            self._warn(f'{dropped} tracks with a non-finite position dropped', 'tracks/nan')

    def on_visit(self, msg: Visit) -> None:
        """Open or close a visit."""
        self.diagnostics.count('visits')
        if msg.status == Visit.STARTED:
            self.state.add_visit_started(VisitRecord(
                msg.visit_id, account_ref(msg.account_id) if msg.account_id else '',
                tuple(int(t) for t in msg.track_ids), msg.gate_id,
                stamp_to_ns(msg.header.stamp)))
        elif msg.status == Visit.ENDED:
            self.state.add_visit_ended(msg.visit_id)
        else:
            self.diagnostics.count('dropped_visit_unknown_status')
            self._warn(f'visit {msg.visit_id}: unknown status {msg.status}', 'visit/status')

    def on_weights(self, msg: LoadCellBatch, shelf_id: str) -> None:
        """Keep one batch of a shelf's load-cell samples."""
        self.diagnostics.count('load_cell_batches')
        if msg.shelf_id and msg.shelf_id != shelf_id:
            self.diagnostics.count('dropped_weights_wrong_shelf')
            self._warn(f'shelves/{shelf_id}/weights carries shelf {msg.shelf_id!r}',
                       'weights/shelf')
            return
        self._guarded('weights', lambda: self.state.add_load_cells(
            shelf_id, list(msg.bin_ids), stamp_to_ns(msg.header.stamp),
            int(msg.sample_period_ns), int(msg.sample_count), msg.grams.tolist()
            if hasattr(msg.grams, 'tolist') else list(msg.grams)))

    def on_info(self, msg: CameraInfo, camera_id: str) -> None:
        """Keep a colour camera's intrinsics (and its pose once TF has it)."""
        self._guarded('camera_info', lambda: self.state.set_camera(
            camera_id, intrinsics_from_camera_info(msg), self._camera_pose(camera_id)))

    def _camera_pose(self, camera_id: str) -> Any:
        if camera_id in self._posed:
            return None
        try:
            pose = self.tf_buffer.lookup(self._map_frame, self._color_frames[camera_id])
        except FrameLookupError:
            return None
        self._posed.add(camera_id)
        for shelf in self.description.shelves:
            try:
                self.state.set_shelf_pose(
                    shelf.shelf_id, self.tf_buffer.lookup(self._map_frame, shelf.frame_id))
            except FrameLookupError:
                pass
        return pose

    def on_color(self, msg: Image, camera_id: str) -> None:
        """Keep a colour frame in the camera's ring (at most one per keep period)."""
        self.diagnostics.count('color_frames')
        if not self.state.wants_color_frame(camera_id, stamp_to_ns(msg.header.stamp)):
            return      # kept one recently: no copy of the image
        self._guarded('color', lambda: self.state.add_color_frame(camera_id, ColorFrame(
            stamp_to_ns(msg.header.stamp), str(msg.encoding), int(msg.height), int(msg.width),
            int(msg.step), bytes(msg.data))))

    def on_shelf_event(self, msg: ShelfEvent) -> None:
        """Remember which bin a shelf event was at."""
        self.diagnostics.count('shelf_events')
        self._guarded('shelf_event', lambda: self.state.add_shelf_event(
            msg.event_id, msg.bin_id, stamp_to_ns(msg.start), stamp_to_ns(msg.end)))

    def on_cart_event(self, msg: CartEvent) -> None:
        """Keep a cart event; its evidence is taken when its window has passed."""
        self.diagnostics.count('cart_events')
        self._guarded('cart_event', lambda: self.state.add_cart_event(CartEventRecord(
            msg.event_id, stamp_to_ns(msg.header.stamp), msg.visit_id, int(msg.track_id),
            msg.sku, int(msg.quantity_delta), float(msg.confidence),
            tuple(msg.evidence_ids), bool(msg.needs_review), msg.review_reason)))

    def on_timer(self) -> None:
        """Take due evidence; report ring sizes."""
        now_ns = self.get_clock().now().nanoseconds
        if now_ns > 0:
            self.state.poll(now_ns)
        self.diagnostics.counters.update(self.state.counters)
        self.diagnostics.values.update({k: str(v) for k, v in self.state.sizes().items()})

    def _on_web_event(self, kind: str, message: str) -> None:
        """Log and count sign-ins and decisions made on the page (HTTP thread)."""
        self.diagnostics.count(f'web_{kind}')
        if kind == 'sign_in_refused':
            self.get_logger().warning(message)
        else:
            self.get_logger().info(message)

    def _warn(self, message: str, key: str) -> None:
        """Log a drop, at most every LOG_REPEAT_S per reason."""
        if self._log_limit.ready(key):
            self.get_logger().warning(message)


def main(args: list[str] | None = None) -> None:
    """Run the operator page node until shut down."""
    sys.exit(run_single_node(OperatorPageNode, args))


NODE = OperatorPageNode

if __name__ == '__main__':
    main()
