"""Product ID node, driven by calling its callbacks with messages built here.

The node is created in this process with the shipped params file (nothing spins).
Images are rendered by the simulator: a pick of paprika chips from shelf_01_bin_1.
"""

from go_store.msg import (
    Keypoint,
    ProductObservation,
    ProductObservationArray,
    ShelfEvent,
    Skeleton,
    SkeletonArray,
)
import numpy as np
import pytest
import rclpy
from rclpy.clock import ClockType
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from go_store_nodes.core.graph import NodeSpec
from go_store_nodes.core.product_id import (
    bin_window,
    Classification,
    Observation,
    sees_bin_front,
    visible_share,
)
from go_store_nodes.core.sim.render import Renderer
from go_store_nodes.core.sim.render_scene import bin_slot_count
from go_store_nodes.core.store import load_store_description
from go_store_nodes.nodes.person_locator import ns_to_stamp
from go_store_nodes.nodes.product_id import observations_msg, ProductIdNode
from go_store_nodes.nodes.runner import ros_arguments

T0 = 1_700_000_000 * 10**9
BIN, SKU = 'shelf_01_bin_1', 'crispo_paprika_150g'


class _FixedClock:
    def __init__(self, now_ns):
        self._now = now_ns

    def now(self):
        return Time(nanoseconds=self._now, clock_type=ClockType.ROS_TIME)


@pytest.fixture
def node(repo, store_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    spec = NodeSpec('go_store', 'product_id', 'product_id',
                    parameters={'store_description': str(store_path)})
    created = ProductIdNode(
        context=context, use_global_arguments=False,
        cli_args=ros_arguments(str(repo / 'config' / 'go_store.yaml'), spec, False))
    published = []
    created._publisher.publish = published.append
    created.published = published
    yield created
    created.destroy_node()
    rclpy.shutdown(context=context)


def camera_info(k, frame_id):
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = k.width, k.height
    msg.distortion_model = k.distortion_model
    msg.d = list(k.d)
    msg.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    return msg


def colour_image(rgb, stamp_ns, frame_id):
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = 'rgb8'
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def shelf_event(event_id, bin_id, event_type, start_ns, end_ns):
    msg = ShelfEvent()
    msg.header.stamp = ns_to_stamp(end_ns)
    msg.event_id, msg.bin_id, msg.event_type = event_id, bin_id, event_type
    msg.shelf_id = bin_id.rsplit('_bin', 1)[0]
    msg.start = ns_to_stamp(start_ns)
    msg.end = ns_to_stamp(end_ns)
    return msg


def test_node_publishes_one_array_per_event_with_all_cameras_and_drops_bad_input(node, store_path):
    store = load_store_description(store_path)
    bin_ = store.bins()[BIN]
    shelf = store.shelf(bin_.shelf_id)
    renderer = Renderer(store, image_scale=1.0, seed=3)
    others = [s for s in store.shelves if s is not shelf]
    cameras = [c for c in store.cameras
               if sees_bin_front(bin_, shelf.t_map_shelf, c.t_map_color)
               and bin_window(bin_, shelf.t_map_shelf, c.t_map_color, c.model.color, 0.03, 4)
               and visible_share(bin_, shelf, c.t_map_color, c.model.color, others) >= 0.3]
    assert len(cameras) >= 2
    full = {k: bin_slot_count(bin_.min_m, bin_.max_m, len(bin_.skus),
                              store.catalog[k].appearance) for k in bin_.skus}
    ids = [c.camera_id for c in cameras]
    before = renderer.render_frames(ids, [], T0, stock={BIN: full})
    after = renderer.render_frames(ids, [], T0 + 2 * 10**9,
                                   stock={BIN: dict(full, **{SKU: full[SKU] - 1})})
    lost = cameras[-1]                       # never in TF
    counters = node.identifier.counters
    for camera in cameras:
        node.on_info(camera_info(camera.model.color, camera.color_frame_id), camera.camera_id)
        if camera is not lost:
            node.tf_buffer.set_transform(store.map_frame, camera.color_frame_id,
                                         camera.t_map_color)
    # The cameras' clocks differ: each before frame has its own capture time.
    for k, (camera, (_, rgb)) in enumerate(zip(cameras, before, strict=True)):
        node.on_color(colour_image(rgb, T0 + k * 10**6, camera.color_frame_id),
                      camera.camera_id)
    assert counters['dropped_frame_no_transform'] == 1
    broken = colour_image(before[0][1], T0 + 10**8, cameras[0].color_frame_id)
    broken.data = bytes(10)
    node.on_color(broken, cameras[0].camera_id)
    assert counters['dropped_frame_malformed'] == 1
    node.on_event(shelf_event('ev_bad', 'no_such_bin', ShelfEvent.PICK, T0, T0 + 10**9))
    assert counters['dropped_event_unknown_bin'] == 1
    node.on_event(shelf_event('ev_unknown', BIN, ShelfEvent.UNKNOWN, T0, T0 + 10**9))
    assert node.diagnostics.counters['shelf_events_unknown_type'] == 1
    node.on_event(shelf_event('ev1', BIN, ShelfEvent.PICK, T0 + 5 * 10**8, T0 + 15 * 10**8))
    for camera, (_, rgb) in zip(cameras, after, strict=True):
        node.on_color(colour_image(rgb, T0 + 2 * 10**9, camera.color_frame_id),
                      camera.camera_id)
    node.get_clock = lambda: _FixedClock(T0 + 2 * 10**9)
    node.on_timer()
    assert not node.published            # waits for more after frames (or max_wait_s)
    node.get_clock = lambda: _FixedClock(T0 + 5 * 10**9)
    node.on_timer()
    # One array for the event, whatever the capture times: association resolves an
    # event once evidence of it is in, so it must not see the first camera's crop alone.
    assert len(node.published) == 1
    msg = node.published[0]
    assert isinstance(msg, ProductObservationArray)
    assert msg.header.frame_id == 'map'
    newest = T0 + (len(cameras) - 2) * 10**6      # the last camera is never in TF
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (newest // 10**9,
                                                                newest % 10**9)
    stamps = [o.header.stamp.nanosec for o in msg.observations]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    seen = {o.camera_id: o for o in msg.observations}
    assert set(seen) == {c.camera_id for c in cameras if c is not lost}
    for camera_id, item in seen.items():
        assert item.observation_id == f'ev1/{camera_id}'
        assert item.bin_id == BIN and item.hand == ProductObservation.HAND_NONE
        assert item.header.frame_id == store.camera(camera_id).color_frame_id
        assert item.category == 'chips' and 0.5 < item.category_probability <= 1.0
        assert item.skus[0].sku == SKU and item.skus[0].quantity == 1
        assert sum(s.likelihood for s in item.skus) <= 1.0 + 1e-6
    assert node.diagnostics.counters['observations'] == len(seen)


def _skeletons(stamp_ns, frame_id, hands):
    """Return a SkeletonArray: one skeleton per (track, right hand point, bin)."""
    msg = SkeletonArray()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    for track_id, point, bin_id in hands:
        skeleton = Skeleton()
        skeleton.track_id = track_id
        keypoint = Keypoint()
        keypoint.joint = Keypoint.RIGHT_HAND
        keypoint.position.x, keypoint.position.y, keypoint.position.z = point
        keypoint.confidence = 0.9
        skeleton.keypoints = [keypoint]
        skeleton.right_hand_bin_id = bin_id
        msg.skeletons.append(skeleton)
    return msg


def test_node_keeps_hands_from_skeletons_and_drops_bad_ones(node):
    node.get_clock = lambda: _FixedClock(T0 + 10**9)
    counters = node.identifier.counters
    node.on_skeletons(_skeletons(T0, 'map', [(1, (1.0, 1.0, 1.0), BIN),
                                             (2, (float('nan'), 1.0, 1.0), ''),
                                             (3, (1.0, 1.0, 1.0), 'no_such_bin')]))
    assert counters['skeletons'] == 1
    assert counters['dropped_skeletons_nan_joint'] == 1
    assert counters['dropped_skeletons_unknown_bin'] == 1
    node.on_skeletons(_skeletons(T0, 'not_in_tf', [(4, (1.0, 1.0, 1.0), BIN)]))
    assert counters['dropped_skeletons_no_transform'] == 1
    node.on_skeletons(_skeletons(T0 + 60 * 10**9, 'map', [(5, (1.0, 1.0, 1.0), BIN)]))
    assert counters['dropped_skeletons_future_stamp'] == 1
    assert node.identifier.hands.reaching(BIN, T0, T0 + 10**9) == [(1, 'right')]
    assert node.diagnostics.counters['skeleton_frames'] == 3


def test_hand_observations_carry_track_and_hand():
    classification = Classification('chips', 0.9, ((SKU, 0.8),))
    hand = Observation('ev1/cam_01/hand', 'ev1', BIN, 'cam_01', T0, classification,
                       (0, 0, 4, 4), 10, track_id=7, hand='left')
    msg = observations_msg([hand], 'map', {'cam_01': 'cam_01_color_optical_frame'})
    item = msg.observations[0]
    assert (item.observation_id, item.track_id, item.hand, item.bin_id) == \
        ('ev1/cam_01/hand', 7, ProductObservation.HAND_LEFT, BIN)
