"""Node runners: a stop by SIGINT is exit 0 even when it races the executor's wait."""

import pytest
import rclpy
from rclpy.node import Node
from rclpy.subscription import RCLError

from go_store_nodes.nodes import runner

CONTEXT_GONE = ('failed to initialize wait set: the given context is not valid, either '
                'rcl_init() was not called or rcl_shutdown() was called.')


def _node():
    return Node('runner_test')


def test_sigint_shutting_the_context_down_mid_spin_is_a_normal_stop(monkeypatch):
    def spin(node):
        rclpy.shutdown()          # what rclpy's SIGINT handler does, from its thread
        raise RCLError(CONTEXT_GONE)

    monkeypatch.setattr(runner.rclpy, 'spin', spin)
    assert runner.run_single_node(_node, []) == 0


def test_an_rcl_error_while_the_context_is_up_is_a_failure(monkeypatch):
    def spin(node):
        raise RCLError('failed to take a message')

    monkeypatch.setattr(runner.rclpy, 'spin', spin)
    with pytest.raises(RCLError):
        runner.run_single_node(_node, [])
    assert not rclpy.ok()         # shut down on the way out all the same


def test_the_graph_executor_stops_quietly_too(monkeypatch):
    rclpy.init()
    try:
        node = _node()
        calls = []

        def spin_once(self, timeout_sec=None):
            calls.append(timeout_sec)
            rclpy.shutdown()
            raise RCLError(CONTEXT_GONE)

        monkeypatch.setattr(runner.MultiThreadedExecutor, 'spin_once', spin_once)
        runner.spin_nodes([node])
        assert calls == [0.1]
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
