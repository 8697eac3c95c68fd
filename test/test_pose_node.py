"""Pose node: message conversions at the edge, and the node on in-memory messages.

The node is created in this process with the shipped params file and driven by calling
its callbacks with messages built here (nothing spins): frames before camera_info or TF
(a camera missing from TF), all-zero frames and bad track arrays are dropped and
counted; a tracked person at a shelf front is published as a Skeleton.
"""

import math

from go_store.msg import Keypoint, SkeletonArray, Track, TrackArray
from locator_scenes import person, render_depth
import numpy as np
import pytest
import rclpy
from rclpy.clock import ClockType
from rclpy.time import Time
from test_person_locator_node import camera_info, depth_image
import yaml

from go_store_nodes.core.graph import NodeSpec
from go_store_nodes.core.locator.camera import in_view
from go_store_nodes.core.pose import HandInBin, Joint, JOINTS, Skeleton, SkeletonSet
from go_store_nodes.core.store import load_store_description
from go_store_nodes.nodes.person_locator import ns_to_stamp
from go_store_nodes.nodes.pose import DEPTH_SETTINGS, PoseNode, skeleton_array_msg
from go_store_nodes.nodes.runner import ros_arguments

T0 = 1_700_000_000 * 10**9
PERIOD = 66_666_667


def test_skeleton_array_carries_stamp_frame_seen_joints_and_bins():
    joints = tuple(Joint(name, (float(i), 2.0, 1.0), 0.0 if name == 'left_hand' else 0.8)
                   for i, name in enumerate(JOINTS))
    skeleton = Skeleton(42, 'shelf_01', joints,
                        {'right': HandInBin('shelf_01_bin_2', 'shelf_01', T0)})
    msg = skeleton_array_msg(SkeletonSet(T0 + 7, ('cam_01',), (skeleton,), T0), 'map')
    assert isinstance(msg, SkeletonArray)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 7)
    assert msg.header.frame_id == 'map'
    (item,) = msg.skeletons
    assert item.header == msg.header and item.track_id == 42
    assert item.right_hand_bin_id == 'shelf_01_bin_2' and item.left_hand_bin_id == ''
    joints_sent = {k.joint: k for k in item.keypoints}
    assert Keypoint.LEFT_HAND not in joints_sent                 # not seen: left out
    assert joints_sent[Keypoint.HEAD].position.x == 0.0
    assert joints_sent[Keypoint.PELVIS].position.x == 8.0
    assert joints_sent[Keypoint.RIGHT_HAND].confidence == pytest.approx(0.8)
    assert skeleton_array_msg(SkeletonSet(T0, (), (), None), 'map').skeletons == []


def test_pose_section_repeats_the_locator_depth_settings(repo):
    config = yaml.safe_load((repo / 'config' / 'go_store.yaml').read_text())
    locator = config['person_locator']['ros__parameters']
    pose = config['pose']['ros__parameters']
    assert {name: pose[name] for name in DEPTH_SETTINGS} == \
        {name: locator[name] for name in DEPTH_SETTINGS}


@pytest.fixture
def node(repo, store_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    spec = NodeSpec('go_store', 'pose', 'pose',
                    parameters={'store_description': str(store_path)})
    created = PoseNode(context=context, use_global_arguments=False,
                       cli_args=ros_arguments(str(repo / 'config' / 'go_store.yaml'), spec,
                                              False))
    published = []
    created._publisher.publish = published.append
    created.published = published
    yield created
    created.destroy_node()
    rclpy.shutdown(context=context)


class _FixedClock:
    def __init__(self, now_ns):
        self._now = now_ns

    def now(self):
        return Time(nanoseconds=self._now, clock_type=ClockType.ROS_TIME)


def tracks_msg(stamp_ns, positions, frame_id='map'):
    msg = TrackArray()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    for track_id, (x, y) in positions.items():
        track = Track()
        track.header = msg.header
        track.track_id = track_id
        track.position.x, track.position.y = x, y
        msg.tracks.append(track)
    return msg


def test_node_drops_bad_input_and_publishes_a_skeleton(node, store_path):
    description = load_store_description(store_path)
    shelf = description.shelves[0]
    # A person 0.3 m in front of the middle of the first shelf, and a camera seeing them.
    spot = shelf.t_map_shelf.apply([0.0, -0.3, 0.0])
    x, y = float(spot[0]), float(spot[1])
    camera = next(c for c in description.cameras
                  if in_view(np.array([[x, y, 1.9], [x, y, 0.5]]), c.model.depth,
                             c.t_map_depth).all())
    cam, k, pose = camera.camera_id, camera.model.depth, camera.t_map_depth
    counters = node.diagnostics.counters

    def send(index, scene=(), **changes):
        stamp = T0 + index * PERIOD
        msg = depth_image(render_depth(k, pose, scene, seed=index), stamp,
                          camera.depth_frame_id)
        for key, value in changes.items():
            setattr(msg, key, value)
        node.get_clock = lambda: _FixedClock(stamp + 5_000_000)
        node.on_depth(msg, cam)

    send(0)
    assert counters['dropped_depth_no_camera_info'] == 1
    node.on_info(camera_info(k, camera.depth_frame_id), cam)
    send(1)
    assert counters['dropped_depth_no_transform'] == 1           # camera missing from TF
    node.tf_buffer.set_transform(description.map_frame, camera.depth_frame_id, pose)
    send(2, data=bytes(len(depth_image(np.zeros((k.height, k.width)), 0, '').data)))
    assert counters['dropped_depth_no_depth'] == 1
    for index in range(3, 8):
        send(index)
        node.on_tracks(tracks_msg(T0 + index * PERIOD, {}))
    for index in range(8, 12):
        send(index, person(x, y, 1.75))
        node.on_tracks(tracks_msg(T0 + index * PERIOD, {5: (x, y)}))
    node.on_tracks(tracks_msg(T0 + 11 * PERIOD, {5: (x, y)}))
    assert counters['dropped_tracks_out_of_order'] == 1
    node.on_tracks(tracks_msg(T0 + 60 * 10**9, {5: (x, y)}))
    assert counters['dropped_tracks_future_stamp'] == 1
    node.on_tracks(tracks_msg(T0 + 12 * PERIOD, {5: (x, y)}, frame_id='odom'))
    assert counters['dropped_tracks_wrong_frame'] == 1
    node.get_clock = lambda: _FixedClock(T0 + 20 * PERIOD)
    node.on_timer()
    assert node.published, 'skeleton arrays are published'
    last = node.published[-1]
    assert last.header.frame_id == description.map_frame
    (skeleton,) = last.skeletons
    assert skeleton.track_id == 5
    head = next(p for p in skeleton.keypoints if p.joint == Keypoint.HEAD)
    assert math.hypot(head.position.x - x, head.position.y - y) < 0.15
    assert head.position.z == pytest.approx(1.65, abs=0.08)
    assert skeleton.left_hand_bin_id == '' and skeleton.right_hand_bin_id == ''
    assert counters['frame_sets'] >= 4 and counters['skeletons'] >= 1


def test_node_drops_bad_load_cell_batches_and_takes_good_ones(node, store_path):
    from go_store.msg import LoadCellBatch
    shelf = load_store_description(store_path).shelves[0]
    bin_ids = [b.bin_id for b in shelf.bins]
    counters = node.diagnostics.counters
    node.get_clock = lambda: _FixedClock(T0)

    def batch(stamp_ns, count=12, values=None, shelf_id=shelf.shelf_id):
        msg = LoadCellBatch(shelf_id=shelf_id, bin_ids=bin_ids,
                            sample_period_ns=16_666_667, sample_count=count)
        msg.header.stamp = ns_to_stamp(stamp_ns)
        msg.grams = values if values is not None else [1000.0] * (count * len(bin_ids))
        return msg

    node.on_weights(batch(T0, shelf_id='shelf_elsewhere'), shelf.shelf_id)
    assert counters['dropped_weights_wrong_topic'] == 1
    node.on_weights(batch(T0, values=[1000.0] * 5), shelf.shelf_id)
    assert counters['dropped_weights_wrong_length'] == 1
    node.on_weights(batch(T0 + 60 * 10**9), shelf.shelf_id)
    assert counters['dropped_weights_future_stamp'] == 1
    assert not node.estimator._weighed_ns
    node.on_weights(batch(T0 - 10**9), shelf.shelf_id)
    assert counters['weight_batches'] == 4
    assert node.estimator._weighed_ns[shelf.shelf_id] == T0 - 10**9 + 11 * 16_666_667
