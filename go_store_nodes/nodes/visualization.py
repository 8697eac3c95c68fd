"""Visualization node: the store and what happens in it as markers for rviz2 and Foxglove.

Subscribes:
  people/tracks           go_store/TrackArray (reliable, keep last 100)
  people/skeletons        go_store/SkeletonArray (best effort, keep last 100)
  shelves/events          go_store/ShelfEvent (reliable, keep last 100)
  cart/events             go_store/CartEvent (reliable, keep last 100); re-sent events are
                          shown once
  visits                  go_store/Visit (reliable, transient local, keep last 100): the
                          account of each track
Publishes:
  visualization/markers   visualization_msgs/MarkerArray (reliable, keep last 10), map
                          frame, stamped with the newest input, at most max_rate_hz:
                          floor, gates, shelves, bins (coloured by their last shelf event,
                          fading back), people (role, account, trail, tangled or
                          unconfirmed), stick figures with hands in bins, event labels
  diagnostics             diagnostic_msgs/DiagnosticArray: inputs, marker arrays, drops
Inputs it cannot use (from the future, out of order, wrong frame, unknown bin, a cart event
it cannot place) are logged, counted and dropped; single bad items (NaN positions, unknown
bins of a hand) are dropped and counted. Logic: go_store_nodes.core.visualization;
docs/viewing.md.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from go_store.msg import CartEvent, ShelfEvent, SkeletonArray, TrackArray, Visit
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker as MarkerMsg
from visualization_msgs.msg import MarkerArray

from ..core.pose import JOINTS
from ..core.store import load_store_description
from ..core.visualization import (
    CartEventIn,
    EVENT_KINDS,
    Marker,
    MarkerAction,
    MarkerKind,
    MarkerSet,
    ShelfEventIn,
    SkeletonIn,
    StoreView,
    TrackIn,
    VisitIn,
    VisualizationConfig,
    VisualizationInputError,
)
from ..ros.diagnostics import NodeDiagnostics, OK
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

PARAMETERS = (
    STORE_DESCRIPTION,
    *(ParamSpec(info.name, Parameter.Type.INTEGER if info.integer else Parameter.Type.DOUBLE,
                info.description, info.minimum, info.maximum)
      for info in VisualizationConfig.fields()),
    DIAGNOSTICS_PERIOD,
)

RELIABLE_100 = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
# Pose publishes reliable; best effort matches a publisher of either reliability.
SENSOR_100 = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
VISITS_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
MARKERS_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
LOG_REPEAT_S = 5.0

MARKER_TYPES = {MarkerKind.CUBE: MarkerMsg.CUBE, MarkerKind.SPHERE: MarkerMsg.SPHERE,
                MarkerKind.CYLINDER: MarkerMsg.CYLINDER,
                MarkerKind.LINE_STRIP: MarkerMsg.LINE_STRIP,
                MarkerKind.LINE_LIST: MarkerMsg.LINE_LIST,
                MarkerKind.SPHERE_LIST: MarkerMsg.SPHERE_LIST,
                MarkerKind.TEXT: MarkerMsg.TEXT_VIEW_FACING}
MARKER_ACTIONS = {MarkerAction.ADD: MarkerMsg.ADD, MarkerAction.DELETE: MarkerMsg.DELETE,
                  MarkerAction.DELETE_ALL: MarkerMsg.DELETEALL}
SHELF_EVENT_KINDS = {ShelfEvent.PICK: 'pick', ShelfEvent.RETURN: 'return',
                     ShelfEvent.UNKNOWN: 'unknown'}


def _duration(seconds: float) -> Duration:
    nanoseconds = int(round(seconds * 1e9))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def marker_msg(marker: Marker, stamp_ns: int, frame_id: str) -> MarkerMsg:
    """Convert one core marker (positions in ``frame_id``)."""
    msg = MarkerMsg()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.ns = marker.namespace
    msg.id = int(marker.marker_id)
    msg.action = MARKER_ACTIONS[marker.action]
    if marker.action != MarkerAction.ADD:
        return msg
    msg.type = MARKER_TYPES[marker.kind]
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = marker.position
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = marker.orientation_xyzw
    msg.scale.x, msg.scale.y, msg.scale.z = (float(v) for v in marker.scale)
    r, g, b, a = marker.color
    msg.color = ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))
    msg.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in marker.points]
    msg.text = marker.text
    msg.lifetime = _duration(marker.lifetime_s)
    return msg


def marker_array_msg(markers: MarkerSet) -> MarkerArray:
    """Convert a marker set: every marker stamped with the set's stamp, in its frame."""
    return MarkerArray(markers=[marker_msg(m, markers.stamp_ns, markers.frame_id)
                                for m in markers.markers])


def tracks_from_msg(msg: TrackArray) -> list[TrackIn]:
    """Convert a TrackArray (map frame)."""
    return [TrackIn(int(t.track_id), float(t.position.x), float(t.position.y),
                    float(t.height_m), float(t.confidence), bool(t.tangled),
                    tuple(int(i) for i in t.tangled_with), int(t.role), t.visit_id,
                    t.account_id) for t in msg.tracks]


def skeletons_from_msg(msg: SkeletonArray) -> list[SkeletonIn]:
    """Convert a SkeletonArray: seen joints by name (Keypoint constants index JOINTS)."""
    figures = []
    for skeleton in msg.skeletons:
        joints = {}
        for keypoint in skeleton.keypoints:
            if keypoint.confidence > 0.0 and keypoint.joint < len(JOINTS):
                p = keypoint.position
                joints[JOINTS[keypoint.joint]] = (float(p.x), float(p.y), float(p.z))
        figures.append(SkeletonIn(int(skeleton.track_id), joints, skeleton.left_hand_bin_id,
                                  skeleton.right_hand_bin_id))
    return figures


def shelf_event_from_msg(msg: ShelfEvent) -> ShelfEventIn:
    """Convert a ShelfEvent."""
    return ShelfEventIn(msg.event_id, stamp_to_ns(msg.header.stamp), msg.shelf_id,
                        msg.bin_id, SHELF_EVENT_KINDS.get(msg.event_type, EVENT_KINDS[2]),
                        float(msg.delta_grams))


def cart_event_from_msg(msg: CartEvent) -> CartEventIn:
    """Convert a CartEvent."""
    return CartEventIn(msg.event_id, stamp_to_ns(msg.header.stamp), msg.visit_id,
                       msg.account_id, int(msg.track_id), msg.sku, int(msg.quantity_delta),
                       bool(msg.needs_review), msg.review_reason, tuple(msg.evidence_ids))


def visit_from_msg(msg: Visit) -> VisitIn:
    """Convert a Visit."""
    return VisitIn(msg.visit_id, msg.account_id, tuple(int(t) for t in msg.track_ids),
                   msg.status == Visit.STARTED, stamp_to_ns(msg.header.stamp))


class VisualizationNode(Node):
    """Marker arrays of the store, its people and events, for rviz2 and Foxglove."""

    def __init__(self, **kwargs: Any) -> None:
        """Load the store and the settings; subscribe to the graph's outputs."""
        super().__init__('visualization', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            self.config = VisualizationConfig(**{info.name: params[info.name]
                                                 for info in VisualizationConfig.fields()})
        except ValueError as error:
            raise MissingParameterError(f"node 'visualization': {error}") from None
        self.view = StoreView(self.config, self.description)
        self._map_frame = self.description.map_frame
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self._last_log: dict[str, float] = {}
        self._publisher = self.create_publisher(MarkerArray, 'visualization/markers',
                                                MARKERS_QOS)
        self._input_subscriptions = [
            self.create_subscription(TrackArray, 'people/tracks', self.on_tracks,
                                     RELIABLE_100),
            self.create_subscription(SkeletonArray, 'people/skeletons', self.on_skeletons,
                                     SENSOR_100),
            self.create_subscription(ShelfEvent, 'shelves/events', self.on_shelf_event,
                                     RELIABLE_100),
            self.create_subscription(CartEvent, 'cart/events', self.on_cart_event,
                                     RELIABLE_100),
            self.create_subscription(Visit, 'visits', self.on_visit, VISITS_QOS),
        ]
        self._timer = self.create_timer(1.0 / self.config.max_rate_hz, self.on_timer)
        self.diagnostics.values['store_description'] = path
        self.diagnostics.set_status(OK, 'waiting for inputs')
        self.get_logger().info(
            f'visualization ready: {len(self.description.shelves)} shelves, '
            f'{len(self.description.bins())} bins, at most {self.config.max_rate_hz:g} Hz')

    # Inputs --------------------------------------------------------------------------------

    def on_tracks(self, msg: TrackArray) -> None:
        """Take one track array."""
        if self._frame_ok('tracks', msg.header.frame_id):
            self._take('tracks', lambda now: self.view.add_tracks(
                stamp_to_ns(msg.header.stamp), tracks_from_msg(msg), now))

    def on_skeletons(self, msg: SkeletonArray) -> None:
        """Take one skeleton array."""
        if self._frame_ok('skeletons', msg.header.frame_id):
            self._take('skeletons', lambda now: self.view.add_skeletons(
                stamp_to_ns(msg.header.stamp), skeletons_from_msg(msg), now))

    def on_shelf_event(self, msg: ShelfEvent) -> None:
        """Take one shelf event (its frame is the shelf's)."""
        self._take('shelf_events',
                   lambda now: self.view.add_shelf_event(shelf_event_from_msg(msg), now))

    def on_cart_event(self, msg: CartEvent) -> None:
        """Take one cart event."""
        self._take('cart_events',
                   lambda now: self.view.add_cart_event(cart_event_from_msg(msg), now))

    def on_visit(self, msg: Visit) -> None:
        """Take one visit start or end."""
        self._take('visits', lambda now: self.view.add_visit(visit_from_msg(msg), now))

    def on_timer(self) -> None:
        """Publish when the core says a marker array is due (fades, labels, idle refresh)."""
        self._publish(self._now_ns())

    # Internals -----------------------------------------------------------------------------

    def _now_ns(self) -> Optional[int]:
        now = self.get_clock().now().nanoseconds
        return now if now > 0 else None

    def _frame_ok(self, stream: str, frame_id: str) -> bool:
        if frame_id and frame_id != self._map_frame:
            self._dropped(stream, 'wrong_frame',
                          f'frame {frame_id!r}, not {self._map_frame!r}')
            return False
        return True

    def _take(self, stream: str, add: Callable[[Optional[int]], None]) -> None:
        self.diagnostics.count(stream)
        now = self._now_ns()
        try:
            add(now)
        except VisualizationInputError as rejection:
            self._dropped(stream, rejection.reason, str(rejection))
            return
        self._publish(now)

    def _dropped(self, stream: str, reason: str, message: str) -> None:
        """Count a dropped input; log it, at most every LOG_REPEAT_S per stream and reason."""
        key = f'dropped_{stream}_{reason}'
        self.diagnostics.count(key)
        now = time.monotonic()
        last = self._last_log.get(key)
        if last is None or now - last >= LOG_REPEAT_S:
            self._last_log[key] = now
            self.get_logger().warning(
                f'dropped {stream} ({reason}): {message} [{key} = '
                f'{self.diagnostics.counters[key]}]')

    def _publish(self, now_ns: Optional[int]) -> None:
        markers = self.view.markers(now_ns)
        for reason, count in self.view.dropped.items():
            self.diagnostics.counters[f'dropped_items_{reason}'] = count
        self.diagnostics.counters['repeated_events'] = self.view.repeated_events
        if markers is None:
            return
        self._publisher.publish(marker_array_msg(markers))
        self.diagnostics.count('marker_arrays')
        self.diagnostics.set_status(OK, 'publishing')


def main(args: list[str] | None = None) -> None:
    """Run the visualization node until shut down."""
    sys.exit(run_single_node(VisualizationNode, args))


NODE = VisualizationNode

if __name__ == '__main__':
    main()
