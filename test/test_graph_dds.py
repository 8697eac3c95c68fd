"""Graph test over real DDS: the calibration node in its own process, a plain rclpy probe here.

The probe waits for the publisher to match and for the latched messages to arrive;
no fixed sleeps.
"""

import os
import signal
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from go_store.msg import CalibrationStatus
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from tf2_msgs.msg import TFMessage
import yaml

from go_store_nodes.core.store import load_store_description, static_transforms
from go_store_nodes.ros.tf import STATIC_TF_QOS, transform_from_msg

pytestmark = pytest.mark.slow
TIMEOUT_S = 30.0


def _start_node(repo, *ros_args, module='go_store_nodes.nodes.calibration'):
    return subprocess.Popen(
        [sys.executable, '-m', module, '--ros-args', *ros_args],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ))


def _stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture
def probe():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('test_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _spin_until(executor, condition, what):
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        executor.spin_once(timeout_sec=0.1)


def test_calibration_node_publishes_every_transform_and_its_status(repo, store_path, probe):
    node, executor = probe
    received = {}
    status = []
    diagnostics = []
    node.create_subscription(
        TFMessage, '/tf_static',
        lambda msg: received.update({t.child_frame_id: t for t in msg.transforms}),
        STATIC_TF_QOS)
    node.create_subscription(CalibrationStatus, 'calibration/status', status.append,
                             STATIC_TF_QOS)
    node.create_subscription(DiagnosticArray, 'diagnostics', diagnostics.append, 10)
    process = _start_node(repo, '--params-file', str(repo / 'config' / 'go_store.yaml'),
                          '-p', f'store_description:={store_path}')
    try:
        _spin_until(executor, lambda: node.count_publishers('/tf_static') > 0,
                    'the /tf_static publisher to match')
        expected = static_transforms(load_store_description(store_path))
        _spin_until(executor, lambda: len(received) >= len(expected) and status,
                    'every transform and the calibration status')
        for parent, child, transform in expected:
            message = received[child]
            assert message.header.frame_id == parent
            assert message.header.stamp.sec > 0, 'header not stamped'
            assert transform_from_msg(message).is_close(transform, 1e-9, 1e-9), child
        store = load_store_description(store_path)
        assert len(status[0].cameras) == len(store.cameras)
        assert {c.source for c in status[0].cameras} == {'store_description'}
        assert status[0].cameras[0].depth_frame_id == store.cameras[0].depth_frame_id
        _spin_until(executor, lambda: diagnostics, 'diagnostics')
        assert diagnostics[0].status[0].name == '/calibration'
        assert process.poll() is None, 'node died'
    finally:
        code = _stop(process)
        output = process.stdout.read()
    assert code in (0, -signal.SIGINT), output


def test_invalid_description_is_refused_with_camera_and_field(repo, store_path, tmp_path):
    data = yaml.safe_load(store_path.read_text())
    data['cameras'][0]['pose']['rotation'] = {
        'matrix': [[1.0, 0.3, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]}
    first = data['cameras'][0]['id']
    broken = tmp_path / 'store.yaml'
    broken.write_text(yaml.safe_dump(data, sort_keys=False))
    process = _start_node(repo, '--params-file', str(repo / 'config' / 'go_store.yaml'),
                          '-p', f'store_description:={broken}')
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 1, output
    assert f'cameras[0] ({first}).pose.rotation: matrix: rotation matrix is not orthonormal' \
        in output


def test_missing_parameter_names_it(repo):
    process = _start_node(repo)
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 1, output
    assert "parameter 'store_description'" in output and 'config/go_store.yaml' in output


def test_go_store_inspect_shows_live_frames_and_topics(repo, store_path):
    store = load_store_description(store_path)
    result = subprocess.run([sys.executable, '-m', 'go_store_nodes.cli', 'inspect',
                             '--duration', '3'], cwd=repo, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    frames = 1 + len(static_transforms(store))  # map and every child frame
    assert f'TF frames received on /tf_static: {frames}' in result.stdout
    assert store.shelves[-1].frame_id in result.stdout
    assert store.cameras[-1].color_frame_id in result.stdout
    assert '/calibration/status' in result.stdout
    assert f'calibration/status: {len(store.cameras)} cameras' in result.stdout


def test_go_store_run_in_processes_starts_and_stops(repo, store_path):
    transforms = len(static_transforms(load_store_description(store_path)))
    process = subprocess.Popen([sys.executable, '-m', 'go_store_nodes.cli', 'run',
                                '--processes', '--duration', '20'], cwd=repo,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert f'published {transforms} static transforms' in output
