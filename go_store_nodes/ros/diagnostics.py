"""Diagnostics every node publishes: one DiagnosticStatus per node on ``diagnostics``."""

from __future__ import annotations

import time
from typing import Callable, Hashable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR


LOG_REPEAT_S = 5.0


class LogLimiter:
    """Lets a repeated warning through at most once every ``period_s`` per key.

    A camera sending 15 bad frames a second is one log line every few seconds, not 15;
    the counters in diagnostics still count every one.
    """

    def __init__(self, period_s: float = LOG_REPEAT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Keep the period and the clock (seconds)."""
        self._period_s = period_s
        self._clock = clock
        self._last: dict[Hashable, float] = {}

    def ready(self, key: Hashable) -> bool:
        """Return True (and start a new period) when ``key`` may be logged now."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._period_s:
            return False
        self._last[key] = now
        return True


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
