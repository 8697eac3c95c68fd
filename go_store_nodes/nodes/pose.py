"""Pose node: depth images and tracks in, stick figures of people near shelves out.

Subscribes, for every camera of the store description:
  cameras/<cam>/depth/image_rect_raw   sensor_msgs/Image 16UC1 mm (or 32FC1 m)
  cameras/<cam>/depth/camera_info      sensor_msgs/CameraInfo
  /tf_static                           map -> <cam>_depth_optical_frame, map -> <shelf>
and
  people/tracks                        go_store/TrackArray (reliable)
  shelves/<shelf>/weights              go_store/LoadCellBatch: a hand is in the bin whose
                                       load cell it unsettles (core docstring)
Publishes:
  people/skeletons    go_store/SkeletonArray per approximate-time frame set, stamped with
                      the set's capture stamp, frame map: one Skeleton per track within
                      near_shelf_m of a shelf front (joints seen, the bin of each hand)
  diagnostics         diagnostic_msgs/DiagnosticArray: drops by reason, frame sets,
                      skeletons, hands in bins
A frame, track array or load-cell batch it cannot use (no camera_info or transform yet,
wrong encoding or size, no depth data, out of order, from the future, too late for its
set, a batch on another shelf's topic) is logged, counted and dropped; the node keeps
running. Logic: go_store_nodes.core.pose;
docs/people.md (Pose).
"""

from __future__ import annotations

from dataclasses import replace
import sys
from typing import Any

from go_store.msg import Keypoint, LoadCellBatch, Skeleton, SkeletonArray, TrackArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..core.fusion.fusion import FusionInputError
from ..core.locator import FrameRejectedError, LocatorConfig
from ..core.pose import (
    JOINTS,
    PoseConfig,
    PoseEstimator,
    PoseInputError,
    SkeletonSet,
    TrackState,
)
from ..core.store import Intrinsics, load_store_description
from ..core.tf_buffer import FrameLookupError, TransformBuffer
from ..core.transforms import Transform
from ..ros.diagnostics import LOG_REPEAT_S, LogLimiter, NodeDiagnostics, OK
from ..ros.params import (
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from ..ros.tf import StaticTransformListener
from .person_locator import (
    depth_frame_from_msg,
    IMAGE_QOS,
    intrinsics_from_camera_info,
    ns_to_stamp,
    stamp_to_ns,
)
from .runner import run_single_node
from .shelf_fusion import samples_from_msg, WEIGHTS_QOS

# The locator settings of the depth pipeline the pose node runs too (same values as the
# person locator's section: test/test_pose_node.py checks they agree).
DEPTH_SETTINGS = ('stereo_baseline_m', 'depth_subpixel_rms', 'min_depth_m', 'max_depth_m',
                  'min_valid_fraction', 'foreground_sigmas', 'foreground_min_band_m',
                  'background_rate', 'reveal_after_s', 'absorb_after_s', 'cell_m',
                  'min_point_height_m', 'sync_tolerance_s', 'max_wait_s', 'max_future_s',
                  'outage_after_s')
_LOCATOR_FIELDS = {info.name: info for info in LocatorConfig.fields()}

PARAMETERS = (
    STORE_DESCRIPTION,
    *(ParamSpec(name, Parameter.Type.DOUBLE, _LOCATOR_FIELDS[name].description,
                _LOCATOR_FIELDS[name].minimum, _LOCATOR_FIELDS[name].maximum)
      for name in DEPTH_SETTINGS),
    *(ParamSpec(info.name, Parameter.Type.DOUBLE, info.description, info.minimum,
                info.maximum) for info in PoseConfig.fields()),
    ParamSpec('flush_period_s', Parameter.Type.DOUBLE,
              's between checks for frame sets whose cameras or tracks went quiet', 0.02, 1.0),
    DIAGNOSTICS_PERIOD,
)

TRACKS_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
SKELETONS_QOS = TRACKS_QOS
KEYPOINT_OF = {name: index for index, name in enumerate(JOINTS)}   # == Keypoint constants


def skeleton_array_msg(result: SkeletonSet, frame_id: str) -> SkeletonArray:
    """Return the SkeletonArray of one frame set (joints not seen are left out)."""
    msg = SkeletonArray()
    msg.header.stamp = ns_to_stamp(result.stamp_ns)
    msg.header.frame_id = frame_id
    for skeleton in result.skeletons:
        item = Skeleton()
        item.header = msg.header
        item.track_id = int(skeleton.track_id)
        for joint in skeleton.joints:
            if joint.confidence <= 0.0:
                continue
            keypoint = Keypoint()
            keypoint.joint = KEYPOINT_OF[joint.name]
            keypoint.position.x, keypoint.position.y, keypoint.position.z = (
                float(v) for v in joint.position)
            keypoint.confidence = float(joint.confidence)
            item.keypoints.append(keypoint)
        item.left_hand_bin_id = skeleton.hand_bin('left')
        item.right_hand_bin_id = skeleton.hand_bin('right')
        msg.skeletons.append(item)
    return msg


def track_states(msg: TrackArray) -> list[TrackState]:
    """Return the core view of every track (floor point and velocity, map)."""
    return [TrackState(int(t.track_id), float(t.position.x), float(t.position.y),
                       float(t.velocity.x), float(t.velocity.y)) for t in msg.tracks]


class PoseNode(Node):
    """Stick figures of tracked people near shelves, and the bin each hand is in."""

    def __init__(self, **kwargs: Any) -> None:
        """Load the store and the settings; subscribe to every camera and the tracks."""
        super().__init__('pose', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            locator_config = LocatorConfig(**{n: params[n] for n in DEPTH_SETTINGS})
            config = PoseConfig(**{info.name: params[info.name]
                                   for info in PoseConfig.fields()})
            self.estimator = PoseEstimator(
                config, locator_config,
                {c.camera_id: c.model.fps for c in self.description.cameras},
                (0.0, 0.0), self.description.size_m, self.description.shelves)
        except ValueError as error:
            raise MissingParameterError(f"node 'pose': {error}") from None
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self.tf_buffer = TransformBuffer()
        self._tf_listener = StaticTransformListener(self.tf_buffer, self)
        self._map_frame = self.description.map_frame
        self._depth_info: dict[str, Intrinsics] = {}
        self._shelves_from_tf: set[str] = set()
        self._log_limit = LogLimiter(LOG_REPEAT_S)
        self._publisher = self.create_publisher(SkeletonArray, 'people/skeletons',
                                                SKELETONS_QOS)
        self._input_subscriptions = [
            self.create_subscription(TrackArray, 'people/tracks', self.on_tracks, TRACKS_QOS)]
        for camera in self.description.cameras:
            cam = camera.camera_id
            prefix = f'cameras/{cam}'
            self._input_subscriptions += [
                self.create_subscription(Image, f'{prefix}/depth/image_rect_raw',
                                         lambda m, c=cam: self.on_depth(m, c), IMAGE_QOS),
                self.create_subscription(CameraInfo, f'{prefix}/depth/camera_info',
                                         lambda m, c=cam: self.on_info(m, c), IMAGE_QOS),
            ]
        for shelf in self.description.shelves:
            self._input_subscriptions.append(self.create_subscription(
                LoadCellBatch, f'shelves/{shelf.shelf_id}/weights',
                lambda m, s=shelf.shelf_id: self.on_weights(m, s), WEIGHTS_QOS))
        self._timer = self.create_timer(params['flush_period_s'], self.on_timer)
        self.diagnostics.values['store_description'] = path
        self.diagnostics.set_status(OK, 'waiting for depth frames and tracks')
        self.get_logger().info(
            f'pose ready: {len(self.description.cameras)} cameras, '
            f'{len(self.description.shelves)} shelves')

    # Inputs --------------------------------------------------------------------------------

    def on_info(self, msg: CameraInfo, camera_id: str) -> None:
        """Keep the latest depth camera_info of a camera."""
        self._depth_info[camera_id] = intrinsics_from_camera_info(msg)

    def on_depth(self, msg: Image, camera_id: str) -> None:
        """Take one depth frame; publish the frame sets that are ready."""
        received_ns = self._now_ns()
        self.diagnostics.count('depth_frames')
        try:
            intrinsics = self._depth_info.get(camera_id)
            if intrinsics is None:
                raise FrameRejectedError('no_camera_info', 'no depth camera_info received yet')
            camera = self.description.camera(camera_id)
            transform = self._transform(msg.header.frame_id or camera.depth_frame_id)
            frame = depth_frame_from_msg(msg, camera_id, intrinsics, transform, received_ns)
            results = self.estimator.add_depth(frame)
        except FrameRejectedError as rejection:
            self._dropped(camera_id, 'depth', rejection.reason, str(rejection))
            return
        self._publish(results)

    def on_tracks(self, msg: TrackArray) -> None:
        """Take one track array; publish the frame sets that waited for it."""
        self.diagnostics.count('track_arrays')
        if msg.header.frame_id and msg.header.frame_id != self._map_frame:
            self._dropped('tracks', 'tracks', 'wrong_frame',
                          f'frame {msg.header.frame_id!r}, not {self._map_frame!r}')
            return
        try:
            results = self.estimator.add_tracks(track_states(msg), stamp_to_ns(msg.header.stamp),
                                                self._now_ns())
        except PoseInputError as rejection:
            self._dropped('tracks', 'tracks', rejection.reason, str(rejection))
            return
        self._publish(results)

    def on_weights(self, msg: LoadCellBatch, shelf_id: str) -> None:
        """Take one load-cell batch of a shelf: when its bins were unsettled."""
        self.diagnostics.count('weight_batches')
        if msg.shelf_id != shelf_id:
            self._dropped(shelf_id, 'weights', 'wrong_topic',
                          f'a batch of shelf {msg.shelf_id!r} on the topic of {shelf_id!r}')
            return
        try:
            samples = samples_from_msg(msg)
        except FusionInputError as error:
            self._dropped(shelf_id, 'weights', error.reason, str(error))
            return
        now_ns = self._now_ns()
        if now_ns is not None and samples.last_stamp_ns - now_ns > \
                self.estimator.locator_config.ns('max_future_s'):
            self._dropped(shelf_id, 'weights', 'future_stamp',
                          f'last sample {(samples.last_stamp_ns - now_ns) / 1e9:.3f} s after '
                          'its receive time')
            return
        self.estimator.add_weights(samples)

    def on_timer(self) -> None:
        """Emit frame sets whose cameras or tracks went quiet; take shelf poses from TF."""
        for shelf in self.description.shelves:
            if shelf.shelf_id in self._shelves_from_tf:
                continue
            try:
                pose = self.tf_buffer.lookup(self._map_frame, shelf.frame_id)
            except FrameLookupError:
                continue
            self.estimator.set_shelf_pose(replace(shelf, t_map_shelf=pose))
            self._shelves_from_tf.add(shelf.shelf_id)
        now_ns = self._now_ns()
        if now_ns is not None:
            self._publish(self.estimator.flush(now_ns))

    # Internals -----------------------------------------------------------------------------

    def _now_ns(self) -> int | None:
        now = self.get_clock().now().nanoseconds
        return now if now > 0 else None

    def _transform(self, frame_id: str) -> Transform:
        try:
            return self.tf_buffer.lookup(self._map_frame, frame_id)
        except FrameLookupError:
            raise FrameRejectedError(
                'no_transform', f'no transform {self._map_frame} -> {frame_id} on /tf_static '
                'yet (is the calibration node running?)') from None

    def _dropped(self, source: str, stream: str, reason: str, message: str) -> None:
        """Count a dropped input; log it, at most every LOG_REPEAT_S per source and reason."""
        key = f'dropped_{stream}_{reason}'
        self.diagnostics.count(key)
        if self._log_limit.ready((source, key)):
            self.get_logger().warning(
                f'{source}: dropped {stream} ({reason}): {message} '
                f'[{key} = {self.diagnostics.counters[key]}]')

    def _publish(self, results: list[SkeletonSet]) -> None:
        for result in results:
            self._publisher.publish(skeleton_array_msg(result, self._map_frame))
            self.diagnostics.count('frame_sets')
            self.diagnostics.count('skeletons', len(result.skeletons))
            self.diagnostics.count('hands_in_bins',
                                   sum(len(s.hands) for s in result.skeletons))
        if results:
            for reason, count in self.estimator.dropped.items():
                self.diagnostics.counters[f'dropped_frame_sets_{reason}'] = count
            self.diagnostics.set_status(OK, 'estimating')


def main(args: list[str] | None = None) -> None:
    """Run the pose node until shut down."""
    sys.exit(run_single_node(PoseNode, args))


NODE = PoseNode

if __name__ == '__main__':
    main()
