"""Tracker node: message conversions in memory, and the node over real DDS.

The DDS test runs the node in its own process with the shipped params file and feeds it
detections from a probe; it waits for answers, no fixed sleeps.
"""

import math
import os
import signal
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from go_store.msg import PersonDetection, PersonDetectionArray, Track, TrackArray, Visit
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header

from go_store_nodes.core.tracker import Track as CoreTrack
from go_store_nodes.core.tracker import TrackerConfig
from go_store_nodes.nodes.tracker import RELIABLE_QOS, tracker_config, VISITS_QOS
from go_store_nodes.ros.params import declare_parameters
from go_store_nodes.ros.tracker_conversions import (
    core_detections,
    ns_to_stamp,
    parse_signature,
    stamp_to_ns,
    track_array_msg,
)

T0 = 1_700_000_000 * 10 ** 9
TIMEOUT_S = 30.0


def detection(x, y, height=1.7, appearance=(0.6, 0.8), confidence=0.9):
    return PersonDetection(
        header=Header(frame_id='map'), position=Point(x=x, y=y, z=0.0), height_m=height,
        blob_area_m2=0.2, confidence=confidence, appearance=list(appearance),
        camera_ids=['cam_01'])


def array(stamp_ns, *detections, frame_id='map'):
    return PersonDetectionArray(header=Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id),
                                detections=list(detections))


def test_detections_convert_to_the_core():
    msg = array(T0, detection(1.0, 2.0), detection(float('nan'), 0.0, appearance=()))
    core = core_detections(msg)
    assert core[0].position == (1.0, 2.0) and core[0].height_m == pytest.approx(1.7)
    assert core[0].appearance == pytest.approx((0.6, 0.8))
    assert math.isnan(core[1].position[0]) and core[1].appearance == ()
    assert stamp_to_ns(msg.header.stamp) == T0


def test_tracks_convert_to_messages():
    track = CoreTrack(
        track_id=7, position=np.array([1.0, 2.0]), velocity=np.array([0.5, -0.1]),
        position_covariance=np.array([[0.04, 0.01], [0.01, 0.09]]), height_m=1.8,
        confidence=0.5, tangled=True, tangled_with=(8,), role='associate',
        last_seen_ns=T0 - 10, born_ns=T0 - 10 ** 9, unseen_s=0.0, identity_confirmed=True,
        visit_id='v1', account_id='acct')
    header = Header(stamp=ns_to_stamp(T0), frame_id='map')
    msg = track_array_msg([track], header, 'map')
    assert stamp_to_ns(msg.header.stamp) == T0 and msg.header.frame_id == 'map'
    out = msg.tracks[0]
    assert out.track_id == 7 and stamp_to_ns(out.header.stamp) == T0 - 10
    assert (out.position.x, out.position.y, out.velocity.x) == (1.0, 2.0, 0.5)
    assert list(out.position_covariance) == pytest.approx(
        [0.04, 0.01, 0.0, 0.01, 0.09, 0.0, 0.0, 0.0, 0.0])
    assert out.tangled and list(out.tangled_with) == [8]
    assert out.role == Track.ROLE_ASSOCIATE and out.confidence == pytest.approx(0.5)
    assert (out.visit_id, out.account_id) == ('v1', 'acct')


def test_the_uniform_signature_parameter_is_parsed_and_normalised():
    assert parse_signature('') == ()
    assert parse_signature('3, 4') == pytest.approx((0.6, 0.8))
    with pytest.raises(ValueError, match='comma-separated'):
        parse_signature('red')
    with pytest.raises(ValueError, match='not all zero'):
        parse_signature('0, 0')


def test_the_shipped_parameters_make_a_valid_config(repo):
    context = rclpy.Context()
    rclpy.init(context=context, args=[
        '--ros-args', '--params-file', str(repo / 'config' / 'go_store.yaml')])
    try:
        node = rclpy.create_node('tracker', context=context)
        from go_store_nodes.nodes.tracker import PARAMETERS
        config = tracker_config(declare_parameters(node, PARAMETERS))
        assert config.mode == 'floor' and config.max_lost_s >= 5.0
        assert config == TrackerConfig(), 'the core defaults drifted from the params file'
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


# -- over DDS -----------------------------------------------------------------------------

@pytest.fixture
def probe():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('tracker_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _spin_until(executor, condition, what, process):
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert process.poll() is None, f'the tracker died while waiting for {what}'
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        executor.spin_once(timeout_sec=0.05)


@pytest.mark.slow
def test_node_tracks_detections_and_survives_bad_input(repo, probe, tmp_path):
    node, executor = probe
    log = tmp_path / 'tracker.log'
    with open(log, 'w') as out:
        process = subprocess.Popen(
            [sys.executable, '-m', 'go_store_nodes.nodes.tracker', '--ros-args',
             '--params-file', str(repo / 'config' / 'go_store.yaml'),
             '-p', 'diagnostics_period_s:=0.2', '-p', 'first_track_id:=1'],
            cwd=repo, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        received, diagnostics = [], []
        node.create_subscription(TrackArray, 'people/tracks', received.append, RELIABLE_QOS)
        node.create_subscription(DiagnosticArray, 'diagnostics', diagnostics.append, 10)
        publisher = node.create_publisher(PersonDetectionArray, 'people/detections',
                                          RELIABLE_QOS)
        visits = node.create_publisher(Visit, 'visits', VISITS_QOS)
        _spin_until(executor, lambda: publisher.get_subscription_count() > 0
                    and node.count_publishers('people/tracks') > 0, 'matching', process)
        # A shopper walks out of the entry zone (x 0-1.2, y 0-0.8) at 1 m/s, 15 Hz.
        stamps = [T0 + k * 66_666_667 for k in range(12)]
        for k, stamp_ns in enumerate(stamps):
            publisher.publish(array(stamp_ns, detection(0.6, 0.4 + k / 15.0)))
            _spin_until(executor, lambda k=k: len(received) > k, f'tracks {k}', process)
        assert [stamp_to_ns(m.header.stamp) for m in received] == stamps
        # Born at the second detection (birth_min_hits 2 in config/go_store.yaml).
        assert [len(m.tracks) for m in received[:4]] == [0, 1, 1, 1]
        assert {t.track_id for m in received[1:] for t in m.tracks} == {1}
        last = received[-1].tracks[0]
        assert last.role == Track.ROLE_SHOPPER and last.position.y == pytest.approx(1.13,
                                                                                     abs=0.05)
        def counters():
            for msg in reversed(diagnostics):
                for status in msg.status:
                    if status.name == '/tracker':
                        return {kv.key: kv.value for kv in status.values}
            return {}
        visits.publish(Visit(header=Header(stamp=ns_to_stamp(stamps[-1])), visit_id='v1',
                             account_id='acct_1', track_ids=[1], gate_id='gate_entry',
                             status=Visit.STARTED))
        _spin_until(executor, lambda: counters().get('visit_links') == '1', 'visit link',
                    process)
        # Bad input: stale stamp, another frame, a NaN position; none is answered...
        publisher.publish(array(stamps[3], detection(0.6, 1.2)))
        publisher.publish(array(stamps[-1] + 10 ** 8, detection(0.6, 1.2), frame_id='odom'))
        # ...except the NaN detection's array (the good detection in it still counts).
        good_stamp = stamps[-1] + 2 * 10 ** 8
        publisher.publish(array(good_stamp, detection(float('nan'), 1.0),
                                detection(0.6, 1.2)))
        _spin_until(executor, lambda: stamp_to_ns(received[-1].header.stamp) == good_stamp,
                    'the good array after the bad ones', process)
        assert len(received) == len(stamps) + 1
        assert received[-1].tracks[0].visit_id == 'v1'
        _spin_until(executor, lambda: counters().get('core_dropped_bad_position') == '1',
                    'diagnostics counters', process)
        values = counters()
        assert values['core_dropped_stale_stamp'] == '1'
        assert values['dropped_wrong_frame'] == '1'
        assert values['visit_links'] == '1'
        assert process.poll() is None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = log.read_text()
    assert 'dropped_bad_position' in output and 'odom' in output, output
