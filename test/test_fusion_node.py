"""Shelf fusion node: message conversions in memory, and the node over real DDS.

The DDS test runs the node in its own process with the shipped params file and the
reference store, feeds one shelf's load-cell batches from a probe (a pick, a dead cell,
bad batches) and waits for answers, no fixed sleeps.
"""

import math
import os
import signal
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from go_store.msg import LoadCellBatch, ShelfEvent
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header

from go_store_nodes.core.fusion import FusionConfig, FusionInputError, SkuCandidate
from go_store_nodes.core.fusion import ShelfEvent as CoreShelfEvent
from go_store_nodes.nodes.shelf_fusion import (
    EVENTS_QOS,
    fusion_config,
    ns_to_time,
    samples_from_msg,
    shelf_event_msg,
    time_to_ns,
    WEIGHTS_QOS,
)
from go_store_nodes.ros.params import declare_parameters

T0 = 1_700_000_000 * 10 ** 9
PERIOD_NS = 16_666_667
TIMEOUT_S = 30.0
SHELF = 'shelf_01'
BINS = ('shelf_01_bin_1', 'shelf_01_bin_2', 'shelf_01_bin_3', 'shelf_01_bin_4')


def batch_msg(first_ns, grams, shelf=SHELF, bins=BINS, count=None):
    grams = np.asarray(grams, dtype=np.float32)
    return LoadCellBatch(
        header=Header(stamp=ns_to_time(first_ns), frame_id=shelf), shelf_id=shelf,
        bin_ids=list(bins), sample_period_ns=PERIOD_NS,
        sample_count=count if count is not None else grams.shape[0],
        grams=grams.reshape(-1).tolist())


def test_batches_convert_to_the_core():
    grams = np.arange(24, dtype=float).reshape(6, 4)
    grams[2, 1] = math.nan
    samples = samples_from_msg(batch_msg(T0, grams))
    assert samples.shelf_id == SHELF and samples.bin_ids == BINS
    assert samples.first_stamp_ns == T0 and samples.sample_period_ns == PERIOD_NS
    assert samples.grams.shape == (6, 4) and samples.grams[1, 3] == 7.0
    assert math.isnan(samples.grams[2, 1])
    assert samples.last_stamp_ns == T0 + 5 * PERIOD_NS
    with pytest.raises(FusionInputError, match='23 values for 6 samples'):
        samples_from_msg(batch_msg(T0, grams.reshape(-1)[:-1], count=6))


def test_events_convert_to_messages():
    event = CoreShelfEvent(
        event_id=f'{SHELF}/shelf_01_bin_2/{T0 + 5}', shelf_id=SHELF, bin_id='shelf_01_bin_2',
        event_type='pick', delta_grams=-316.4, start_ns=T0 - 2 * 10 ** 9, end_ns=T0 + 5,
        candidates=(SkuCandidate('crispo_sour_150g', 2, 0.49),
                    SkuCandidate('crispo_salt_150g', 2, 0.48)))
    msg = shelf_event_msg(event, 'shelf_01')
    assert time_to_ns(msg.header.stamp) == T0 + 5 and msg.header.frame_id == 'shelf_01'
    assert msg.event_type == ShelfEvent.PICK and msg.event_id == event.event_id
    assert time_to_ns(msg.start) == T0 - 2 * 10 ** 9 and time_to_ns(msg.end) == T0 + 5
    assert msg.delta_grams == pytest.approx(-316.4, abs=1e-3)
    assert [(c.sku, c.quantity) for c in msg.candidates] == [
        ('crispo_sour_150g', 2), ('crispo_salt_150g', 2)]
    assert msg.candidates[0].likelihood == pytest.approx(0.49)
    kinds = {k: shelf_event_msg(CoreShelfEvent(**{**event.__dict__, 'event_type': k}),
                                'f').event_type for k in ('return', 'unknown')}
    assert kinds == {'return': ShelfEvent.RETURN, 'unknown': ShelfEvent.UNKNOWN}


def test_the_shipped_parameters_make_a_valid_config(repo):
    context = rclpy.Context()
    rclpy.init(context=context, args=[
        '--ros-args', '--params-file', str(repo / 'config' / 'go_store.yaml')])
    try:
        node = rclpy.create_node('shelf_fusion', context=context)
        from go_store_nodes.nodes.shelf_fusion import PARAMETERS
        config = fusion_config(declare_parameters(node, PARAMETERS))
        assert config == FusionConfig(), 'the core defaults drifted from the params file'
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def shelf_stream(seconds, seed=7):
    """Make samples x 4 bins of shelf_01 at 60 Hz: a 158 g pick on bin 1 at 2 s, bin 4 stuck."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 60)) / 60.0
    grams = 2000.0 + rng.normal(0.0, 1.5, (t.size, 4))
    press = (t >= 2.0) & (t < 2.9)
    grams[press, 0] += 250.0 * np.sin(np.pi * (t[press] - 2.0) / 0.9)
    ramp = (t >= 2.25) & (t < 2.7)
    grams[ramp, 0] -= 158.0 * 0.5 * (1.0 - np.cos(np.pi * (t[ramp] - 2.25) / 0.45))
    grams[t >= 2.7, 0] -= 158.0
    grams[:, 3] = 1234.5          # a dead cell
    return grams


# -- over DDS -----------------------------------------------------------------------------

@pytest.fixture
def probe():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('shelf_fusion_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _spin_until(executor, condition, what, process):
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert process.poll() is None, f'shelf_fusion died while waiting for {what}'
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        executor.spin_once(timeout_sec=0.05)


@pytest.mark.slow
def test_node_publishes_a_pick_and_survives_bad_input(repo, probe, tmp_path):
    node, executor = probe
    log = tmp_path / 'shelf_fusion.log'
    with open(log, 'w') as out:
        process = subprocess.Popen(
            [sys.executable, '-m', 'go_store_nodes.nodes.shelf_fusion', '--ros-args',
             '--params-file', str(repo / 'config' / 'go_store.yaml'),
             '-p', 'diagnostics_period_s:=0.2'],
            cwd=repo, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        received, diagnostics = [], []
        node.create_subscription(ShelfEvent, 'shelves/events', received.append, EVENTS_QOS)
        node.create_subscription(DiagnosticArray, 'diagnostics', diagnostics.append, 10)
        publisher = node.create_publisher(LoadCellBatch, f'shelves/{SHELF}/weights',
                                          WEIGHTS_QOS)
        _spin_until(executor, lambda: publisher.get_subscription_count() > 0
                    and node.count_publishers('shelves/events') > 0, 'matching', process)

        def counters():
            for msg in reversed(diagnostics):
                for status in msg.status:
                    if status.name == '/shelf_fusion':
                        return {kv.key: kv.value for kv in status.values}, status
            return {}, None

        grams = shelf_stream(8.0)
        batches = [grams[k:k + 12] for k in range(0, len(grams), 12)]
        for index, samples in enumerate(batches):
            publisher.publish(batch_msg(T0 + 12 * index * PERIOD_NS, samples))
            _spin_until(executor, lambda index=index: counters()[0].get('batches', '0')
                        == str(index + 1), f'batch {index}', process)
        _spin_until(executor, lambda: len(received) == 1, 'the pick', process)
        event = received[0]
        assert (event.shelf_id, event.bin_id, event.event_type) == (
            SHELF, 'shelf_01_bin_1', ShelfEvent.PICK)
        assert event.header.frame_id == SHELF
        assert event.delta_grams == pytest.approx(-158.0, abs=2.0)
        settle_ns = time_to_ns(event.header.stamp)
        assert settle_ns == time_to_ns(event.end) and event.event_id.endswith(str(settle_ns))
        assert T0 + 2.6e9 < settle_ns < T0 + 3.6e9
        assert {c.sku for c in event.candidates[:2]} == {'crispo_salted_150g',
                                                         'crispo_paprika_150g'}
        _spin_until(executor, lambda: counters()[0].get('dead_cells') == 'shelf_01_bin_4',
                    'the dead cell in diagnostics', process)
        assert counters()[1].level == DiagnosticStatus.WARN
        assert 'shelf_01_bin_4' in counters()[1].message

        # Bad input: each is dropped and counted; the node keeps running.
        next_ns = T0 + 12 * len(batches) * PERIOD_NS
        good = grams[:12]
        publisher.publish(batch_msg(next_ns, good, bins=BINS[:3] + ('shelf_09_bin_9',)))
        publisher.publish(batch_msg(next_ns, good.reshape(-1)[:-1], count=12))
        publisher.publish(batch_msg(next_ns, good * np.nan))
        publisher.publish(batch_msg(T0, good))                                 # out of order
        publisher.publish(batch_msg(time.time_ns() + 3600 * 10 ** 9, good))    # future
        publisher.publish(batch_msg(next_ns, good, shelf='shelf_77'))          # unknown shelf
        publisher.publish(batch_msg(next_ns, good[:, :3], shelf='shelf_07',
                                    bins=('shelf_07_bin_1', 'shelf_07_bin_2',
                                          'shelf_07_bin_3')))                  # other topic
        expected = {'dropped_bin_mismatch': '1', 'dropped_wrong_length': '1',
                    'dropped_all_nan': '1', 'dropped_out_of_order': '1',
                    'dropped_future_stamp': '1', 'dropped_unknown_shelf': '1',
                    'dropped_wrong_topic': '1'}
        _spin_until(executor, lambda: all(counters()[0].get(k) == v
                                          for k, v in expected.items()),
                    'drop counters', process)
        publisher.publish(batch_msg(next_ns, good))
        _spin_until(executor, lambda: counters()[0].get('batches') == str(len(batches) + 1),
                    'a good batch after the bad ones', process)
        assert process.poll() is None
        assert len(received) == 1
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = log.read_text()
    for words in ('stuck at 1234.5 g', 'bin_mismatch', 'wrong_length', 'all_nan', 'out_of_order',
                  'future_stamp', 'unknown_shelf', 'wrong_topic'):
        assert words in output, (words, output)
