"""Person locator node: message conversions at the edge, and the node on in-memory messages.

The node is created in this process with the shipped params file and driven by calling
its callbacks with messages built here (nothing spins, no DDS traffic is needed):
frames before TF or camera_info, wrong encodings, all-zero frames and future stamps are
dropped and counted, a person is published as a PersonDetection.
"""

import math

from go_store.msg import PersonDetectionArray
from locator_scenes import camera_pose, intrinsics, person, render_depth
import numpy as np
import pytest
import rclpy
from rclpy.clock import ClockType
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from go_store_nodes.core.graph import NodeSpec
from go_store_nodes.core.locator import (
    APPEARANCE_LENGTH,
    Detection,
    FrameRejectedError,
    LocatedSet,
)
from go_store_nodes.core.store import load_store_description
from go_store_nodes.nodes.person_locator import (
    depth_frame_from_msg,
    detections_msg,
    intrinsics_from_camera_info,
    ns_to_stamp,
    PersonLocatorNode,
)
from go_store_nodes.nodes.runner import ros_arguments

T0 = 1_700_000_000 * 10**9
PERIOD = 66_666_667


def camera_info(k, frame_id='cam_depth_optical_frame'):
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = k.width, k.height
    msg.distortion_model = k.distortion_model
    msg.d = list(k.d)
    msg.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    return msg


def depth_image(depth_m, stamp_ns, frame_id):
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = depth_m.shape
    msg.encoding = '16UC1'
    msg.step = msg.width * 2
    msg.data = np.rint(depth_m * 1000.0).astype('<u2').tobytes()
    return msg


def test_camera_info_and_depth_image_convert_to_core_frames():
    k = intrinsics()
    converted = intrinsics_from_camera_info(camera_info(k))
    assert converted == k
    depth = np.full((k.height, k.width), 2.5, np.float32)
    pose = camera_pose(1.0, 1.0, 3.0)
    frame = depth_frame_from_msg(depth_image(depth, T0 + 5, 'f'), 'cam', converted, pose, T0)
    assert frame.stamp_ns == T0 + 5 and frame.received_ns == T0
    assert frame.depth_m.shape == (k.height, k.width)
    assert float(frame.depth_m[3, 4]) == pytest.approx(2.5)
    small = camera_info(k)
    small.width = k.width // 2
    with pytest.raises(FrameRejectedError) as error:
        depth_frame_from_msg(depth_image(depth, T0, 'f'), 'cam',
                             intrinsics_from_camera_info(small), pose, None)
    assert error.value.reason == 'wrong_size'


def test_detections_message_carries_stamp_frame_and_fields():
    detection = Detection(1.5, 2.25, 1.72, 0.2, 0.9, np.eye(3) * 0.01, ('cam_a', 'cam_b'),
                          (0.6, 0.8))
    msg = detections_msg(LocatedSet(T0 + 123, ('cam_a', 'cam_b'), (detection,)), 'map')
    assert isinstance(msg, PersonDetectionArray)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 123)
    assert msg.header.frame_id == 'map'
    (item,) = msg.detections
    assert item.header.stamp == msg.header.stamp and item.header.frame_id == 'map'
    assert (item.position.x, item.position.y, item.position.z) == (1.5, 2.25, 0.0)
    assert list(item.position_covariance) == pytest.approx(list((np.eye(3) * 0.01).flat))
    assert item.height_m == pytest.approx(1.72)
    assert item.blob_area_m2 == pytest.approx(0.2)
    assert item.confidence == pytest.approx(0.9)
    assert list(item.appearance) == pytest.approx([0.6, 0.8])
    assert list(item.camera_ids) == ['cam_a', 'cam_b']
    empty = detections_msg(LocatedSet(T0, (), ()), 'map')
    assert empty.detections == []


@pytest.fixture
def node(repo, store_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    spec = NodeSpec('go_store', 'person_locator', 'person_locator',
                    parameters={'store_description': str(store_path)})
    created = PersonLocatorNode(
        context=context, use_global_arguments=False,
        cli_args=ros_arguments(str(repo / 'config' / 'go_store.yaml'), spec, False))
    published = []
    created._publisher.publish = published.append
    created.published = published
    yield created
    created.destroy_node()
    rclpy.shutdown(context=context)


def _set_clock(node, now_ns):
    node.get_clock = lambda: _FixedClock(now_ns)


class _FixedClock:
    def __init__(self, now_ns):
        self._now = now_ns

    def now(self):
        return Time(nanoseconds=self._now, clock_type=ClockType.ROS_TIME)


def test_node_drops_bad_frames_and_publishes_a_person(node, store_path):
    description = load_store_description(store_path)
    camera = description.cameras[0]
    cam = camera.camera_id
    k = camera.model.depth
    pose = camera.t_map_depth
    # Where the camera's optical axis meets the floor: in view whatever the mounting.
    axis = np.asarray(pose.rotation)[:, 2]
    ground = np.asarray(pose.translation) - axis * pose.translation[2] / axis[2]
    x, y = float(ground[0]) - 0.3, float(ground[1]) + 0.2
    counters = node.diagnostics.counters

    def send(k_index, scene=(), **changes):
        stamp = T0 + k_index * PERIOD
        msg = depth_image(render_depth(k, pose, scene, seed=k_index), stamp,
                          camera.depth_frame_id)
        for key, value in changes.items():
            setattr(msg, key, value)
        _set_clock(node, stamp + 5_000_000)
        node.on_depth(msg, cam)

    send(0)
    assert counters['dropped_depth_no_camera_info'] == 1
    node.on_info(camera_info(k, camera.depth_frame_id), cam, node._depth_info)
    send(1)
    assert counters['dropped_depth_no_transform'] == 1
    node.tf_buffer.set_transform(description.map_frame, camera.depth_frame_id, pose)
    send(2, encoding='rgb8')
    assert counters['dropped_depth_wrong_encoding'] == 1
    send(3, data=bytes(len(depth_image(np.zeros((k.height, k.width)), 0, '').data)))
    assert counters['dropped_depth_no_depth'] == 1
    for index in range(4, 9):
        send(index)
    _set_clock(node, T0 + 9 * PERIOD)
    future = depth_image(render_depth(k, pose, (), seed=9), T0 + 9 * PERIOD + 3 * 10**9,
                         camera.depth_frame_id)
    node.on_depth(future, cam)
    assert counters['dropped_depth_future_stamp'] == 1
    # Colour: bgr8 frames of the colour stream, through their own camera_info and TF.
    colour_k = camera.model.color
    node.on_info(camera_info(colour_k, camera.color_frame_id), cam, node._color_info)
    node.tf_buffer.set_transform(description.map_frame, camera.color_frame_id,
                                 camera.t_map_color)
    for index in range(10, 13):
        colour = Image()
        colour.header.stamp = ns_to_stamp(T0 + index * PERIOD)
        colour.header.frame_id = camera.color_frame_id
        colour.height, colour.width, colour.encoding = colour_k.height, colour_k.width, 'bgr8'
        colour.step = colour_k.width * 3
        colour.data = np.full((colour_k.height, colour_k.width, 3), (40, 40, 200),
                              np.uint8).tobytes()
        node.on_color(colour, cam)
        send(index, person(x + 0.3, y - 0.2, 1.75))
    assert not any(key.startswith('dropped_color') for key in counters)
    node.on_timer()
    assert node.published, 'frame sets are published'
    last = node.published[-1]
    assert last.header.frame_id == description.map_frame
    (seen,) = last.detections
    assert math.hypot(seen.position.x - (x + 0.3), seen.position.y - (y - 0.2)) < 0.15
    assert seen.height_m == pytest.approx(1.75, abs=0.06)
    # Its position covariance: symmetric, positive on the floor, a few cm of std.
    covariance = np.array(seen.position_covariance).reshape(3, 3)
    assert np.allclose(covariance, covariance.T)
    assert np.all(np.linalg.eigvalsh(covariance[:2, :2]) > 0)
    assert 0.01 < math.sqrt(covariance[0, 0]) < 0.15
    assert list(seen.camera_ids) == [cam]
    assert len(seen.appearance) == APPEARANCE_LENGTH
    # Every colour pixel is red once bgr8 is read as such: hue bin 0, saturated half.
    assert seen.appearance[1] == pytest.approx(1.0)
    health = node.locator.health.cameras[cam]
    assert health.rejected == {'no_camera_info': 1, 'no_transform': 1, 'wrong_encoding': 1,
                               'no_depth': 1, 'future_stamp': 1}
    # Every other camera is silent: flagged as outage in diagnostics, the node goes on.
    _set_clock(node, T0 + 13 * PERIOD + 10**9)
    node.on_timer()
    assert node.diagnostics.values[f'{description.cameras[-1].camera_id}.state'] == 'outage'
    assert node.diagnostics.values[f'{cam}.state'] == 'outage'
    assert 'camera outage' in node.diagnostics.message
