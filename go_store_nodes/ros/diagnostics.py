"""Diagnostics every node publishes: one DiagnosticStatus per node on ``diagnostics``."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR


class NodeDiagnostics:
    """Counts input, output and drops, and publishes them with a level and a message."""

    def __init__(self, node: Node, period_s: float) -> None:
        """Publish on ``diagnostics`` every ``period_s`` seconds."""
        self._node = node
        self._publisher = node.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self.counters: dict[str, int] = {}
        self.values: dict[str, str] = {}
        self.level = OK
        self.message = 'running'
        self._timer = node.create_timer(period_s, self.publish)

    def count(self, key: str, increment: int = 1) -> None:
        """Add to a counter such as 'dropped_malformed'."""
        self.counters[key] = self.counters.get(key, 0) + increment

    def set_status(self, level: bytes, message: str) -> None:
        """Set the level (OK, WARN, ERROR) and a one-line message."""
        self.level = level
        self.message = message

    def publish(self) -> None:
        """Publish the current status now."""
        status = DiagnosticStatus(
            level=self.level, name=self._node.get_fully_qualified_name(),
            message=self.message, hardware_id='')
        status.values = [KeyValue(key=k, value=str(v)) for k, v in sorted(self.counters.items())]
        status.values += [KeyValue(key=k, value=v) for k, v in sorted(self.values.items())]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)
