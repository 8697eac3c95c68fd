"""Visualization node: message conversions in memory, and the node over real DDS.

The DDS test creates the node in this process (its own context, the shipped params file
and the reference store), publishes a known scene from a probe node (two people, one
tangled, a stick figure with a hand in a bin, a visit, a shelf event, bad input) and
checks the MarkerArrays it receives, waiting for answers rather than sleeping.
"""

import time

from go_store.msg import (
    Keypoint,
    ShelfEvent,
    Skeleton,
    SkeletonArray,
    Track,
    TrackArray,
    Visit,
)
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from visualization_msgs.msg import Marker as MarkerMsg
from visualization_msgs.msg import MarkerArray
import yaml

from go_store_nodes.core.graph import NodeSpec
from go_store_nodes.core.pose import JOINTS
from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.visualization import (
    Marker,
    MarkerAction,
    MarkerKind,
    MarkerSet,
    NAMESPACES,
    NS_BINS,
    NS_BINS_TOUCHED,
    NS_HANDS_IN_BINS,
    NS_JOINTS,
    NS_PEOPLE,
    NS_PEOPLE_LABELS,
    NS_SHELF_EVENTS,
    NS_SHELVES,
    NS_SKELETONS,
    NS_TRAILS,
    VisualizationConfig,
)
from go_store_nodes.nodes.runner import ros_arguments
from go_store_nodes.nodes.visualization import (
    marker_array_msg,
    MARKERS_QOS,
    RELIABLE_100,
    skeletons_from_msg,
    VISITS_QOS,
    VisualizationNode,
)
from go_store_nodes.ros.ledger_conversions import ns_to_stamp, stamp_to_ns
from go_store_nodes.ros.params import declare_parameters

TIMEOUT_S = 30.0
S = 10 ** 9
BIN = 'shelf_01_bin_2'


def test_markers_convert_to_messages():
    markers = MarkerSet(123 * S + 5, 'map', (
        Marker('', 0, action=MarkerAction.DELETE_ALL),
        Marker('people', 4, action=MarkerAction.DELETE),
        Marker('trails', 3, MarkerKind.LINE_STRIP, scale=(0.03, 0.0, 0.0),
               color=(0.1, 0.2, 0.3, 0.4), points=((1.0, 2.0, 0.0), (1.5, 2.0, 0.0)),
               lifetime_s=1.25),
        Marker('people_labels', 3, MarkerKind.TEXT, position=(1.0, 2.0, 2.0),
               orientation_xyzw=(0.0, 0.0, 0.7071, 0.7071), scale=(0, 0, 0.2), text='#7')))
    msg = marker_array_msg(markers)
    clear, gone, trail, label = msg.markers
    assert clear.action == MarkerMsg.DELETEALL
    assert (gone.action, gone.ns, gone.id) == (MarkerMsg.DELETE, 'people', 4)
    assert all(stamp_to_ns(m.header.stamp) == 123 * S + 5 and m.header.frame_id == 'map'
               for m in msg.markers)
    assert (trail.type, trail.action, trail.ns, trail.id) == (
        MarkerMsg.LINE_STRIP, MarkerMsg.ADD, 'trails', 3)
    assert [(p.x, p.y) for p in trail.points] == [(1.0, 2.0), (1.5, 2.0)]
    assert trail.color.a == pytest.approx(0.4) and trail.scale.x == pytest.approx(0.03)
    assert (trail.lifetime.sec, trail.lifetime.nanosec) == (1, 250_000_000)
    assert label.type == MarkerMsg.TEXT_VIEW_FACING and label.text == '#7'
    assert label.pose.orientation.w == pytest.approx(0.7071)


def test_the_rviz_config_shows_every_namespace(repo):
    config = yaml.safe_load((repo / 'rviz' / 'store.rviz').read_text())
    (display,) = [d for d in config['Visualization Manager']['Displays']
                  if d['Class'] == 'rviz_default_plugins/MarkerArray']
    assert display['Topic']['Value'] == '/visualization/markers'
    assert display['Topic']['Reliability Policy'] == 'Reliable'
    assert display['Topic']['Durability Policy'] == 'Volatile'
    assert set(display['Namespaces']) == set(NAMESPACES)
    # Shelves come from the URDF's RobotModel in rviz2; in Foxglove from the markers.
    assert [ns for ns, shown in display['Namespaces'].items() if not shown] == [NS_SHELVES]
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'map'


def test_keypoints_convert_by_joint_constant():
    msg = SkeletonArray()
    skeleton = Skeleton(track_id=4, right_hand_bin_id=BIN)
    for joint, confidence in ((Keypoint.HEAD, 1.0), (Keypoint.RIGHT_HAND, 0.8),
                              (Keypoint.LEFT_HAND, 0.0)):
        keypoint = Keypoint(joint=joint, confidence=confidence)
        keypoint.position.x = float(joint)
        skeleton.keypoints.append(keypoint)
    msg.skeletons.append(skeleton)
    (figure,) = skeletons_from_msg(msg)
    assert JOINTS[Keypoint.RIGHT_HAND] == 'right_hand' and JOINTS[Keypoint.PELVIS] == 'pelvis'
    assert figure.joints == {'head': (0.0, 0.0, 0.0), 'right_hand': (7.0, 0.0, 0.0)}
    assert figure.right_hand_bin_id == BIN and figure.left_hand_bin_id == ''


def test_the_shipped_parameters_make_the_default_config(repo):
    context = rclpy.Context()
    rclpy.init(context=context, args=[
        '--ros-args', '--params-file', str(repo / 'config' / 'go_store.yaml')])
    try:
        node = rclpy.create_node('visualization', context=context)
        from go_store_nodes.nodes.visualization import PARAMETERS
        values = declare_parameters(node, PARAMETERS)
        config = VisualizationConfig(**{i.name: values[i.name]
                                        for i in VisualizationConfig.fields()})
        assert config == VisualizationConfig(), 'the core defaults drifted from the params file'
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


# -- over DDS -----------------------------------------------------------------------------

@pytest.fixture
def graph(repo, store_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    spec = NodeSpec('go_store', 'visualization', 'visualization',
                    parameters={'store_description': str(store_path)})
    node = VisualizationNode(context=context, use_global_arguments=False,
                             cli_args=ros_arguments(str(repo / 'config' / 'go_store.yaml'),
                                                    spec, False))
    probe = rclpy.create_node('visualization_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)
    yield node, probe, executor
    executor.shutdown()
    probe.destroy_node()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _spin_until(executor, condition, what):
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        executor.spin_once(timeout_sec=0.05)


def _track(stamp, track_id, x, y, confidence=0.95, tangled_with=()):
    track = Track(track_id=track_id, height_m=1.7, confidence=confidence,
                  tangled=bool(tangled_with), tangled_with=list(tangled_with),
                  role=Track.ROLE_SHOPPER)
    track.header.stamp, track.header.frame_id = stamp, 'map'
    track.position.x, track.position.y = x, y
    return track


def _tracks(stamp_ns, tracks, frame_id='map'):
    msg = TrackArray(tracks=tracks)
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), frame_id
    return msg


@pytest.mark.slow
def test_node_draws_a_scene_keeps_ids_and_deletes_ended_tracks(graph, store_path):
    node, probe, executor = graph
    description = load_store_description(store_path)
    bin_ = description.bins()[BIN]
    hand = description.shelf(bin_.shelf_id).t_map_shelf.apply(bin_.center_m())
    received = []
    probe.create_subscription(MarkerArray, 'visualization/markers', received.append,
                              MARKERS_QOS)
    tracks_pub = probe.create_publisher(TrackArray, 'people/tracks', RELIABLE_100)
    skeletons_pub = probe.create_publisher(SkeletonArray, 'people/skeletons', RELIABLE_100)
    events_pub = probe.create_publisher(ShelfEvent, 'shelves/events', RELIABLE_100)
    visits_pub = probe.create_publisher(Visit, 'visits', VISITS_QOS)
    _spin_until(executor, lambda: all(p.get_subscription_count() > 0 for p in (
        tracks_pub, skeletons_pub, events_pub, visits_pub)) and probe.count_publishers(
        'visualization/markers') > 0, 'matching')
    _spin_until(executor, lambda: received, 'the store markers')
    assert received[0].markers[0].action == MarkerMsg.DELETEALL
    store = {(m.ns, m.id) for m in received[0].markers if m.action == MarkerMsg.ADD}
    assert {ns for ns, _ in store} >= {NS_SHELVES, NS_BINS}

    t0 = time.time_ns()
    x, y = float(hand[0]), float(hand[1]) - 0.6
    visit = Visit(visit_id='v1', account_id='acct_ann', track_ids=[1], gate_id='entry',
                  status=Visit.STARTED)
    visit.header.stamp, visit.header.frame_id = ns_to_stamp(t0 - S), 'map'
    visits_pub.publish(visit)

    def scene(stamp_ns, step, with_second=True):
        stamp = ns_to_stamp(stamp_ns)
        tracks = [_track(stamp, 1, x + 0.1 * step, y)]
        if with_second:
            tracks.append(_track(stamp, 2, x + 0.4, y, 0.5, tangled_with=(1,)))
        tracks_pub.publish(_tracks(stamp_ns, tracks))
        skeletons = SkeletonArray()
        skeletons.header.stamp, skeletons.header.frame_id = stamp, 'map'
        figure = Skeleton(track_id=1, right_hand_bin_id=BIN)
        figure.header = skeletons.header
        for joint, position in ((Keypoint.HEAD, (x, y, 1.6)),
                                (Keypoint.RIGHT_SHOULDER, (x + 0.2, y, 1.4)),
                                (Keypoint.RIGHT_HAND, tuple(float(v) for v in hand))):
            keypoint = Keypoint(joint=joint, confidence=1.0)
            keypoint.position.x, keypoint.position.y, keypoint.position.z = position
            figure.keypoints.append(keypoint)
        skeletons.skeletons.append(figure)
        skeletons_pub.publish(skeletons)

    def latest(namespace):
        """Return what a viewer shows of ``namespace`` after the arrays received so far."""
        shown = {}
        for msg in received:
            for m in msg.markers:
                if m.action == MarkerMsg.DELETEALL:
                    shown.clear()
                elif m.action == MarkerMsg.DELETE:
                    shown.pop((m.ns, m.id), None)
                else:
                    shown[(m.ns, m.id)] = m
        return {marker_id: m for (ns, marker_id), m in shown.items() if ns == namespace}

    scene(t0, 0)
    event = ShelfEvent(event_id=f'shelf_01/{BIN}/{t0}', shelf_id='shelf_01', bin_id=BIN,
                       event_type=ShelfEvent.PICK, delta_grams=-158.0)
    event.header.stamp, event.header.frame_id = ns_to_stamp(t0), 'shelf_01'
    events_pub.publish(event)
    wanted = (NS_PEOPLE, NS_PEOPLE_LABELS, NS_SKELETONS, NS_JOINTS, NS_HANDS_IN_BINS,
              NS_BINS_TOUCHED, NS_SHELF_EVENTS)
    _spin_until(executor, lambda: all(latest(ns) for ns in wanted)
                and len(latest(NS_PEOPLE)) == 2, 'the scene')
    id_1, id_2 = node.view.marker_id(1), node.view.marker_id(2)
    people = latest(NS_PEOPLE)
    assert set(people) == {id_1, id_2}
    assert people[id_1].type == MarkerMsg.CYLINDER and people[id_1].header.frame_id == 'map'
    assert people[id_2].color.r > 0.8 and people[id_2].color.b > 0.8, 'tangled look'
    labels = latest(NS_PEOPLE_LABELS)
    assert 'acct_ann' in labels[id_1].text and 'tangled #1' in labels[id_2].text
    assert list(latest(NS_HANDS_IN_BINS)) == [2 * id_1 + 1]
    assert 'pick -158 g' in next(iter(latest(NS_SHELF_EVENTS).values())).text
    assert all(stamp_to_ns(m.header.stamp) <= t0 for m in received[-1].markers)

    # Updates move the markers under the same ids.
    for step in range(1, 4):
        count = len(received)
        scene(t0 + step * S // 10, step)
        _spin_until(executor, lambda count=count, step=step: len(received) > count and
                    latest(NS_PEOPLE)[id_1].pose.position.x == pytest.approx(
                        x + 0.1 * step), f'update {step}')
        assert set(latest(NS_PEOPLE)) == {id_1, id_2}
        assert set(latest(NS_SKELETONS)) == {id_1}
    assert len(latest(NS_TRAILS)[id_1].points) == 4
    assert stamp_to_ns(received[-1].markers[0].header.stamp) == t0 + 3 * S // 10
    assert latest(NS_PEOPLE)[id_2].pose.position.x == pytest.approx(x + 0.4)

    # Track 2 ends: its markers are deleted once; track 1's carry a lifetime.
    scene(t0 + 4 * S // 10, 4, with_second=False)

    def deleted_2():
        return any((m.ns, m.id, m.action) == (NS_PEOPLE, id_2, MarkerMsg.DELETE)
                   for msg in received for m in msg.markers)
    _spin_until(executor, deleted_2, 'the DELETE of the ended track')
    last = next(msg for msg in reversed(received)
                if any(m.action == MarkerMsg.DELETE for m in msg.markers))
    deletes = {(m.ns, m.id) for m in last.markers if m.action == MarkerMsg.DELETE}
    assert {(NS_PEOPLE, id_2), (NS_PEOPLE_LABELS, id_2)} <= deletes    # it stood: no trail
    alive = latest(NS_PEOPLE)
    assert set(alive) == {id_1}
    assert alive[id_1].lifetime.sec + alive[id_1].lifetime.nanosec * 1e-9 == \
        pytest.approx(1.0)
    assert node.view.marker_id(1) == id_1 and node.view.marker_id(2) is None

    # Bad input is counted and dropped; the node keeps publishing.
    counters = node.diagnostics.counters
    tracks_pub.publish(_tracks(time.time_ns() + 3600 * S, []))
    tracks_pub.publish(_tracks(t0 + 5 * S // 10, [], frame_id='odom'))
    tracks_pub.publish(_tracks(t0, []))
    nan = _tracks(t0 + 6 * S // 10, [_track(ns_to_stamp(t0), 1, float('nan'), y)])
    tracks_pub.publish(nan)
    bad_event = ShelfEvent(event_id='e-bad', shelf_id='shelf_01', bin_id='shelf_01_bin_99',
                           event_type=ShelfEvent.PICK, delta_grams=-5.0)
    bad_event.header.stamp = ns_to_stamp(t0)
    events_pub.publish(bad_event)
    expected = {'dropped_tracks_future_stamp': 1, 'dropped_tracks_wrong_frame': 1,
                'dropped_tracks_out_of_order': 1, 'dropped_items_track_not_finite': 1,
                'dropped_shelf_events_unknown_bin': 1}
    _spin_until(executor, lambda: all(counters.get(k) == v for k, v in expected.items()),
                f'the drop counters {expected}')
    # The NaN update leaves no live track: the viewer is told to drop the person.
    _spin_until(executor, lambda: id_1 not in latest(NS_PEOPLE),
                'track 1 deleted after its NaN update')
