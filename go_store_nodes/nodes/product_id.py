"""Product ID node: which product left or came at a shelf event, from colour crops.

Subscribes:
  cameras/<cam>/color/image_raw     sensor_msgs/Image rgb8/bgr8, every camera of the store
  cameras/<cam>/color/camera_info   sensor_msgs/CameraInfo
  /tf_static                        map -> <cam>_color_optical_frame (calibration)
  shelves/events                    go_store/ShelfEvent (weight fusion): bin, start, end
  people/skeletons                  go_store/SkeletonArray (pose): hand points and the bin
                                    each hand is in (best effort, keep last 100)
Publishes:
  products/observations   go_store/ProductObservationArray, one per shelf event with
                          every observation of that event at once (stamp = the newest
                          capture time among them, frame map); one observation per
                          camera that sees the bin front, observation_id
                          '<shelf event id>/<camera id>', category, SKU likelihoods; and
                          one per camera that sees the hand that was in the bin, after a
                          pick (before a return): '<shelf event id>/<camera id>/hand',
                          track_id and hand set; and one per camera that sees what that
                          person carries (basket, bag) before and after the reach:
                          '<shelf event id>/<camera id>/carried', track_id set, hand
                          HAND_CARRIED
  diagnostics             frames, events, observations, drops by reason
Reference images come from the store description's ``product_images`` folder (or the
``product_images`` parameter). Bad input (a camera not in TF, an unknown bin, a folder
of a SKU not in the catalog, a malformed image, a skeleton with a joint that is not a
finite number, in an unknown bin, from the future or in a frame not in TF) is logged,
counted and dropped.
Logic: go_store_nodes.core.product_id; docs/shelf-to-cart.md, section Product ID.
"""

from __future__ import annotations

import sys
from typing import Any

from go_store.msg import (
    ProductObservation,
    ProductObservationArray,
    ShelfEvent,
    SkeletonArray,
    SkuLikelihood,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..core.locator import decode_color, FrameRejectedError
from ..core.product_id import (
    EventRejectedError,
    load_reference_folder,
    Observation,
    ProductClassifier,
    ProductIdConfig,
    ProductIdentifier,
    ReferenceImage,
    ReferenceProblem,
    ShelfEventData,
    skeleton_data,
    SkeletonData,
    SkeletonRejectedError,
)
from ..core.store import Intrinsics, load_store_description
from ..core.tf_buffer import FrameLookupError, TransformBuffer
from ..core.transforms import Transform
from ..ros.diagnostics import ERROR, LOG_REPEAT_S, LogLimiter, NodeDiagnostics, OK, WARN
from ..ros.params import (
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from ..ros.tf import StaticTransformListener
from .person_locator import intrinsics_from_camera_info, ns_to_stamp, stamp_to_ns
from .runner import run_single_node

PARAMETERS = (
    STORE_DESCRIPTION,
    ParamSpec('product_images', Parameter.Type.STRING,
              "reference image folder; '' for the store description's product_images"),
    *(ParamSpec(info.name, Parameter.Type.INTEGER if info.integer else Parameter.Type.DOUBLE,
                info.description, info.minimum, info.maximum)
      for info in ProductIdConfig.fields()),
    ParamSpec('poll_period_s', Parameter.Type.DOUBLE,
              's between checks for shelf events whose after frames are in', 0.02, 5.0),
    DIAGNOSTICS_PERIOD,
)

IMAGE_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
EVENT_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
SKELETON_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)
HAND_OF = {'': ProductObservation.HAND_NONE, 'left': ProductObservation.HAND_LEFT,
           'right': ProductObservation.HAND_RIGHT, 'carried': ProductObservation.HAND_CARRIED}
KIND_OF_EVENT = {ShelfEvent.PICK: 'pick', ShelfEvent.RETURN: 'return'}


def shelf_event_from_msg(msg: ShelfEvent) -> ShelfEventData | None:
    """Return the core event of a ShelfEvent; None for an UNKNOWN change (nothing to see)."""
    kind = KIND_OF_EVENT.get(int(msg.event_type))
    if kind is None:
        return None
    return ShelfEventData(str(msg.event_id), str(msg.bin_id), kind, stamp_to_ns(msg.start),
                          stamp_to_ns(msg.end))


def skeletons_from_msg(msg: SkeletonArray) -> list[SkeletonData]:
    """Convert a SkeletonArray: hand and torso points (header frame), hand bins."""
    return [skeleton_data(
        int(s.track_id),
        {int(k.joint): (float(k.position.x), float(k.position.y), float(k.position.z),
                        float(k.confidence)) for k in s.keypoints},
        str(s.left_hand_bin_id), str(s.right_hand_bin_id)) for s in msg.skeletons]


def observations_msg(observations: list[Observation], frame_id: str,
                     camera_frames: dict[str, str]) -> ProductObservationArray:
    """Return the array of one shelf event's observations, stamped with the newest capture."""
    msg = ProductObservationArray()
    msg.header.stamp = ns_to_stamp(max(o.stamp_ns for o in observations))
    msg.header.frame_id = frame_id
    for observation in observations:
        item = ProductObservation()
        item.header.stamp = ns_to_stamp(observation.stamp_ns)
        item.header.frame_id = camera_frames.get(observation.camera_id, '')
        item.observation_id = observation.observation_id
        item.track_id = int(observation.track_id)
        item.hand = HAND_OF[observation.hand]
        item.bin_id = observation.bin_id
        item.camera_id = observation.camera_id
        item.category = observation.classification.category
        item.category_probability = float(observation.classification.category_probability)
        item.skus = [SkuLikelihood(sku=sku, quantity=1, likelihood=float(likelihood))
                     for sku, likelihood in observation.classification.skus]
        msg.observations.append(item)
    return msg


class ProductIdNode(Node):
    """Classifies the item that left or came at each shelf event, per camera."""

    def __init__(self, **kwargs: Any) -> None:
        """Load the store, fit the classifier on the reference images, subscribe."""
        super().__init__('product_id', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self._log_limit = LogLimiter(LOG_REPEAT_S)
        folder = params['product_images'] or self.description.product_images
        try:
            config = ProductIdConfig(**{info.name: params[info.name]
                                        for info in ProductIdConfig.fields()})
        except ValueError as error:
            raise MissingParameterError(f"node 'product_id': {error}") from None
        # Without reference images the node still runs (the rest of the graph does not
        # depend on it): status ERROR, every shelf event dropped and counted.
        self.identifier: ProductIdentifier | None = None
        problems: list[ReferenceProblem] = []
        images: list[ReferenceImage] = []
        try:
            if not folder:
                raise ValueError('no product_images folder: set it in the store description '
                                 'or the product_images parameter')
            images, problems = load_reference_folder(folder, self.description.catalog)
            classifier = ProductClassifier(
                images, {s: p.category for s, p in self.description.catalog.items()}, config)
            self.identifier = ProductIdentifier(self.description, classifier, config)
        except (ValueError, FileNotFoundError) as error:
            self._no_references = str(error)
            self.get_logger().error(f'no product identification: {error}')
        for problem in problems:
            self.diagnostics.count(f'reference_{problem.reason}')
            self.get_logger().warning(f'reference images: {problem.message}')
        self.tf_buffer = TransformBuffer()
        self._tf_listener = StaticTransformListener(self.tf_buffer, self)
        self._map_frame = self.description.map_frame
        self._color_info: dict[str, Intrinsics] = {}
        self._camera_frames = {c.camera_id: c.color_frame_id for c in self.description.cameras}
        self._publisher = self.create_publisher(
            ProductObservationArray, 'products/observations', EVENT_QOS)
        self._subscriptions_kept = [self.create_subscription(
            ShelfEvent, 'shelves/events', self.on_event, EVENT_QOS),
            self.create_subscription(SkeletonArray, 'people/skeletons', self.on_skeletons,
                                     SKELETON_QOS)]
        for camera in self.description.cameras:
            cam = camera.camera_id
            prefix = f'cameras/{cam}/color'
            self._subscriptions_kept += [
                self.create_subscription(Image, f'{prefix}/image_raw',
                                         lambda m, c=cam: self.on_color(m, c), IMAGE_QOS),
                self.create_subscription(CameraInfo, f'{prefix}/camera_info',
                                         lambda m, c=cam: self.on_info(m, c), IMAGE_QOS),
            ]
        self._timer = self.create_timer(params['poll_period_s'], self.on_timer)
        self.diagnostics.values['product_images'] = str(folder)
        if self.identifier is None:
            self.diagnostics.set_status(ERROR, f'no reference images: {self._no_references}')
            return
        classifier = self.identifier.classifier
        self.diagnostics.values['reference_skus'] = str(len(classifier.skus))
        self.diagnostics.set_status(OK if not problems else WARN,
                                    f'{len(classifier.skus)} SKUs from {len(images)} images'
                                    + (f', {len(problems)} reference problems' if problems
                                       else ''))
        self.get_logger().info(
            f'product ID ready: {len(classifier.skus)} SKUs in {len(classifier.categories)} '
            f'categories from {len(images)} reference images in {folder}')

    # Inputs --------------------------------------------------------------------------------

    def on_info(self, msg: CameraInfo, camera_id: str) -> None:
        """Keep the latest colour camera_info of a camera."""
        self._color_info[camera_id] = intrinsics_from_camera_info(msg)

    def on_color(self, msg: Image, camera_id: str) -> None:
        """Keep one colour frame in the camera's ring."""
        self.diagnostics.count('color_frames')
        if self.identifier is None:
            return
        frame_id = msg.header.frame_id or self._camera_frames[camera_id]
        transform: Transform | None
        try:
            transform = self.tf_buffer.lookup(self._map_frame, frame_id)
        except FrameLookupError:
            transform = None
        try:
            rgb = decode_color(msg.encoding, int(msg.height), int(msg.width), int(msg.step),
                               bytes(msg.data))
            self.identifier.add_frame(camera_id, stamp_to_ns(msg.header.stamp), rgb,
                                      self._color_info.get(camera_id), transform)
        except FrameRejectedError as rejection:
            if rejection.reason in ('malformed', 'wrong_encoding'):
                self.identifier.count(f'dropped_frame_{rejection.reason}')
            self._warn(f'camera {camera_id}: dropped a colour frame ({rejection.reason}): '
                       f'{rejection}', rejection.reason)

    def on_event(self, msg: ShelfEvent) -> None:
        """Queue a shelf event for classification once its after frames are in."""
        self.diagnostics.count('shelf_events')
        event = shelf_event_from_msg(msg)
        if event is None:
            self.diagnostics.count('shelf_events_unknown_type')
            return
        if self.identifier is None:
            self.diagnostics.count('dropped_event_no_references')
            return
        try:
            self.identifier.add_event(event)
        except EventRejectedError as rejection:
            self._warn(f'dropped shelf event {event.event_id}: {rejection}', rejection.reason)

    def on_skeletons(self, msg: SkeletonArray) -> None:
        """Keep the hands of one frame of skeletons (bad ones dropped and counted)."""
        self.diagnostics.count('skeleton_frames')
        if self.identifier is None:
            return
        frame_id = msg.header.frame_id or self._map_frame
        transform: Transform | None
        try:
            transform = self.tf_buffer.lookup(self._map_frame, frame_id)
        except FrameLookupError:
            transform = None
        now = self.get_clock().now().nanoseconds
        try:
            self.identifier.add_skeletons(stamp_to_ns(msg.header.stamp),
                                          skeletons_from_msg(msg), transform,
                                          now if now > 0 else None)
        except SkeletonRejectedError as rejection:
            self._warn(f'dropped skeletons ({rejection.reason}): {rejection}',
                       f'skeletons_{rejection.reason}')

    def on_timer(self) -> None:
        """Classify events that are ready; publish one array per shelf event.

        All of an event's observations (every camera's bin crop and hand crops) go in one
        message, so the association, which resolves an event once evidence of it is in,
        never resolves it on the first camera's crop alone.
        """
        if self.identifier is None:
            return
        now = self.get_clock().now().nanoseconds
        observations = self.identifier.poll(now if now > 0 else None)
        by_event: dict[str, list[Observation]] = {}
        for observation in observations:
            by_event.setdefault(observation.event_id, []).append(observation)
        for event_observations in sorted(by_event.values(),
                                         key=lambda group: max(o.stamp_ns for o in group)):
            self._publisher.publish(observations_msg(
                sorted(event_observations, key=lambda o: o.stamp_ns), self._map_frame,
                self._camera_frames))
        self.diagnostics.counters.update(self.identifier.counters)
        self.diagnostics.values['pending_events'] = str(self.identifier.pending_events)

    def _warn(self, message: str, key: str) -> None:
        """Log a drop, at most every LOG_REPEAT_S per reason."""
        if self._log_limit.ready(key):
            self.get_logger().warning(message)


def main(args: list[str] | None = None) -> None:
    """Run the product ID node until shut down."""
    sys.exit(run_single_node(ProductIdNode, args))


NODE = ProductIdNode

if __name__ == '__main__':
    main()
