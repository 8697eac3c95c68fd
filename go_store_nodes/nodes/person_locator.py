"""Person locator node: depth images of every camera in, people on the floor map out.

Subscribes, for every camera of the store description:
  cameras/<cam>/depth/image_rect_raw   sensor_msgs/Image 16UC1 mm (or 32FC1 m)
  cameras/<cam>/depth/camera_info      sensor_msgs/CameraInfo
  cameras/<cam>/color/image_raw        sensor_msgs/Image rgb8/bgr8 (appearance only)
  cameras/<cam>/color/camera_info      sensor_msgs/CameraInfo
  /tf_static                           map -> <cam>_depth_optical_frame / _color_optical_frame
Publishes:
  people/detections   go_store/PersonDetectionArray per approximate-time frame set, stamped
                      with the set's capture stamp, frame map (empty when nobody is there)
  diagnostics         diagnostic_msgs/DiagnosticArray: drops by reason, per-camera frame
                      rate, missed frames, latency, clock offset, outage (WARN within a
                      second of a camera going quiet)
A frame the locator cannot use (no camera_info or transform yet, wrong encoding or size,
no depth data, out of order, from the future, too late for its set) is logged, counted
and dropped; the node keeps running. Logic: go_store_nodes.core.locator; docs/people.md.
"""

from __future__ import annotations

import sys
from typing import Any

from builtin_interfaces.msg import Time as StampMsg
from go_store.msg import PersonDetection, PersonDetectionArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..core.locator import (
    ColorFrame,
    decode_color,
    decode_depth,
    DepthFrame,
    FrameRejectedError,
    LocatedSet,
    LocatorConfig,
    PersonLocator,
)
from ..core.locator.frames import check_intrinsics
from ..core.store import Intrinsics, load_store_description
from ..core.tf_buffer import FrameLookupError, TransformBuffer
from ..core.transforms import Transform
from ..ros.diagnostics import LOG_REPEAT_S, LogLimiter, NodeDiagnostics, OK, WARN
from ..ros.params import (
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from ..ros.tf import StaticTransformListener
from .runner import run_single_node

PARAMETERS = (
    STORE_DESCRIPTION,
    *(ParamSpec(info.name, Parameter.Type.DOUBLE, info.description, info.minimum,
                info.maximum) for info in LocatorConfig.fields()),
    ParamSpec('health_check_period_s', Parameter.Type.DOUBLE,
              's between checks for camera outages and frame sets whose cameras went quiet',
              0.02, 1.0),
    DIAGNOSTICS_PERIOD,
)

# Reliable so that a replay as fast as possible waits for the locator; shallow so that a
# slow locator works on recent frames (the latency figure shows it).
IMAGE_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
DETECTIONS_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                            reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)
NS_PER_SECOND = 1_000_000_000


def stamp_to_ns(stamp: StampMsg) -> int:
    """Return a header stamp as integer ns."""
    return int(stamp.sec) * NS_PER_SECOND + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> StampMsg:
    """Return integer ns as a header stamp."""
    seconds, nanoseconds = divmod(int(stamp_ns), NS_PER_SECOND)
    return StampMsg(sec=seconds, nanosec=nanoseconds)


def intrinsics_from_camera_info(msg: CameraInfo) -> Intrinsics:
    """Return the pinhole intrinsics of a CameraInfo (K and D as they are)."""
    k = [float(v) for v in msg.k]
    return Intrinsics(width=int(msg.width), height=int(msg.height), fx=k[0], fy=k[4],
                      cx=k[2], cy=k[5], distortion_model=str(msg.distortion_model),
                      d=tuple(float(v) for v in msg.d))


def depth_frame_from_msg(msg: Image, camera_id: str, intrinsics: Intrinsics,
                         t_map_depth: Transform, received_ns: int | None) -> DepthFrame:
    """Return the core DepthFrame of a depth Image; raise FrameRejectedError if unusable."""
    depth = decode_depth(msg.encoding, int(msg.height), int(msg.width), int(msg.step),
                         bool(msg.is_bigendian), bytes(msg.data))
    check_intrinsics(intrinsics, int(msg.height), int(msg.width), 'depth')
    return DepthFrame(camera_id, stamp_to_ns(msg.header.stamp), depth, intrinsics,
                      t_map_depth, received_ns)


def color_frame_from_msg(msg: Image, camera_id: str, intrinsics: Intrinsics,
                         t_map_color: Transform) -> ColorFrame:
    """Return the core ColorFrame of a colour Image; raise FrameRejectedError if unusable."""
    rgb = decode_color(msg.encoding, int(msg.height), int(msg.width), int(msg.step),
                       bytes(msg.data))
    check_intrinsics(intrinsics, int(msg.height), int(msg.width), 'colour')
    return ColorFrame(camera_id, stamp_to_ns(msg.header.stamp), rgb, intrinsics, t_map_color)


def detections_msg(located: LocatedSet, frame_id: str) -> PersonDetectionArray:
    """Return the PersonDetectionArray of one located frame set."""
    msg = PersonDetectionArray()
    msg.header.stamp = ns_to_stamp(located.stamp_ns)
    msg.header.frame_id = frame_id
    for detection in located.detections:
        item = PersonDetection()
        item.header = msg.header
        item.position.x, item.position.y, item.position.z = (
            float(detection.x_m), float(detection.y_m), 0.0)
        item.position_covariance = [float(v) for v in detection.covariance.flat]
        item.height_m = float(detection.height_m)
        item.blob_area_m2 = float(detection.area_m2)
        item.confidence = float(detection.confidence)
        item.appearance = [float(v) for v in detection.appearance]
        item.camera_ids = list(detection.camera_ids)
        msg.detections.append(item)
    return msg


class PersonLocatorNode(Node):
    """Locates people on the floor map from every camera's depth images."""

    def __init__(self, **kwargs: Any) -> None:
        """Load the store and the locator settings; subscribe to every camera."""
        super().__init__('person_locator', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            config = LocatorConfig(**{info.name: params[info.name]
                                      for info in LocatorConfig.fields()})
            self.locator = PersonLocator(
                config, {c.camera_id: c.model.fps for c in self.description.cameras},
                (0.0, 0.0), self.description.size_m)
        except ValueError as error:
            raise MissingParameterError(f"node 'person_locator': {error}") from None
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self.tf_buffer = TransformBuffer()
        self._tf_listener = StaticTransformListener(self.tf_buffer, self)
        self._map_frame = self.description.map_frame
        self._depth_info: dict[str, Intrinsics] = {}
        self._color_info: dict[str, Intrinsics] = {}
        self._log_limit = LogLimiter(LOG_REPEAT_S)
        self._publisher = self.create_publisher(
            PersonDetectionArray, 'people/detections', DETECTIONS_QOS)
        self._camera_subscriptions = []
        for camera in self.description.cameras:
            cam = camera.camera_id
            prefix = f'cameras/{cam}'
            self._camera_subscriptions += [
                self.create_subscription(Image, f'{prefix}/depth/image_rect_raw',
                                         lambda m, c=cam: self.on_depth(m, c), IMAGE_QOS),
                self.create_subscription(CameraInfo, f'{prefix}/depth/camera_info',
                                         lambda m, c=cam: self.on_info(m, c, self._depth_info),
                                         IMAGE_QOS),
                self.create_subscription(Image, f'{prefix}/color/image_raw',
                                         lambda m, c=cam: self.on_color(m, c), IMAGE_QOS),
                self.create_subscription(CameraInfo, f'{prefix}/color/camera_info',
                                         lambda m, c=cam: self.on_info(m, c, self._color_info),
                                         IMAGE_QOS),
            ]
        self._timer = self.create_timer(params['health_check_period_s'], self.on_timer)
        self.diagnostics.values['store_description'] = path
        self.diagnostics.set_status(OK, f'waiting for {len(self.description.cameras)} cameras')
        self.get_logger().info(
            f'person locator ready: {len(self.description.cameras)} cameras, floor '
            f'{self.description.size_m[0]} x {self.description.size_m[1]} m in '
            f'{config.cell_m} m cells')

    # Inputs --------------------------------------------------------------------------------

    def on_info(self, msg: CameraInfo, camera_id: str, store: dict[str, Intrinsics]) -> None:
        """Keep the latest camera_info of a stream."""
        store[camera_id] = intrinsics_from_camera_info(msg)

    def on_depth(self, msg: Image, camera_id: str) -> None:
        """Locate with one depth frame; publish the frame sets it completes."""
        received_ns = self._now_ns()
        self.diagnostics.count('depth_frames')
        try:
            intrinsics = self._depth_info.get(camera_id)
            if intrinsics is None:
                raise FrameRejectedError('no_camera_info',
                                         'no depth camera_info received yet')
            camera = self.description.camera(camera_id)
            transform = self._transform(msg.header.frame_id or camera.depth_frame_id)
            frame = depth_frame_from_msg(msg, camera_id, intrinsics, transform, received_ns)
        except FrameRejectedError as rejection:
            self.locator.reject(camera_id, rejection.reason, received_ns)
            self._dropped(camera_id, 'depth', rejection)
            return
        try:
            located = self.locator.add_depth(frame)
        except FrameRejectedError as rejection:
            self._dropped(camera_id, 'depth', rejection)
            return
        self._publish(located)

    def on_color(self, msg: Image, camera_id: str) -> None:
        """Keep one colour frame for the appearance signatures."""
        self.diagnostics.count('color_frames')
        try:
            intrinsics = self._color_info.get(camera_id)
            if intrinsics is None:
                raise FrameRejectedError('no_camera_info',
                                         'no colour camera_info received yet')
            camera = self.description.camera(camera_id)
            transform = self._transform(msg.header.frame_id or camera.color_frame_id)
            self.locator.add_color(color_frame_from_msg(msg, camera_id, intrinsics, transform))
        except FrameRejectedError as rejection:
            self._dropped(camera_id, 'color', rejection)

    def on_timer(self) -> None:
        """Emit frame sets whose cameras went quiet; flag camera outages."""
        now_ns = self._now_ns()
        if now_ns is None:
            return
        self._publish(self.locator.flush(now_ns))
        changes = self.locator.check_health(now_ns)
        for change in changes:
            if change.started:
                self.get_logger().warning(
                    f'camera {change.camera_id}: no frame for {change.silent_s:.2f} s '
                    '(outage)')
            else:
                self.get_logger().info(f'camera {change.camera_id}: frames again')
        if changes:
            self._update_diagnostics()
            self.diagnostics.publish()

    # Helpers -------------------------------------------------------------------------------

    def _now_ns(self) -> int | None:
        """Return the node's clock in ns; None before simulated time has started."""
        now = self.get_clock().now().nanoseconds
        return now if now > 0 else None

    def _transform(self, frame_id: str) -> Transform:
        try:
            return self.tf_buffer.lookup(self._map_frame, frame_id)
        except FrameLookupError:
            raise FrameRejectedError(
                'no_transform', f'no transform {self._map_frame} -> {frame_id} on /tf_static '
                'yet (is the calibration node running?)') from None

    def _dropped(self, camera_id: str, stream: str, rejection: FrameRejectedError) -> None:
        """Count a dropped frame; log it, at most every LOG_REPEAT_S per camera and reason."""
        key = f'dropped_{stream}_{rejection.reason}'
        self.diagnostics.count(key)
        if self._log_limit.ready((camera_id, key)):
            total = self.diagnostics.counters[key]
            self.get_logger().warning(
                f'camera {camera_id}: dropped a {stream} frame ({rejection.reason}): '
                f'{rejection} [{key} = {total} over all cameras]')

    def _publish(self, located: list[LocatedSet]) -> None:
        for frame_set in located:
            self._publisher.publish(detections_msg(frame_set, self._map_frame))
            self.diagnostics.count('frame_sets')
            self.diagnostics.count('detections', len(frame_set.detections))
        if located:
            self._update_diagnostics()

    def _update_diagnostics(self) -> None:
        # Foreground points of far, tilted views left out where a sharper view sees.
        self.diagnostics.values['points_blurred'] = str(self.locator.points_blurred)
        outages = []
        for health in self.locator.health.cameras.values():
            self.diagnostics.values.update(health.summary())
            if health.in_outage:
                outages.append(health.camera_id)
        if outages:
            self.diagnostics.set_status(WARN, f'camera outage: {", ".join(sorted(outages))}')
        else:
            self.diagnostics.set_status(OK, 'locating')


def main(args: list[str] | None = None) -> None:
    """Run the person locator node until shut down."""
    sys.exit(run_single_node(PersonLocatorNode, args))


NODE = PersonLocatorNode

if __name__ == '__main__':
    main()
